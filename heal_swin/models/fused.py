"""Building blocks that skip passes over memory that eager PyTorch would make.

* :class:`FusedLinear` is an ``nn.Linear`` (same parameters, same state dict) that, when no
  gradient is recorded on a CPU, runs oneDNN's linear with the bias (and optionally GELU)
  fused into the matrix product: eager ``F.linear`` first copies the broadcast bias into the
  output and GELU is a separate pass over the (4x wider) hidden activations. Results equal
  ``F.linear`` / ``F.gelu(F.linear)`` bit for bit in float32 (tested); under bfloat16 autocast the
  operands are cast to bfloat16 like autocast would (where oneDNN has bf16 kernels; elsewhere
  the plain ``F.linear``).
* :class:`Mlp` is timm's ``Mlp`` (``fc1 -> GELU -> fc2``, same parameter names) on FusedLinear;
  in float32 CPU training with large activations it runs over row tiles (:func:`mlp_tiled`).
* :func:`permute_tokens` gathers ``x[:, perm]`` with a backward that is the inverse gather
  (autograd's default for indexing is an accumulating scatter, ~5x slower on CPU).
* :func:`cosine_normalise` is ``x / max(|x|, eps) * scale`` in two passes over ``x``.

``torch.compile`` and export take the plain formulations; the fused kernels serve eager inference
only, and only where a probe at first use showed they exist and agree; the tiled MLP serves eager
float32 CPU training only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = [
    "FusedLinear",
    "Mlp",
    "cosine_normalise",
    "eager_inference",
    "fused_inference_available",
    "mlp_tiled",
    "onednn_bf16_available",
    "permute_tokens",
]


@lru_cache(maxsize=1)
def fused_inference_available() -> bool:
    """Whether oneDNN's fused linear runs here and agrees with ``F.linear`` (probed once)."""
    if not torch.backends.mkldnn.is_available():
        return False
    # looked up inside the probe, so that a torch without the op counts as 'not available'
    return fused_kernel_agrees(lambda *a: torch.ops.mkldnn._linear_pointwise(*a))


@lru_cache(maxsize=1)
def onednn_bf16_available() -> bool:
    """Whether oneDNN has bf16 matrix kernels on this CPU (AVX512_BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


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
                if dt == torch.bfloat16 and not onednn_bf16_available():
                    return self._plain(x)  # oneDNN has no bf16 kernel on CPUs without AVX512_BF16/AMX
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
        if _tiled_applies(x, self):
            return mlp_tiled(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
        return self.drop2(self.fc2(self.drop1(self.fc1(x))))


_TILE_BYTES = 2 * 2**20  # one tile's hidden activations (best of 0.5-4 MiB measured here)
# Below this the hidden activations stay in the last-level cache (32 MiB here) and tiling only
# adds per-tile overhead (measured 0.9-1.0x); above it, 1.2-1.3x on the MLP's forward + backward.
_TILE_FROM_BYTES = 32 * 2**20


def _tiled_applies(x: torch.Tensor, mlp: Mlp) -> bool:
    """Float32 CPU training without active dropout, outside compile/export (which fuse it anyway)."""
    return (
        torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and mlp.fc1.weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not (mlp.training and (mlp.drop1.p > 0 or mlp.drop2.p > 0))
        and not torch.compiler.is_compiling()
        and not torch.onnx.is_in_onnx_export()
        and mlp.fc1.bias is not None
        and mlp.fc2.bias is not None
        and x.numel() // x.shape[-1] * mlp.fc1.out_features * 4 > _TILE_FROM_BYTES
    )


def _tiles(rows: int, hidden: int) -> list[tuple[int, int]]:
    step = max(64, _TILE_BYTES // (4 * hidden) // 64 * 64)
    return [(i, min(i + step, rows)) for i in range(0, rows, step)]


class _TiledMlp(torch.autograd.Function):
    """``gelu(x W1^T + b1) W2^T + b2`` over row tiles: the hidden activations (4x the input's
    width) are made, used and dropped one cache-sized tile at a time, forward and backward. Saved
    for the backward: the input and the pre-activation (autograd would also keep the GELU output).
    """

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):  # type: ignore[no-untyped-def]
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        pre = x2.new_empty(x2.shape[0], w1.shape[0])
        out = x2.new_empty(x2.shape[0], w2.shape[0])
        for a, b in _tiles(x2.shape[0], w1.shape[0]):
            torch.addmm(b1, x2[a:b], w1.t(), out=pre[a:b])
            torch.addmm(b2, F.gelu(pre[a:b]), w2.t(), out=out[a:b])
        ctx.save_for_backward(x2, pre, w1, w2)
        ctx.shape = shape
        return out.view(*shape[:-1], w2.shape[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[no-untyped-def]
        x2, pre, w1, w2 = ctx.saved_tensors
        g = g.reshape(-1, w2.shape[0])
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad
        dx = torch.empty_like(x2) if need_x else None
        dw1 = torch.zeros_like(w1) if need_w1 else None
        dw2 = torch.zeros_like(w2) if need_w2 else None
        db1 = pre.new_zeros(pre.shape[1]) if need_b1 else None
        db2 = g.sum(0) if need_b2 else None
        for a, b in _tiles(x2.shape[0], w1.shape[0]):
            h, gt = pre[a:b], g[a:b]
            if need_w2:
                dw2.addmm_(gt.t(), F.gelu(h))
            dh = torch.ops.aten.gelu_backward(gt @ w2, h)
            if need_w1:
                dw1.addmm_(dh.t(), x2[a:b])
            if need_b1:
                db1 += dh.sum(0)
            if need_x:
                torch.mm(dh, w1, out=dx[a:b])
        dx = None if dx is None else dx.view(ctx.shape)
        return dx, dw1, db1, dw2, db2


def mlp_tiled(
    x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    """``fc2(gelu(fc1(x)))`` for ``x (..., C)``, ``w1 (D, C)``, ``w2 (C', D)``: same values as the
    plain formulation (float32 rounding aside), a fraction of its memory traffic in training."""
    return _TiledMlp.apply(x, w1, b1, w2, b2)


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
