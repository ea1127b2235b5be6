"""Building blocks whose inference path skips passes over memory that eager PyTorch would make.

* :class:`FusedLinear` is an ``nn.Linear`` (same parameters, same state dict) that, when no
  gradient is recorded on a CPU, runs oneDNN's linear with the bias (and optionally GELU)
  fused into the matrix product: eager ``F.linear`` first copies the broadcast bias into the
  output and GELU is a separate pass over the (4x wider) hidden activations. Results equal
  ``F.linear`` / ``F.gelu(F.linear)`` bit for bit in float32 (tested); under bfloat16 autocast the
  operands are cast to bfloat16 like autocast would.
* :class:`Mlp` is timm's ``Mlp`` (``fc1 -> GELU -> fc2``, same parameter names) on FusedLinear.
* :func:`permute_tokens` gathers ``x[:, perm]`` with a backward that is the inverse gather
  (autograd's default for indexing is an accumulating scatter, ~5x slower on CPU).
* :func:`cosine_normalise` is ``x / max(|x|, eps) * scale`` in two passes over ``x``.

Training, ``torch.compile`` and export take the plain formulations; only eager inference takes
the fused kernels, and only where a probe at first use showed they exist and agree.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FusedLinear",
    "Mlp",
    "cosine_normalise",
    "eager_inference",
    "fused_inference_available",
    "permute_tokens",
]


@lru_cache(maxsize=1)
def fused_inference_available() -> bool:
    """Whether oneDNN's fused linear runs here and agrees with ``F.linear`` (probed once)."""
    if not torch.backends.mkldnn.is_available():
        return False
    # looked up inside the probe, so that a torch without the op counts as 'not available'
    return fused_kernel_agrees(lambda *a: torch.ops.mkldnn._linear_pointwise(*a))


def fused_kernel_agrees(linear_pointwise: Callable[..., torch.Tensor]) -> bool:
    """Whether ``linear_pointwise(x, w, b, "gelu", [], "none")`` computes ``gelu(x @ w.T + b)``."""
    try:
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(s, generator=g) for s in ((3, 5, 8), (6, 8), (6,)))
        with torch.no_grad():
            y = linear_pointwise(x, w, b, "gelu", [], "none")
        # float32 rounding differs by CPU (1.1e-6 on one Zen 4 machine); a wrong kernel (e.g. the
        # tanh GELU) is off by ~5e-4, so 1e-5 tells the two apart.
        return bool(torch.allclose(y, F.gelu(F.linear(x, w, b)), rtol=1e-5, atol=1e-5))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


def eager_inference(x: torch.Tensor) -> bool:
    """True in eager mode with gradients off on a CPU tensor: where the fused kernels apply."""
    return not torch.is_grad_enabled() and x.device.type == "cpu" and not torch.compiler.is_compiling()


class FusedLinear(nn.Linear):
    """``nn.Linear`` with an optional fused activation (``"gelu"``) on the eager CPU inference path."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, activation: str = "none"
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        if activation not in ("none", "gelu"):
            raise ValueError(f"activation: expected 'none' or 'gelu', got {activation!r}")
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if eager_inference(x) and fused_inference_available():
            w, b = self.weight, self.bias
            if torch.is_autocast_enabled("cpu"):
                dt = torch.get_autocast_dtype("cpu")
                x, w = x.to(dt), w.to(dt)
                b = None if b is None else b.to(dt)
            elif x.dtype != w.dtype:
                return self._plain(x)
            if x.dtype in (torch.float32, torch.bfloat16):
                algo = "none" if self.activation == "gelu" else ""
                return torch.ops.mkldnn._linear_pointwise(x, w, b, self.activation, [], algo)
        return self._plain(x)

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        return F.gelu(y) if self.activation == "gelu" else y


class Mlp(nn.Module):
    """``fc1 -> GELU -> dropout -> fc2 -> dropout``; parameter names as timm's ``Mlp``."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = FusedLinear(dim, hidden, activation="gelu")
        self.drop1 = nn.Dropout(drop)
        self.fc2 = FusedLinear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.fc1(x))))


class _PermuteTokens(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, perm: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, perm)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
        ctx.save_for_backward(inputs[2])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[no-untyped-def]
        (inv,) = ctx.saved_tensors
        return grad.index_select(1, inv), None, None


def permute_tokens(x: torch.Tensor, perm: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """``x[:, perm]`` for ``x (B, N, C)`` and a permutation ``perm`` with inverse ``inv``."""
    if torch.is_grad_enabled() and x.requires_grad and not torch.compiler.is_compiling():
        return _PermuteTokens.apply(x, perm, inv)
    return x.index_select(1, perm)


class _CosineNormalise(torch.autograd.Function):
    """``y = x * scale / max(|x|, eps)``; backward ``dx = (scale * g - y (g . y) / scale) / |x|``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[no-untyped-def]
        inv = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps).reciprocal()
        y = x * (inv * scale)
        ctx.save_for_backward(y, inv, scale)  # the norm is not computed again for the backward
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[no-untyped-def]
        y, inv, scale = ctx.saved_tensors
        dot = (g * y).sum(-1, keepdim=True)  # = scale * (g . x_hat)
        dx = torch.addcmul(g * (inv * scale), y, dot * inv / scale, value=-1.0)
        dscale = (dot / scale).sum_to_size(scale.shape) if ctx.needs_input_grad[1] else None
        return dx, dscale, None


def cosine_normalise(x: torch.Tensor, scale: torch.Tensor | None = None, eps: float = 1e-12) -> torch.Tensor:
    """``x / max(||x||, eps) * scale`` over the last dim; ``scale`` broadcasts against ``x[..., :1]``.

    Two passes over ``x`` forward and three backward (autograd's formulation takes about twice
    as many); the plain formulation is used under ``torch.compile``/export, which fuse it anyway.
    """
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        s = scale if scale is not None else torch.ones((), dtype=x.dtype, device=x.device)
        return _CosineNormalise.apply(x, s, eps)
    inv = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps).reciprocal()
    if scale is not None:
        inv = inv * scale
    return x * inv
