"""Rotation-equivariant layers: S2 -> SO(3), SO(3) -> SO(3), SO(3) -> S2 convolutions and pooling.

Every convolution is a correlation with a kernel that is a weighted sum of point masses on a
small grid of points (S2) or rotations (SO(3)) -- see the kernel grids in :mod:`.so3`. For
inputs band-limited to the layer's bandwidth this gives, exactly,

- ``S2Convolution``:  ``h_o(R) = Σ_{i,p} w_{iop} f_i(R x_p)``                (R in SO(3)),
- ``SO3Convolution``: ``h_o(R) = Σ_{i,p} w_{iop} f_i(R Q_p)``,
- ``SO3ToS2``:        ``h_o(x) = Σ_{i,p} w_{iop} mean_{R: R x_p = x} f_i(R)``  (x in S2),

each followed by a per-channel bias. The products are done per degree in the Fourier domain
(``L = min(b_in, b_out)``; lowering the bandwidth low-pass filters = pools, raising it
upsamples). Shapes: S2 ``(B, C, 2b, 2b)`` in (β, α); SO(3) ``(B, C, 2b, 2b, 2b)`` in (β, α, γ).
Weights are initialised with variance ``1/(C_in·P)`` so that the output has about the
variance of the input.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .so3 import dh_weights, s2_near_identity_grid, so3_near_identity_grid, spherical_harmonics, wigner_d_at
from .transforms import S2Analysis, S2Synthesis, SO3Analysis, SO3Synthesis

Spectrum = tuple[torch.Tensor, torch.Tensor]

__all__ = ["S2Convolution", "SO3Convolution", "SO3Integrate", "SO3ToS2", "s2_integrate", "so3_integrate"]


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _complex_product(
    equation: str, fr: torch.Tensor, fi: torch.Tensor, kr: torch.Tensor, ki: torch.Tensor
) -> Spectrum:
    """Complex ``einsum(equation, f, K)`` with real tensors, as a single real einsum.

    ``f`` is stacked on the batch axis and ``K`` on the output-channel axis (dim 1 of the kernel),
    so one product yields ``f_r K_r, f_r K_i, f_i K_r, f_i K_i`` without duplicating the kernel
    into a 2x2 block matrix.
    """
    b, o = fr.shape[0], kr.shape[1]
    p = torch.einsum(equation, torch.cat([fr, fi], dim=0), torch.cat([kr, ki], dim=1))
    re = p[:b, :o] - p[b:, o:]
    im = p[:b, o:] + p[b:, :o]
    return re, im


def _grouped_points(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct β values and a (U, Pu) index of the points with each (padded with P = a zero slot)."""
    ub, inv = np.unique(beta, return_inverse=True)
    inv = inv.reshape(-1)
    groups = [np.flatnonzero(inv == u) for u in range(ub.size)]
    width = max(len(g) for g in groups)
    idx = np.full((ub.size, width), beta.size, dtype=np.int64)
    for u, g in enumerate(groups):
        idx[u, : len(g)] = g
    return ub, idx


class _Conv(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, b_in: int, b_out: int, n_points: int, bias: bool
    ) -> None:
        super().__init__()
        for name, v in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("b_in", b_in),
            ("b_out", b_out),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.b_in, self.b_out = b_in, b_out
        self.L = min(b_in, b_out)
        self.weight = nn.Parameter(
            torch.randn(in_channels, out_channels, n_points) / math.sqrt(in_channels * n_points)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, b_in={self.b_in}, b_out={self.b_out}, "
            f"points={self.weight.shape[-1]}, bias={self.bias is not None}"
        )


class S2Convolution(_Conv):
    """S2 -> SO(3) correlation. ``(B, C_in, 2b_in, 2b_in)`` -> ``(B, C_out, 2b_out, 2b_out, 2b_out)``.

    Args:
        grid: (P, 2) kernel points ``(β, α)`` in radians (default :func:`s2_near_identity_grid`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        b_in: int,
        b_out: int,
        grid: np.ndarray | None = None,
        bias: bool = True,
    ) -> None:
        grid = s2_near_identity_grid() if grid is None else np.asarray(grid, dtype=np.float64)
        super().__init__(in_channels, out_channels, b_in, b_out, len(grid), bias)
        self.analysis = S2Analysis(b_in, self.L)
        self.synthesis = SO3Synthesis(self.L, b_out)
        y = spherical_harmonics(self.L, grid[:, 0], grid[:, 1])  # (P, L, M)
        self.register_buffer("y_re", _f32(y.real), persistent=False)
        self.register_buffer("y_im", _f32(y.imag), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fr, fi = self.analysis(x)  # (B, I, L, M)
        kr = torch.einsum("iop,pln->ioln", self.weight, self.y_re)
        ki = torch.einsum("iop,pln->ioln", self.weight, self.y_im)
        # ĥ^l_{kn} = conj(f̂^l_k · Σ_p w_p Y^l_n(x_p)).
        pr, pi = _complex_product("bilk,ioln->bolkn", fr, fi, kr, ki)
        out = self.synthesis(pr, -pi)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1, 1)
        return out


class SO3Convolution(_Conv):
    """SO(3) -> SO(3) correlation. ``(B, C_in, 2b_in, 2b_in, 2b_in)`` -> ``(B, C_out, 2b_out, 2b_out, 2b_out)``.

    Args:
        grid: (P, 3) kernel rotations ``(α, β, γ)`` in radians (default :func:`so3_near_identity_grid`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        b_in: int,
        b_out: int,
        grid: np.ndarray | None = None,
        bias: bool = True,
    ) -> None:
        grid = so3_near_identity_grid() if grid is None else np.asarray(grid, dtype=np.float64)
        super().__init__(in_channels, out_channels, b_in, b_out, len(grid), bias)
        self.analysis = SO3Analysis(b_in, self.L)
        self.synthesis = SO3Synthesis(self.L, b_out)
        # K^l_{mn} = Σ_p w_p e^{-imα_p} d^l_{mn}(β_p) e^{-inγ_p}, factorised over the few distinct
        # β of a kernel grid: K = Σ_u d(β_u) E_u with E_u[m, n] = Σ_{p: β_p = β_u} w_p e^{-imα_p - inγ_p}.
        # This keeps the buffers at O(P·M² + U·L·M²) instead of O(P·L·M²).
        ub, idx = _grouped_points(grid[:, 1])
        m = np.arange(-(self.L - 1), self.L)
        a = np.append(grid[:, 0], 0.0)[idx]  # (U, Pu)
        g = np.append(grid[:, 2], 0.0)[idx]
        ph = np.exp(-1j * (a[..., None, None] * m[:, None] + g[..., None, None] * m[None, :]))
        ph = ph * (idx < len(grid))[..., None, None]  # padding slots contribute nothing
        self.register_buffer("point_index", torch.from_numpy(idx), persistent=False)
        ph = np.stack([ph.real, ph.imag], axis=2).reshape(len(ub), idx.shape[1], -1)  # (U, Pu, [re | im]·M·N)
        self.register_buffer("phase", _f32(ph), persistent=False)
        # d^l_{mn}(β_u) laid out (U, L, 1, N, 1, 1, M) to broadcast against E in the kernel layout.
        d = wigner_d_at(self.L, ub).transpose(0, 1, 3, 2)  # (U, L, N, M)
        self.register_buffer("d_beta", _f32(d[:, :, None, :, None, None, :]), persistent=False)

    def _kernel_matrix(self) -> torch.Tensor:
        """Kernel spectrum ``Σ_p w_p D^l(Q_p)`` as (L, I·N, [re | im]·O·M), ready for the product."""
        i, o, m, u = self.in_channels, self.out_channels, 2 * self.L - 1, self.d_beta.shape[0]
        w = F.pad(self.weight, (0, 1))[:, :, self.point_index]  # (I, O, U, Pu)
        # E_u[m, n] = Σ_q w_q e^{-i(mα_q + nγ_q)}: one GEMM per distinct β, (U, I·O, [re | im]·M·N).
        e = torch.matmul(w.permute(2, 0, 1, 3).reshape(u, i * o, -1), self.phase)
        e = e.reshape(u, i, o, 2, m, m).permute(0, 1, 5, 3, 2, 4).contiguous()  # (U, I, N, 2, O, M)
        # K = Σ_u d(β_u) E_u: elementwise in (m, n), a short static loop over the distinct β
        # (3 for the default grid) with the innermost axis contiguous in both operands.
        k = e[0] * self.d_beta[0]
        for j in range(1, u):
            k = k + e[j] * self.d_beta[j]
        return k.reshape(self.L, i * m, 2 * o * m)  # (L, I, N, 2, O, M) flattened

    def kernel(self) -> Spectrum:
        """The kernel spectrum ``Σ_p w_p D^l(Q_p)``: (re, im), each (C_in, C_out, L, M, N)."""
        i, o, m = self.in_channels, self.out_channels, 2 * self.L - 1
        k = self._kernel_matrix().reshape(self.L, i, m, 2, o, m).permute(3, 1, 4, 0, 5, 2)
        return k[0], k[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fr, fi = self.analysis(x)  # (B, I, L, K, N)
        i, o, m, L = self.in_channels, self.out_channels, 2 * self.L - 1, self.L
        # ĥ^l_{km} = Σ_{i,n} f̂^l_{i,kn} K^l_{io,mn}: per degree one GEMM
        # (2·B·K, I·N) @ (I·N, 2·O·M) with [re; im] rows and [re | im] columns.
        f = torch.stack([fr, fi]).permute(3, 0, 1, 4, 2, 5).contiguous().reshape(L, -1, i * m)
        p = torch.matmul(f, self._kernel_matrix()).reshape(L, 2, -1, m, 2, o, m)  # (L, 2, B, K, 2, O, M)
        re = p[:, 0, :, :, 0] - p[:, 1, :, :, 1]
        im = p[:, 0, :, :, 1] + p[:, 1, :, :, 0]  # (L, B, K, O, M)
        out = self.synthesis(re.permute(1, 3, 0, 2, 4), im.permute(1, 3, 0, 2, 4))
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1, 1)
        return out


class SO3ToS2(_Conv):
    """SO(3) -> S2 correlation for dense outputs on the sphere.

    ``(B, C_in, 2b_in, 2b_in, 2b_in)`` -> ``(B, C_out, 2b_out, 2b_out)``.

    Args:
        grid: (P, 2) kernel points ``(β, α)`` in radians (default :func:`s2_near_identity_grid`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        b_in: int,
        b_out: int,
        grid: np.ndarray | None = None,
        bias: bool = True,
    ) -> None:
        grid = s2_near_identity_grid() if grid is None else np.asarray(grid, dtype=np.float64)
        super().__init__(in_channels, out_channels, b_in, b_out, len(grid), bias)
        self.analysis = SO3Analysis(b_in, self.L)
        self.synthesis = S2Synthesis(self.L, b_out)
        y = spherical_harmonics(self.L, grid[:, 0], grid[:, 1])  # (P, L, N)
        self.register_buffer("y_re", _f32(y.real), persistent=False)
        self.register_buffer("y_im", _f32(y.imag), persistent=False)
        # Mean over the circle {R : R x_p = x} brings a factor 4π/(2l+1) per degree.
        self.register_buffer(
            "scale", _f32(4 * np.pi / (2 * np.arange(self.L) + 1))[:, None], persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fr, fi = self.analysis(x)  # (B, I, L, M, N)
        kr = torch.einsum("iop,pln->ioln", self.weight, self.y_re)
        ki = torch.einsum("iop,pln->ioln", self.weight, self.y_im)
        # ĥ^l_k = 4π/(2l+1) conj(Σ_{i,n} f̂^l_{i,kn} Σ_p w_p Y^l_n(x_p)).
        pr, pi = _complex_product("bilkn,ioln->bolk", fr, fi, kr, ki)
        out = self.synthesis(pr * self.scale, -pi * self.scale)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out


def so3_integrate(x: torch.Tensor) -> torch.Tensor:
    """Normalised Haar integral ``(1/8π²) ∫ f dR`` (rotation invariant): ``(B, C, 2b, 2b, 2b)`` -> ``(B, C)``.

    Exact for band-limited signals: the mean over α and γ times the DH β weights / 2.
    """
    b = x.shape[-1] // 2
    w = torch.tensor(dh_weights(b) / 2.0, dtype=x.dtype, device=x.device)
    return torch.einsum("bcj,j->bc", x.mean(dim=(-1, -2)), w)


def s2_integrate(x: torch.Tensor) -> torch.Tensor:
    """Normalised integral ``(1/4π) ∫ f dx`` over S2: ``(B, C, 2b, 2b)`` -> ``(B, C)``."""
    b = x.shape[-1] // 2
    w = torch.tensor(dh_weights(b) / 2.0, dtype=x.dtype, device=x.device)
    return torch.einsum("bcj,j->bc", x.mean(dim=-1), w)


class SO3Integrate(nn.Module):
    """Module form of :func:`so3_integrate` with the weights as a buffer (export-friendly)."""

    def __init__(self, b: int) -> None:
        super().__init__()
        self.b = b
        self.register_buffer("w", _f32(dh_weights(b) / 2.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bcj,j->bc", x.mean(dim=(-1, -2)), self.w)
