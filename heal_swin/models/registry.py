"""One registry for every model variant, timm-style: ``create_model(name, **overrides)``.

A variant is a model class plus the dict of what it changes from the class's keyword defaults
(``register_model("heal_swin_tiny", HealSwinUNet, embed_dim=16, ...)``); ``overrides`` change it
further (an unknown key is an error naming the key and the valid ones). Each variant also has a
default config (timm's ``default_cfg`` / ``pretrained_cfg``): what export, evaluation and
serving need to feed it, i.e. the input kind, its grid or image size and the input
normalisation. :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD` here are the one place the
normalisation of our models is stated; training writes it into every model file and export copies
it into the manifest.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from heal_swin.errors import InputError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModelConfigError",
    "Variant",
    "create_model",
    "default_cfg",
    "get_variant",
    "list_models",
    "model_config",
    "register_model",
]

IMAGENET_MEAN: tuple[float, float, float] = tuple(float(v) for v in IMAGENET_DEFAULT_MEAN)  # RGB, of x / 255
IMAGENET_STD: tuple[float, float, float] = tuple(float(v) for v in IMAGENET_DEFAULT_STD)

# The modules whose import registers the variants (each family's file ends in register_model calls).
_FAMILIES = ("heal_swin.models.heal_swin", "heal_swin.models.swin_unet", "heal_swin.models.s2cnn.models")


class ModelConfigError(InputError):
    """Unknown model name or invalid override."""


@dataclass(frozen=True)
class Variant:
    """A registered variant: ``cls(**{**class defaults, **changes, **overrides})``.

    ``mean`` / ``std`` are the RGB input normalisation (of pixel values scaled to [0, 1]).
    """

    name: str
    cls: type[nn.Module]
    changes: dict[str, Any]
    doc: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    defaults: dict[str, Any] = field(default_factory=dict)  # the class's keyword defaults


_REGISTRY: dict[str, Variant] = {}


def _class_defaults(cls: type) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    return {k: p.default for k, p in sig.parameters.items() if k != "self" and p.default is not p.empty}


def register_model(
    name: str,
    cls: type[nn.Module],
    doc: str,
    *,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    **changes: Any,
) -> Variant:
    """Register variant ``name`` of ``cls``: ``changes`` are what it changes from the class defaults."""
    if name in _REGISTRY:
        raise ModelConfigError(f"model {name!r} is registered twice")
    if not isinstance(getattr(cls, "input_kind", None), str):
        raise ModelConfigError(f"model {name!r}: {cls.__name__} has no input_kind ('sphere' or 'flat')")
    defaults = _class_defaults(cls)
    unknown = sorted(set(changes) - set(defaults))
    if unknown:
        raise ModelConfigError(f"model {name!r}: {cls.__name__} has no option(s) {unknown}")
    v = Variant(name, cls, dict(changes), doc, tuple(mean), tuple(std), defaults)
    _REGISTRY[name] = v
    return v


def _ensure_loaded() -> None:
    for mod in _FAMILIES:  # importing a family's module runs its register_model calls
        importlib.import_module(mod)


def get_variant(name: str) -> Variant:
    """The registered :class:`Variant` ``name`` (a :class:`ModelConfigError` names the known ones)."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ModelConfigError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_models(pattern: str | None = None) -> list[str]:
    """Registered variant names, sorted; ``pattern`` is an fnmatch filter (``"heal_swin_*"``)."""
    _ensure_loaded()
    return [n for n in sorted(_REGISTRY) if pattern is None or fnmatch.fnmatch(n, pattern)]


def _like(default: Any, value: Any) -> Any:
    # Model files store configs as JSON (lists); a tuple-valued option gets its tuple back.
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def model_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The full keyword configuration ``create_model(name, **overrides)`` would use."""
    v = get_variant(name)
    unknown = sorted(set(overrides) - set(v.defaults))
    if unknown:
        raise ModelConfigError(f"model {name!r}: unknown option(s) {unknown}; valid: {sorted(v.defaults)}")
    cfg = {**v.defaults, **v.changes}
    cfg.update({k: _like(v.defaults[k], val) for k, val in overrides.items()})
    return cfg


def default_cfg(name: str, **overrides: Any) -> dict[str, Any]:
    """What export, evaluation and serving need to feed ``create_model(name, **overrides)``.

    ``{"input_kind": "sphere" | "flat", "task", "in_chans", "nside", "base_pixels"`` (sphere;
    else None) ``, "img_size"`` ([H, W], flat; else None) ``, "mean", "std"`` (RGB, of pixels / 255)``}``.
    """
    v = get_variant(name)
    cfg = model_config(name, **overrides)
    sphere = v.cls.input_kind == "sphere"  # type: ignore[attr-defined]
    return {
        "input_kind": v.cls.input_kind,  # type: ignore[attr-defined]
        "task": cfg.get("task", "segmentation"),
        "in_chans": int(cfg.get("in_chans", 3)),
        "nside": int(cfg["nside"]) if sphere else None,
        "base_pixels": [int(b) for b in cfg["base_pixels"]] if sphere else None,
        "img_size": None if sphere else [int(s) for s in cfg["img_size"]],
        "mean": list(v.mean),
        "std": list(v.std),
    }


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered variant, e.g. ``create_model("heal_swin_tiny", num_classes=10)``.

    The model carries ``model_name``, ``model_config`` (its full keyword configuration) and
    ``default_cfg`` (:func:`default_cfg`).
    """
    cfg = model_config(name, **overrides)
    model = get_variant(name).cls(**cfg)
    model.model_name = name  # type: ignore[attr-defined]
    model.model_config = cfg  # type: ignore[attr-defined]
    model.default_cfg = default_cfg(name, **overrides)  # type: ignore[attr-defined]
    return model
