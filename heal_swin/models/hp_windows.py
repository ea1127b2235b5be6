"""Nested HEALPix windows and shifted windows, precomputed as index/mask arrays.

Windows
    A window is ``w = 4**k`` consecutive NESTED pixels of a :class:`HealpixGrid`, i.e. one node
    of the quad-tree (all its pixels share the parent ``index // w``). Partition and reverse are
    plain reshapes ``(B, N, C) <-> (B, N // w, w, C)``. A window never spans two base faces: a
    level with fewer than ``w`` pixels per face uses ``w = nside**2`` (one window per face), see
    :func:`effective_window`.

Shifted windows
    A shift is a permutation ``perm`` of the grid's pixels (``shifted = x[:, perm]``, undone by
    ``x = shifted[:, inv]``) followed by the usual window partition, plus a boolean mask
    ``allowed (nW, w, w)`` that says which tokens of a shifted window may attend to each other.
    Three permutations are provided (``SHIFT_METHODS``):

    ``roll``  cyclic 1-D shift of the nested index by ``shift`` positions (``torch.roll``):
              position ``p`` takes pixel ``p + shift``, the direction of the paper's code
              (``shift_sign=+1``).
    ``ring``  the paper's choice. Sort the grid's pixels by their RING index (the HEALPix
              iso-latitude rings, concatenated into one spiral), take the pixel ``shift`` places
              further along that order (cyclically, over the grid's pixels only), map back to
              NESTED. Direction: position ``k`` of the spiral takes pixel ``k + shift``, i.e.
              content moves towards lower RING index; the paper's code moves it the other way,
              position ``k`` takes pixel ``k - shift`` (``shift < 0`` here, ``shift_sign=-1`` in
              the model reproduces it). For a grid of fewer than 12 faces the spiral order
              skips the missing faces, so a few pixels take their value from across such a gap;
              the mask isolates them (the paper's code rolls over all 12 faces and refills the
              positions whose source lies outside the grid, so the two differ there).
    ``grid``  a shift by half a window side in both face directions, ``(x, y) <- (x + h, y + h)``,
              i.e. towards each face's north corner. It is computed on the HEALPix projection
              plane, where all 12 faces are equally oriented squares, so the shift crosses face
              seams: a pixel near a face's north edge takes its value from the neighbouring
              face. Positions whose source falls outside the grid (into the polar gaps of the
              projection, or a face that is not part of the grid) take the pixels nobody else
              took, in index order, and the mask isolates them (the reference's "lost pixels").
              The paper's code shifts the other way, ``(x, y) <- (x - h, y - h)``; with a shift
              of half a window side both give the same windows away from face seams.

    The mask is one definition for all three methods (and any set of base pixels and levels):
    **two tokens of a shifted window may attend to each other iff they are connected by a chain
    of HEALPix neighbours (8-neighbourhood, ``healpy.get_all_neighbours``) that stays inside the
    window.** This is what Swin's region labelling achieves on a flat image (the cyclically
    wrapped strips are not adjacent to the rest of their window); here it is computed on the
    sphere, so it is exact across base-face seams and at every level. Unshifted windows are
    quad-tree nodes and hence always connected; they need no mask.

Everything is numpy/healpy at construction time and cached; models turn the arrays into
non-persistent buffers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import healpy as hp
import numpy as np

from heal_swin.geometry.healpix import HealpixGrid

__all__ = [
    "SHIFT_METHODS",
    "ShiftSpec",
    "build_shift",
    "effective_window",
    "relative_position_index",
    "shift_permutation",
    "window_components",
    "window_face_xy",
    "window_partition",
    "window_reverse",
]

SHIFT_METHODS: tuple[str, ...] = ("roll", "ring", "grid")


def _is_power_of_4(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0 and (n.bit_length() - 1) % 2 == 0


def effective_window(window_size: int, nside: int) -> int:
    """Window used at a level of resolution ``nside``: ``min(window_size, nside**2)``.

    A window is a quad-tree node, so it can be at most one whole base face.
    """
    if not _is_power_of_4(int(window_size)):
        raise ValueError(f"window_size: expected a power of 4, got {window_size}")
    return min(int(window_size), nside * nside)


# ------------------------------------------------------------------ partition
def window_partition(x, window_size: int):
    """``(B, N, C) -> (B, N // w, w, C)``: consecutive nested pixels form a window."""
    return x.reshape(x.shape[0], -1, window_size, x.shape[-1])


def window_reverse(windows):
    """``(B, nW, w, C) -> (B, nW * w, C)``, inverse of :func:`window_partition`."""
    return windows.reshape(windows.shape[0], -1, windows.shape[-1])


# --------------------------------------------------------- position in window
def window_face_xy(window_size: int) -> np.ndarray:
    """(w, 2) int64 ``(x, y)`` of position ``j`` in a window: the nested bit de-interleave.

    A window of ``4**k`` nested pixels is a ``2**k x 2**k`` square in face coordinates; bit
    ``2i`` of ``j`` is bit ``i`` of x and bit ``2i+1`` is bit ``i`` of y (healpy's convention).
    """
    j = np.arange(window_size, dtype=np.int64)
    x = np.zeros_like(j)
    y = np.zeros_like(j)
    for i in range(max(1, (window_size.bit_length() - 1) // 2)):
        x |= ((j >> (2 * i)) & 1) << i
        y |= ((j >> (2 * i + 1)) & 1) << i
    return np.stack([x, y], axis=-1)


def relative_position_index(window_size: int) -> np.ndarray:
    """(w, w) int64 index into a Swin-style ``(2s-1)**2`` bias table, ``s = sqrt(w)``.

    For shifted windows the index refers to the *position in the window*, not to where the
    token came from (as in the reference implementation): the bias is a function of the window
    layout, which is the same for every window.
    """
    s = round(window_size**0.5)
    xy = window_face_xy(window_size)
    d = xy[:, None, :] - xy[None, :, :] + (s - 1)
    return d[..., 0] * (2 * s - 1) + d[..., 1]


# --------------------------------------------------------------- permutations
def _roll_perm(grid: HealpixGrid, shift: int) -> np.ndarray:
    return (np.arange(grid.npix, dtype=np.int64) + shift) % grid.npix


def _ring_perm(grid: HealpixGrid, shift: int) -> np.ndarray:
    order = np.argsort(grid.ring_index(), kind="stable")  # grid positions along the spiral
    perm = np.empty(grid.npix, dtype=np.int64)
    perm[order] = np.roll(order, -shift)  # position order[k] takes order[k + shift]
    return perm


def _plane_uv(grid: HealpixGrid) -> tuple[np.ndarray, np.ndarray]:
    """Integer coordinates of the pixel centres on the HEALPix projection plane.

    Face f (row r = f // 4, column c = f % 4) is a square rotated by 45 degrees centred at
    ``X = 2c + 1`` (r = 0, 2) or ``2c`` (r = 1), ``Y = 1 - r`` in units of half a face diagonal;
    face x grows towards the east corner and y towards the west corner. Scaled by nside:
    ``U = X*nside + x - y`` (mod 8*nside) and ``V = (Y - 1)*nside + x + y + 1``.
    """
    n = grid.nside
    face = grid.global_index // (n * n)
    xy = grid.face_xy()
    row, col = face // 4, face % 4
    xc = np.where(row == 1, 2 * col, 2 * col + 1)
    u = (xc * n + xy[:, 0] - xy[:, 1]) % (8 * n)
    v = -row * n + xy[:, 0] + xy[:, 1] + 1
    return u, v


def _grid_perm(grid: HealpixGrid, half: int) -> np.ndarray:
    n = grid.nside
    u, v = _plane_uv(grid)
    span = 8 * n  # u in [0, 8n); v in (-2n, 2n]
    keys = u * (8 * span) + (v + 4 * span)
    order = np.argsort(keys)
    sorted_keys = keys[order]
    want = u * (8 * span) + (v + 2 * half + 4 * span)  # (x + h, y + h) is 2h further along V
    pos = np.clip(np.searchsorted(sorted_keys, want), 0, grid.npix - 1)
    found = sorted_keys[pos] == want
    perm = np.where(found, order[pos], -1)
    taken = np.zeros(grid.npix, dtype=bool)
    taken[perm[found]] = True
    lost = np.flatnonzero(~taken)
    perm[~found] = lost  # same count: the translation is injective
    return perm


def shift_permutation(grid: HealpixGrid, window: int, method: str, shift: int) -> np.ndarray:
    """(N,) int64 ``perm`` with ``shifted = x[perm]``; ``np.argsort(perm)`` undoes it."""
    if method == "roll":
        return _roll_perm(grid, shift)
    if method == "ring":
        return _ring_perm(grid, shift)
    if method == "grid":
        return _grid_perm(grid, round(window**0.5) // 2)
    raise ValueError(f"shift method: expected one of {SHIFT_METHODS}, got {method!r}")


# ----------------------------------------------------------------- the mask
@lru_cache(maxsize=16)
def _neighbours(nside: int, base: tuple[int, ...]) -> np.ndarray:
    """(N, 8) grid positions of each pixel's HEALPix neighbours, -1 where none / not in grid."""
    grid = HealpixGrid(nside, base)
    nb = np.asarray(hp.get_all_neighbours(nside, grid.global_index, nest=True)).T
    local = grid.local_index(np.where(nb >= 0, nb, 0))
    out = np.where(nb >= 0, local, -1)
    out.setflags(write=False)
    return out


def window_components(grid: HealpixGrid, perm: np.ndarray, window: int) -> np.ndarray:
    """(N,) label of the connected component of each shifted position within its window.

    Positions ``p`` hold pixel ``perm[p]``; two positions are linked when they are in the same
    window (``p // window``) and their pixels are HEALPix neighbours. Labels are the smallest
    position of the component (min-label propagation, vectorised).
    """
    n = grid.npix
    pos_of = np.empty(n, dtype=np.int64)
    pos_of[perm] = np.arange(n, dtype=np.int64)
    nb = _neighbours(grid.nside, grid.base_pixels)[perm]  # (N, 8) neighbour pixels of each position
    nb_pos = np.where(nb >= 0, pos_of[np.maximum(nb, 0)], -1)
    own_win = np.arange(n, dtype=np.int64)[:, None] // window
    link = (nb_pos >= 0) & (nb_pos // window == own_win)
    src = np.where(link, nb_pos, np.arange(n)[:, None])
    labels = np.arange(n, dtype=np.int64)
    while True:  # converges in at most the window's diameter (in neighbour steps) iterations
        new = np.minimum(labels, labels[src].min(axis=1))
        new = new[new]  # pointer jumping: speeds up convergence, keeps labels valid
        if np.array_equal(new, labels):
            return labels
        labels = new


@dataclass(frozen=True)
class ShiftSpec:
    """Precomputed shift of one level: ``perm``, ``inv`` (N,) and ``allowed`` (nW, w, w) or None."""

    perm: np.ndarray
    inv: np.ndarray
    allowed: np.ndarray | None


@lru_cache(maxsize=64)
def build_shift(
    nside: int, base_pixels: tuple[int, ...], window: int, method: str, shift: int
) -> ShiftSpec | None:
    """Shift of a level with ``window`` tokens per window; None when there is nothing to shift.

    ``shift`` is in nested (``roll``) or ring (``ring``) positions, its magnitude clamped to
    ``window // 2``; a negative ``shift`` runs the other way along the order (the HEAL-SWIN
    paper's code runs its ring shift that way). ``grid`` always shifts by half a window side.
    """
    grid = HealpixGrid(nside, tuple(base_pixels))
    size = min(abs(shift), window // 2)
    if window < 4 or (method != "grid" and size < 1):
        return None
    perm = shift_permutation(grid, window, method, size if shift >= 0 else -size)
    inv = np.argsort(perm).astype(np.int64)
    labels = window_components(grid, perm, window).reshape(-1, window)
    allowed = labels[:, :, None] == labels[:, None, :]
    if allowed.all():
        allowed = None
    for a in (perm, inv) + ((allowed,) if allowed is not None else ()):
        a.setflags(write=False)
    return ShiftSpec(perm=perm, inv=inv, allowed=allowed)
