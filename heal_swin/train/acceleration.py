"""Precision and compilation options shared by ``predict``, ``evaluate`` and ``train``.

``bf16`` runs matrix products in bfloat16 under ``torch.autocast`` (weights stay float32;
LayerNorm, softmax and losses stay float32): about 2x the float32 speed on CPUs with AVX512_BF16
and far more with AMX, at ~3 significant digits per product (the mIoU/depth change on a trained
model is in BENCHMARKS.md). ``compile`` wraps the model in ``torch.compile`` (inductor); for
inference with weight freezing, which folds the weights into the generated kernels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from heal_swin.errors import InputError

__all__ = ["PRECISIONS", "autocast", "bf16_supported", "check_precision", "compile_model"]

PRECISIONS = ("fp32", "bf16")


def bf16_supported(device: str = "cpu") -> bool:
    """Whether ``device`` runs bfloat16 matrix products natively."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    from heal_swin.models.fused import onednn_bf16_available

    return onednn_bf16_available()


def check_precision(precision: str, device: str = "cpu", where: str = "--precision") -> str:
    """Validate ``precision``; an InputError naming ``where`` if unknown or not supported here."""
    if precision not in PRECISIONS:
        raise InputError(f"{where}: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and not bf16_supported(device):
        raise InputError(
            f"{where}: bf16 needs a CPU with AVX512_BF16 or AMX (or a CUDA GPU with bf16); this {device} has neither; use fp32"
        )
    return precision


def autocast(precision: str, device: str = "cpu") -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``bf16``, a no-op for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_model(model: torch.nn.Module, inference: bool) -> Callable[..., torch.Tensor]:
    """``torch.compile(model)``; ``inference=True`` also freezes the weights (call it under no_grad).

    Compilation happens at the first call (tens of seconds for the paper model) and again if the
    input shape changes. The returned callable shares ``model``'s parameters and state dict.
    """
    if inference:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    return torch.compile(model)
