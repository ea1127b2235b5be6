"""Model files: weights in safetensors, everything needed to rebuild the model in its metadata.

One ``.safetensors`` file is a complete, pickle-free model: the registry name and configuration
(``create_model(name, **config)``) plus free-form metadata (task, class names and colours, input
normalisation, HEALPix grid) stored as JSON in the safetensors header. Training checkpoints for
resuming are Lightning's business; this is the format that export, evaluation and serving read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from heal_swin.errors import InputError
from heal_swin.io import atomic_write_bytes
from heal_swin.models.registry import create_model

__all__ = ["FORMAT", "ModelFileError", "load_model", "load_weights_into", "read_model_metadata", "save_model"]

FORMAT = "heal-swin-model/1"


class ModelFileError(InputError):
    """A model file that is missing, corrupt or not a heal-swin model."""


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj


def save_model(path: str | Path, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (built by ``create_model``) and ``metadata`` to one safetensors file, atomically."""
    name = getattr(model, "model_name", None)
    config = getattr(model, "model_config", None)
    if name is None or config is None:
        raise ValueError(
            "save_model: the model must come from heal_swin.models.create_model (no model_name/model_config)"
        )
    header = {
        "format": FORMAT,
        "model_name": name,
        "model_config": _jsonable(config),
        "metadata": _jsonable(metadata or {}),
    }
    # Persistent entries only; clone so shared/non-contiguous storages serialise cleanly.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    atomic_write_bytes(path, save(tensors, metadata={"heal_swin": json.dumps(header)}))
    return path


def read_model_metadata(path: str | Path) -> dict[str, Any]:
    """The header of a model file: ``{"format", "model_name", "model_config", "metadata"}``."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("heal_swin")
    except Exception as e:  # noqa: BLE001 (safetensors raises its own error types for corrupt headers)
        raise ModelFileError(f"{path}: not a safetensors file ({e})") from None
    if raw is None:
        raise ModelFileError(
            f"{path}: field 'heal_swin' metadata: expected a heal-swin model header, got none"
        )
    header = json.loads(raw)
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: field 'format': expected {FORMAT!r}, got {header.get('format')!r}")
    return header


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from its file (no pickle involved). Returns ``(model in eval mode, metadata)``."""
    header = read_model_metadata(path)
    model = create_model(header["model_name"], **header["model_config"])
    load_weights_into(model, path, map_location)
    return model.eval(), header["metadata"]


def load_weights_into(
    model: nn.Module, path: str | Path, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Copy the weights of model file ``path`` into ``model`` (fine-tuning's starting point).

    The architecture must match tensor for tensor; settings that leave the weights' shapes alone
    may differ (a HEAL-SWIN's nside, its shift, dropout). Returns the file's header. A missing or
    extra tensor, or one of another shape, is a ``ModelFileError`` naming it.
    """
    header = read_model_metadata(path)
    state = load_file(str(path), device=str(map_location))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ModelFileError(
            f"{path}: weights of {header['model_name']} do not fit this model: "
            f"missing {missing[:3]}, unexpected {extra[:3]}"
        )
    for key, tensor in state.items():
        if tensor.shape != own[key].shape:
            raise ModelFileError(
                f"{path}: tensor {key!r}: expected shape {tuple(own[key].shape)}, got {tuple(tensor.shape)}"
            )
    model.load_state_dict(state, strict=True)
    return header
