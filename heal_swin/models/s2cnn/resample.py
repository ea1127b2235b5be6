"""Resampling between a camera's HEALPix grid and the Driscoll–Healy grid, both directions.

Both maps are precomputed once (numpy float64, cached in memory and optionally on disk) as
``(M, 4)`` neighbour indices and weights, and applied in torch as one ``index_select`` gather
plus a weighted sum -- no healpy on the hot path and an export-friendly graph.

- HEALPix -> DH: healpy's bilinear interpolation on the (NESTED) HEALPix grid. Neighbours outside
  the grid's base pixels get weight 0 and the rest are renormalised; DH samples without any
  valid neighbour are 0 and flagged in ``mask``.
- DH -> HEALPix: bilinear in (β, α) on the DH grid, periodic in α; across a pole the neighbour
  row is the same row at α + π.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
import torch
from torch import nn

from heal_swin.geometry.healpix import HealpixGrid

from ._cache import cached_arrays
from .so3 import dh_alphas, dh_betas

__all__ = ["DHToHealpix", "HealpixToDH", "dh_to_healpix_map", "healpix_to_dh_map"]


def _build_hp_to_dh(nside: int, base: tuple[int, ...], b: int) -> dict[str, np.ndarray]:
    grid = HealpixGrid(nside, base)
    beta, alpha = np.meshgrid(dh_betas(b), dh_alphas(b), indexing="ij")
    pix, w = hp.get_interp_weights(nside, beta.ravel(), alpha.ravel(), nest=True)  # (4, M) each
    local = grid.local_index(pix).T  # (M, 4)
    w = np.where(local >= 0, w.T, 0.0)
    total = w.sum(axis=1, keepdims=True)
    valid = total[:, 0] > 1e-12
    w = np.where(valid[:, None], w / np.where(total > 0, total, 1.0), 0.0)
    return {"index": np.where(local >= 0, local, 0).astype(np.int64), "weight": w, "valid": valid}


def healpix_to_dh_map(
    nside: int, base_pixels: tuple[int, ...], b: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear HEALPix -> DH map: index (4b², 4) int64, weight (4b², 4) float64, valid (4b²,) bool.

    Row ``j·2b + k`` is the DH sample ``(β_j, α_k)``; indices are positions in the grid
    ``HealpixGrid(nside, base_pixels)``.
    """
    base = tuple(int(x) for x in base_pixels)
    a = cached_arrays(
        "hp_to_dh", {"nside": nside, "base": list(base), "b": b}, lambda: _build_hp_to_dh(nside, base, b)
    )
    return a["index"], a["weight"], a["valid"]


def _build_dh_to_hp(nside: int, base: tuple[int, ...], b: int) -> dict[str, np.ndarray]:
    theta, phi = HealpixGrid(nside, base).angles()
    nb = 2 * b
    # Continuous DH indices: β_j = π(2j+1)/(4b)  <=>  j = 2bβ/π - 1/2;  α_k = πk/b  <=>  k = bα/π.
    jf = nb * theta / np.pi - 0.5
    kf = np.mod(phi, 2 * np.pi) * b / np.pi
    j0 = np.floor(jf).astype(np.int64)
    k0 = np.floor(kf).astype(np.int64)
    t = jf - j0
    s = kf - k0
    idx, wts = [], []
    for dj, wj in ((0, 1 - t), (1, t)):
        j = j0 + dj
        # Reflect rows past a pole; the reflected sample sits at α + π.
        over = (j < 0) | (j >= nb)
        shift = np.where(over, b, 0)
        j = np.where(j < 0, -1 - j, np.where(j >= nb, 2 * nb - 1 - j, j))
        for dk, wk in ((0, 1 - s), (1, s)):
            k = np.mod(k0 + dk + shift, nb)
            idx.append(j * nb + k)
            wts.append(wj * wk)
    return {"index": np.stack(idx, axis=1), "weight": np.stack(wts, axis=1)}


def dh_to_healpix_map(nside: int, base_pixels: tuple[int, ...], b: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear DH -> HEALPix map: index (N, 4) int64 into the flattened ``(2b·2b)`` DH grid, weight (N, 4)."""
    base = tuple(int(x) for x in base_pixels)
    a = cached_arrays(
        "dh_to_hp", {"nside": nside, "base": list(base), "b": b}, lambda: _build_dh_to_hp(nside, base, b)
    )
    return a["index"], a["weight"]


def _gather(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``out[..., i] = Σ_q x[..., index[i, q]] weight[i, q]`` for x (B, C, K): (B, C, M)."""
    g = torch.index_select(x, 2, index.reshape(-1)).unflatten(2, index.shape)  # (B, C, M, 4)
    return (g * weight).sum(dim=-1)


class HealpixToDH(nn.Module):
    """HEALPix ``(B, C, N)`` -> DH ``(B, C, 2b, 2b)`` (bilinear; 0 where no grid pixel is near).

    Attributes:
        mask: (2b, 2b) bool buffer, True where the DH sample has valid HEALPix neighbours.
    """

    def __init__(self, grid: HealpixGrid, b: int) -> None:
        super().__init__()
        self.grid, self.b = grid, b
        index, weight, valid = healpix_to_dh_map(grid.nside, grid.base_pixels, b)
        self.register_buffer("index", torch.from_numpy(np.array(index)), persistent=False)
        self.register_buffer("weight", torch.from_numpy(np.array(weight, dtype=np.float32)), persistent=False)
        self.register_buffer("mask", torch.from_numpy(np.array(valid)).view(2 * b, 2 * b), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _gather(x, self.index, self.weight).unflatten(2, (2 * self.b, 2 * self.b))


class DHToHealpix(nn.Module):
    """DH ``(B, C, 2b, 2b)`` -> HEALPix ``(B, C, N)`` (bilinear in β, α)."""

    def __init__(self, grid: HealpixGrid, b: int) -> None:
        super().__init__()
        self.grid, self.b = grid, b
        index, weight = dh_to_healpix_map(grid.nside, grid.base_pixels, b)
        self.register_buffer("index", torch.from_numpy(np.array(index)), persistent=False)
        self.register_buffer("weight", torch.from_numpy(np.array(weight, dtype=np.float32)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _gather(x.flatten(2), self.index, self.weight)
