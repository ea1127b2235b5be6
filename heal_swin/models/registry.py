"""One registry for every model variant, timm-style: ``create_model(name, **overrides)``.

A variant is a function returning an ``nn.Module``; its keyword defaults are the variant's
configuration, and ``overrides`` replace them (unknown keys are an error that names the key).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch.nn as nn

from heal_swin.errors import InputError

__all__ = ["register_model", "create_model", "list_models", "model_config", "ModelConfigError"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


class ModelConfigError(InputError):
    """Unknown model name or invalid override."""


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under its function name."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ModelConfigError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def _ensure_loaded() -> None:
    # Importing the model modules runs their @register_model decorators.
    import importlib

    for mod in ("heal_swin.models.heal_swin", "heal_swin.models.swin_unet", "heal_swin.models.s2cnn"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a family not built yet
            if e.name != mod:
                raise


def list_models(pattern: str | None = None) -> list[str]:
    """Registered variant names, sorted; ``pattern`` is an fnmatch filter (``"heal_swin_*"``)."""
    import fnmatch

    _ensure_loaded()
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def model_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The full keyword configuration ``create_model(name, **overrides)`` would use."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ModelConfigError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    sig = inspect.signature(_REGISTRY[name])
    params = {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY or p.default is not p.empty}
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise ModelConfigError(f"model {name!r}: unknown option(s) {unknown}; valid: {sorted(params)}")
    params.update(overrides)
    return params


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered variant, e.g. ``create_model("heal_swin_tiny", num_classes=10)``."""
    cfg = model_config(name, **overrides)
    model = _REGISTRY[name](**cfg)
    model.model_name = name  # type: ignore[attr-defined]
    model.model_config = cfg  # type: ignore[attr-defined]
    return model
