"""Spherical harmonic and SO(3) Fourier transforms as real matrix products.

No ``torch.fft`` and no complex dtype: the DFTs along α/γ are products with precomputed cos/sin
matrices and the β direction is a batched product with (quadrature-weighted) Wigner-d
matrices, so the same graph runs on CPU, GPU and onnxruntime. All matrices are built in float64
(see :mod:`.so3`), cached, and stored as float32 non-persistent buffers.

Shapes (see :mod:`.so3` for the angle conventions and the padded spectral layout):

- S2 signal on the DH grid: ``(B, C, 2b, 2b)`` in (β, α) order.
- SO(3) signal: ``(B, C, 2b, 2b, 2b)`` in (β, α, γ) order.
- S2 spectrum: a pair ``(re, im)`` of ``(B, C, L, 2L-1)`` tensors, index ``[l, m+L-1]``.
- SO(3) spectrum: a pair ``(re, im)`` of ``(B, C, L, 2L-1, 2L-1)``, index ``[l, m+L-1, n+L-1]``.

Normalisation: ``f(x) = Σ f̂^l_m Y^l_m(x)`` with ``f̂^l_m = ∫ f conj(Y^l_m) dx`` on S2, and
``f(R) = Σ f̂^l_{mn} D^l_{mn}(R)`` with ``f̂^l_{mn} = (2l+1)/(8π²) ∫ f conj(D^l_{mn}) dR`` on SO(3).
Signals are real, so the synthesis keeps the real part only.

Every batched product is laid out with its batch axis (m, or m·n) leading and contiguous
(explicit ``.contiguous()`` before ``reshape``): CPU ``bmm`` otherwise copies each of the M²
small matrices separately, which dominated the runtime.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from .so3 import dh_alphas, dh_weights, wigner_d_grid

__all__ = ["S2Analysis", "S2Synthesis", "SO3Analysis", "SO3Synthesis", "transform_sizes"]

Spectrum = tuple[torch.Tensor, torch.Tensor]


def _check(L: int, b: int) -> None:
    if not (isinstance(L, int) and isinstance(b, int)) or L < 1 or b < 1:
        raise ValueError(f"bandwidths must be positive integers, got L={L!r}, b={b!r}")
    if L > b:
        raise ValueError(f"a grid of bandwidth b={b} resolves degrees l < {b}; got L={L}")


# ------------------------------------------------------- float64 builders
@lru_cache(maxsize=32)
def _dft(L: int, b: int, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """cos(m t_k), sign·sin(m t_k) for t on the 2b grid and m = -(L-1)..L-1: (2b, 2L-1) each."""
    t = dh_alphas(b)
    m = np.arange(-(L - 1), L)
    ang = np.outer(t, m)
    return np.cos(ang), sign * np.sin(ang)


def _s2_beta(L: int, b: int, weighted: bool) -> np.ndarray:
    """(L, 2L-1, 2b): sqrt((2l+1)/4π) d^l_{m0}(β_j), times the α and β quadrature when weighted."""
    d = wigner_d_grid(L, b)[:, :, L - 1, :]  # n = 0 column
    l = np.arange(L)[:, None, None]
    out = np.sqrt((2 * l + 1) / (4 * np.pi)) * d
    if weighted:
        out = out * dh_weights(b)[None, None, :] * (2 * np.pi / (2 * b))
    return out


def _so3_beta(L: int, b: int, weighted: bool) -> np.ndarray:
    """(L, 2L-1, 2L-1, 2b): d^l_{mn}(β_j), times (2l+1)/(8π²) and the α, β, γ quadrature when weighted."""
    d = wigner_d_grid(L, b)
    if not weighted:
        return d
    l = np.arange(L)[:, None, None, None]
    scale = (2 * l + 1) / (8 * np.pi**2) * (2 * np.pi / (2 * b)) ** 2
    return d * scale * dh_weights(b)[None, None, None, :]


def _buf(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def transform_sizes(L: int, b: int) -> dict[str, int]:
    """Number of float32 elements in the buffers of each transform for (L, b)."""
    m = 2 * L - 1
    return {
        "S2Analysis": 2 * b * 2 * m + L * m * 2 * b,
        "S2Synthesis": 2 * m * 2 * b + L * m * 2 * b,
        "SO3Analysis": 2 * b * 2 * m + 2 * 2 * b * 2 * m + L * m * m * 2 * b,
        "SO3Synthesis": 2 * m * 2 * 2 * b + 2 * m * 2 * b + L * m * m * 2 * b,
    }


# ------------------------------------------------------------------ S2
class S2Analysis(nn.Module):
    """Forward spherical harmonic transform: ``(B, C, 2b, 2b)`` -> spectrum ``(B, C, L, 2L-1)`` x2.

    Exact (to float32 rounding) for signals band-limited to l < L ≤ b; higher degrees of the
    input are dropped (that is how a bandwidth reduction pools).
    """

    def __init__(self, b: int, L: int | None = None) -> None:
        super().__init__()
        L = b if L is None else L
        _check(L, b)
        self.b, self.L = b, L
        c, s = _dft(L, b, -1.0)  # e^{-imα}
        self.register_buffer("dft", _buf(np.concatenate([c, s], axis=1)), persistent=False)  # (2b, 2M)
        # β step as one batched GEMM over m: (M, 2b, L), contiguous so bmm needs no per-batch copies.
        self.register_buffer("wd", _buf(_s2_beta(L, b, True).transpose(1, 2, 0)), persistent=False)

    def forward(self, x: torch.Tensor) -> Spectrum:
        m, c, nb = 2 * self.L - 1, x.shape[1], 2 * self.b
        f = torch.matmul(x, self.dft)  # (B, C, 2b[β], [re | im] x M)
        f = f.unflatten(-1, (2, m)).permute(4, 3, 0, 1, 2).contiguous().reshape(m, -1, nb)  # (M, 2·B·C, 2b)
        s = torch.matmul(f, self.wd).unflatten(1, (2, -1, c))  # (M, 2, B, C, L)
        s = s.permute(1, 2, 3, 4, 0)  # (2, B, C, L, M)
        return s[0], s[1]


class S2Synthesis(nn.Module):
    """Inverse spherical harmonic transform: spectrum ``(B, C, L, 2L-1)`` x2 -> ``(B, C, 2b, 2b)``."""

    def __init__(self, L: int, b: int | None = None) -> None:
        super().__init__()
        b = L if b is None else b
        _check(L, b)
        self.b, self.L = b, L
        c, s = _dft(L, b, 1.0)
        # Re[(g_r + i g_i) e^{imα}] = g_r cos - g_i sin.
        self.register_buffer("idft", _buf(np.concatenate([c.T, -s.T], axis=0)), persistent=False)  # (2M, 2b)
        self.register_buffer(
            "d", _buf(_s2_beta(L, b, False).transpose(1, 0, 2)), persistent=False
        )  # (M, L, 2b)

    def forward(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        m, c, nb = 2 * self.L - 1, re.shape[1], 2 * self.b
        s = torch.stack([re, im]).permute(4, 0, 1, 2, 3).contiguous().reshape(m, -1, self.L)  # (M, 2·B·C, L)
        g = torch.matmul(s, self.d).unflatten(1, (2, -1, c))  # (M, 2, B, C, 2b)
        g = g.permute(2, 3, 4, 1, 0).contiguous().reshape(-1, c, nb, 2 * m)  # (B, C, 2b[β], [re | im] x M)
        return torch.matmul(g, self.idft)


# ----------------------------------------------------------------- SO(3)
class SO3Analysis(nn.Module):
    """Forward SO(3) Fourier transform: ``(B, C, 2b, 2b, 2b)`` -> spectrum ``(B, C, L, 2L-1, 2L-1)`` x2."""

    def __init__(self, b: int, L: int | None = None) -> None:
        super().__init__()
        L = b if L is None else L
        _check(L, b)
        self.b, self.L = b, L
        c, s = _dft(L, b, 1.0)  # conj(D) carries e^{+imα} e^{+inγ}
        self.register_buffer("dft_g", _buf(np.concatenate([c, s], axis=1)), persistent=False)  # (2b, 2N)
        # [h_r | h_i] (.., 2b[α] x2) @ [[c, s], [-s, c]] = [f_r | f_i]  (complex product with e^{imα})
        blk = np.block([[c, s], [-s, c]])
        self.register_buffer("dft_a", _buf(blk), persistent=False)  # (4b, 2M)
        # β step as one batched GEMM over (m, n): (M·N, 2b, L), contiguous.
        wd = _so3_beta(L, b, True).transpose(1, 2, 3, 0).reshape(-1, 2 * b, L)
        self.register_buffer("wd", _buf(wd), persistent=False)

    def forward(self, x: torch.Tensor) -> Spectrum:
        m, c, nb = 2 * self.L - 1, x.shape[1], 2 * self.b
        h = torch.matmul(x, self.dft_g)  # (B, C, β, α, [re | im] x N)
        h = torch.cat([h[..., :m], h[..., m:]], dim=3).transpose(3, 4)  # (B, C, β, N, [re | im] x α)
        f = torch.matmul(h, self.dft_a)  # (B, C, β, N, [re | im] x M)
        f = (
            f.unflatten(-1, (2, m)).permute(5, 3, 4, 0, 1, 2).contiguous().reshape(m * m, -1, nb)
        )  # (M·N, 2·B·C, β)
        s = torch.matmul(f, self.wd).unflatten(0, (m, m)).unflatten(2, (2, -1, c))  # (M, N, 2, B, C, L)
        s = s.permute(2, 3, 4, 5, 0, 1)  # (2, B, C, L, M, N)
        return s[0], s[1]


class SO3Synthesis(nn.Module):
    """Inverse SO(3) Fourier transform: spectrum ``(B, C, L, 2L-1, 2L-1)`` x2 -> ``(B, C, 2b, 2b, 2b)``."""

    def __init__(self, L: int, b: int | None = None) -> None:
        super().__init__()
        b = L if b is None else b
        _check(L, b)
        self.b, self.L = b, L
        c, s = _dft(L, b, 1.0)
        # Sum over m with e^{-imα}: [g_r | g_i] @ [[c, -s], [s, c]]^T-arranged = [p_r | p_i].
        self.register_buffer(
            "idft_a", _buf(np.block([[c.T, -s.T], [s.T, c.T]])), persistent=False
        )  # (2M, 4b)
        # Re Σ_n p_n e^{-inγ} = p_r cos + p_i sin.
        self.register_buffer("idft_g", _buf(np.concatenate([c.T, s.T], axis=0)), persistent=False)  # (2N, 2b)
        d = _so3_beta(L, b, False).transpose(1, 2, 0, 3).reshape(-1, L, 2 * b)
        self.register_buffer("d", _buf(d), persistent=False)  # (M·N, L, 2b)

    def forward(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        m, c, nb = 2 * self.L - 1, re.shape[1], 2 * self.b
        s = (
            torch.stack([re, im]).permute(4, 5, 0, 1, 2, 3).contiguous().reshape(m * m, -1, self.L)
        )  # (M·N, 2·B·C, L)
        g = torch.matmul(s, self.d).unflatten(0, (m, m)).unflatten(2, (2, -1, c))  # (M, N, 2, B, C, β)
        g = (
            g.permute(3, 4, 5, 1, 2, 0).contiguous().reshape(-1, c, nb, m, 2 * m)
        )  # (B, C, β, N, [re | im] x M)
        p = torch.matmul(g, self.idft_a)  # (B, C, β, N, [re | im] x α)
        p = torch.cat([p[..., :nb], p[..., nb:]], dim=3).transpose(3, 4)  # (B, C, β, α, [re | im] x N)
        return torch.matmul(p, self.idft_g)  # (B, C, β, α, γ)
