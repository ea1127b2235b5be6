"""Nested windows, patch merging/expanding and the three shifted-window schemes vs healpy."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
import torch
from torch import nn

from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.models import hp_windows
from heal_swin.models.heal_swin import HealPatchExpand, HealPatchMerging, HealSwinBlock

EIGHT = tuple(range(8))
TWELVE = tuple(range(12))
ODD = (0, 5, 10)  # three non-adjacent faces: a stress case for seams


def _healpy_parent(grid: HealpixGrid, levels: int) -> np.ndarray:
    """Parent of every pixel found geometrically: the coarse pixel containing the fine centre."""
    return hp.vec2pix(grid.nside >> levels, *grid.vectors().T, nest=True)


@pytest.mark.parametrize("nside", [8, 64, 256])
@pytest.mark.parametrize("window", [4, 16, 64])
@pytest.mark.parametrize("base", [EIGHT, TWELVE])
def test_every_window_is_one_quadtree_node(nside: int, window: int, base) -> None:
    grid = HealpixGrid(nside, base)
    w = hp_windows.effective_window(window, nside)
    levels = (w.bit_length() - 1) // 2
    idx = torch.arange(grid.npix).reshape(1, -1, 1)
    windows = hp_windows.window_partition(idx, w)[0, :, :, 0].numpy()  # (nW, w) grid positions
    parents = _healpy_parent(grid, levels)[windows]
    assert (parents == parents[:, :1]).all()
    assert len(np.unique(parents[:, 0])) == len(parents)  # distinct nodes
    back = hp_windows.window_reverse(hp_windows.window_partition(idx, w))
    assert torch.equal(back, idx)


def test_window_shrinks_to_one_face() -> None:
    assert hp_windows.effective_window(64, 256) == 64
    assert hp_windows.effective_window(64, 4) == 16
    assert hp_windows.effective_window(64, 1) == 1
    with pytest.raises(ValueError, match="power of 4"):
        hp_windows.effective_window(32, 8)


@pytest.mark.parametrize("window", [4, 16, 64])
def test_window_face_xy_matches_healpy(window: int) -> None:
    grid = HealpixGrid(16, (3,))
    xy = hp_windows.window_face_xy(window)
    assert np.array_equal(xy, grid.face_xy()[:window])
    s = int(window**0.5)
    rel = hp_windows.relative_position_index(window)
    assert rel.min() == 0 and rel.max() == (2 * s - 1) ** 2 - 1
    assert (np.diag(rel) == rel[0, 0]).all()  # zero offset -> one table entry


@pytest.mark.parametrize("base", [EIGHT, TWELVE])
def test_patch_merging_groups_healpy_children(base) -> None:
    grid = HealpixGrid(8, base)
    merge = HealPatchMerging(1)
    merge.norm, merge.reduction = nn.Identity(), nn.Identity()  # expose the grouping
    x = torch.arange(grid.npix, dtype=torch.float64).reshape(1, -1, 1)
    groups = merge(x)[0].long().numpy()  # (N/4, 4) grid positions merged into each parent
    parents = _healpy_parent(grid, 1)
    coarse = grid.coarser(1)
    assert (parents[groups] == coarse.global_index[:, None]).all()


def test_patch_expand_feeds_the_four_children() -> None:
    torch.manual_seed(0)
    expand = HealPatchExpand(8, 4).double()
    x = torch.zeros(1, 6, 8, dtype=torch.float64)
    x[0, 3] = torch.randn(8, dtype=torch.float64)
    y = expand(x)[0]
    nonzero = y.abs().sum(-1) > 0
    assert nonzero.nonzero().flatten().tolist() == [12, 13, 14, 15]


# ------------------------------------------------------------------ shifts
CASES = [
    (nside, base, window, method)
    for nside in (1, 2, 4, 8, 32)
    for base in (EIGHT, TWELVE, ODD)
    for window in (4, 16, 64)
    for method in hp_windows.SHIFT_METHODS
]


@pytest.mark.parametrize("nside,base,window,method", CASES)
def test_shift_is_a_permutation_and_inverse_restores(nside, base, window, method) -> None:
    w = hp_windows.effective_window(window, nside)
    spec = hp_windows.build_shift(nside, base, w, method, 4)
    grid = HealpixGrid(nside, base)
    if spec is None:  # nothing to shift: a window of one token
        assert w == 1
        return
    assert np.array_equal(np.sort(spec.perm), np.arange(grid.npix))
    x = torch.randn(2, grid.npix, 3)
    assert torch.equal(x[:, torch.tensor(spec.perm)][:, torch.tensor(spec.inv)], x)
    if spec.allowed is not None:
        assert spec.allowed.shape == (grid.npix // w, w, w)


@pytest.mark.parametrize(
    "nside,base,method", [(256, EIGHT, "ring"), (256, EIGHT, "grid"), (256, TWELVE, "roll")]
)
def test_shift_at_nside_256(nside, base, method) -> None:
    spec = hp_windows.build_shift(nside, base, 64, method, 4)
    assert np.array_equal(np.sort(spec.perm), np.arange(len(base) * nside**2))


def test_roll_definition() -> None:
    spec = hp_windows.build_shift(4, EIGHT, 16, "roll", 4)
    assert np.array_equal(spec.perm, (np.arange(128) + 4) % 128)


@pytest.mark.parametrize("shift", [1, 4])
def test_ring_definition_full_sphere(shift: int) -> None:
    # On the full sphere the ring order of the grid is all ring indices: position p holds the
    # pixel `shift` places further along the spiral.
    grid = HealpixGrid(8, TWELVE)
    spec = hp_windows.build_shift(8, TWELVE, 64, "ring", shift)
    ring = grid.ring_index()
    assert np.array_equal(ring[spec.perm], (ring + shift) % grid.npix)


def test_ring_definition_partial_grid_follows_spiral() -> None:
    grid = HealpixGrid(8, EIGHT)
    spec = hp_windows.build_shift(8, EIGHT, 64, "ring", 4)
    ring = grid.ring_index()
    rank = np.argsort(np.argsort(ring))  # position along the grid's spiral
    assert np.array_equal(rank[spec.perm], (rank + 4) % grid.npix)


def test_grid_definition_inside_faces() -> None:
    nside, h = 16, 4  # window 64 -> side 8 -> half side 4
    grid = HealpixGrid(nside, TWELVE)
    spec = hp_windows.build_shift(nside, TWELVE, 64, "grid", 0)
    x, y, f = hp.pix2xyf(nside, grid.global_index, nest=True)
    sx, sy, sf = hp.pix2xyf(nside, grid.global_index[spec.perm], nest=True)
    inside = (x + h < nside) & (y + h < nside)
    assert (sf[inside] == f[inside]).all()
    assert (sx[inside] == x[inside] + h).all() and (sy[inside] == y[inside] + h).all()
    # Across the seams of the equatorial faces the shift continues into the neighbour face
    # (no pixel is lost on the full sphere away from the poles): sources stay close.
    vec = grid.vectors()
    moved = np.degrees(np.arccos(np.clip((vec * vec[spec.perm]).sum(1), -1, 1)))
    res = np.degrees(hp.nside2resol(nside))
    assert np.median(moved) < 2 * h * res


def _slow_components(grid: HealpixGrid, perm: np.ndarray, w: int) -> np.ndarray:
    """Reference mask: BFS over healpy neighbours per window, pure Python."""
    allowed = np.zeros((grid.npix // w, w, w), dtype=bool)
    glob = grid.global_index
    for win in range(grid.npix // w):
        pix = [int(glob[perm[win * w + j]]) for j in range(w)]
        where = {p: j for j, p in enumerate(pix)}
        comp = [-1] * w
        for start in range(w):
            if comp[start] >= 0:
                continue
            comp[start] = start
            todo = [start]
            while todo:
                j = todo.pop()
                for nb in hp.get_all_neighbours(grid.nside, pix[j], nest=True):
                    k = where.get(int(nb))
                    if nb >= 0 and k is not None and comp[k] < 0:
                        comp[k] = start
                        todo.append(k)
        c = np.asarray(comp)
        allowed[win] = c[:, None] == c[None, :]
    return allowed


MASK_CASES = [
    (nside, base, window, method)
    for nside, base in ((4, EIGHT), (8, EIGHT), (8, TWELVE), (4, ODD), (2, TWELVE))
    for window in (4, 16, 64)
    for method in hp_windows.SHIFT_METHODS
]


@pytest.mark.parametrize("nside,base,window,method", MASK_CASES)
def test_mask_matches_slow_healpy_reference(nside, base, window, method) -> None:
    grid = HealpixGrid(nside, base)
    w = hp_windows.effective_window(window, nside)
    spec = hp_windows.build_shift(nside, base, w, method, 4)
    ref = _slow_components(grid, spec.perm, w)
    got = np.ones_like(ref) if spec.allowed is None else spec.allowed
    assert np.array_equal(got, ref)
    # Allowed pairs are close on the sphere: at most a chain of w-1 neighbour steps.
    vec = grid.vectors()[spec.perm].reshape(-1, w, 3)
    cos = np.einsum("nic,njc->nij", vec, vec)
    step = np.cos(3 * hp.nside2resol(nside))
    assert (cos[got] >= np.cos(min(np.pi, (w - 1) * 3 * hp.nside2resol(nside))) - 1e-9).all()
    # Pairs that are healpy neighbours are never forbidden.
    assert not ((cos > step) & ~got & _are_neighbours(grid, spec.perm, w)).any()


def _are_neighbours(grid: HealpixGrid, perm: np.ndarray, w: int) -> np.ndarray:
    glob = grid.global_index[perm].reshape(-1, w)
    nb = hp.get_all_neighbours(grid.nside, glob.reshape(-1), nest=True).T.reshape(-1, w, 8)
    return (nb[:, :, None, :] == glob[:, None, :, None]).any(-1)


def test_ring_mask_isolates_the_gap_of_eight_faces() -> None:
    # With 8 base pixels the southern equatorial rings skip faces 8-11: some windows must be masked.
    spec = hp_windows.build_shift(16, EIGHT, 64, "ring", 4)
    assert spec.allowed is not None
    assert (~spec.allowed).any(axis=(1, 2)).sum() > 0
    # ... and most windows are a single region (the shift is local).
    assert (spec.allowed.all(axis=(1, 2))).mean() > 0.5


@pytest.mark.parametrize("method", hp_windows.SHIFT_METHODS)
def test_block_attention_respects_mask(method: str) -> None:
    """Through a real block: output j depends on input i only if i, j share a window and region."""
    torch.manual_seed(0)
    grid = HealpixGrid(4, EIGHT)
    blk = HealSwinBlock(grid, dim=4, num_heads=1, window_size=16, shift=method, shift_size=4, mlp_ratio=1.0)
    blk = blk.double()
    spec = hp_windows.build_shift(4, EIGHT, 16, method, 4)
    allowed = np.ones((grid.npix // 16, 16, 16), bool) if spec.allowed is None else spec.allowed
    # dependency[p_out, p_in] in grid positions
    dep = np.zeros((grid.npix, grid.npix), bool)
    for win in range(grid.npix // 16):
        pos = spec.perm[win * 16 : (win + 1) * 16]
        dep[np.ix_(pos, pos)] = allowed[win]
    x = torch.randn(1, grid.npix, 4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: blk._attend(t)[0].sum(-1), x, vectorize=True)
    jac = jac[:, 0].abs().sum(-1)  # (N_out, N_in)
    assert np.array_equal(jac.numpy() > 0, dep)  # no leak across windows/regions, no pair lost
