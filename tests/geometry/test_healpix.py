"""HealpixGrid against healpy: directions, index maps, quad-tree parents, validation."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest

from heal_swin.geometry.healpix import GridError, HealpixGrid, face_coordinates


@pytest.mark.parametrize("nside", [1, 2, 16, 256])
@pytest.mark.parametrize("base", [tuple(range(8)), tuple(range(12)), (11, 3, 5)])
def test_vectors_equal_healpy_nested(nside, base):
    grid = HealpixGrid(nside, base)
    i = np.arange(grid.npix)
    expected_global = np.asarray(base)[i // nside**2] * nside**2 + i % nside**2
    np.testing.assert_array_equal(grid.global_index, expected_global)
    np.testing.assert_allclose(
        grid.vectors(), np.stack(hp.pix2vec(nside, expected_global, nest=True), -1), atol=0
    )
    np.testing.assert_array_equal(grid.ring_index(), hp.nest2ring(nside, expected_global))
    x, y, _f = hp.pix2xyf(nside, expected_global, nest=True)
    np.testing.assert_array_equal(grid.face_xy(), np.stack([x, y], -1))
    assert grid.npix == len(base) * nside**2


@pytest.mark.parametrize("nside", [2, 8, 64])
def test_parent_is_healpy_parent(nside):
    grid = HealpixGrid(nside, tuple(range(12)))
    for levels in (1, 2) if nside >= 4 else (1,):
        coarse = grid.coarser(levels)
        # The pixel of the coarser nside that contains each fine pixel's centre is its parent.
        parent = hp.vec2pix(coarse.nside, *grid.vectors().T, nest=True)
        np.testing.assert_array_equal(coarse.global_index[grid.parent_index(levels)], parent)
    np.testing.assert_array_equal(
        grid.finer().parent_index()[grid.children_index()], np.arange(grid.npix)[:, None].repeat(4, 1)
    )


def test_local_index_inverts_global_index():
    grid = HealpixGrid(8, (4, 0, 9))
    np.testing.assert_array_equal(grid.local_index(grid.global_index), np.arange(grid.npix))
    other = np.arange(12 * 64)
    inside = np.isin(other // 64, [4, 0, 9])
    assert np.all(grid.local_index(other)[~inside] == -1)
    assert grid.local_index(np.array([-1, 12 * 64])).tolist() == [-1, -1]


@pytest.mark.parametrize(
    "nside, base, match",
    [
        (3, range(8), "power of two"),
        (0, range(8), "power of two"),
        (True, range(8), "integer"),
        (8.0, range(8), "integer"),
        (8, (0, 0, 1), "unique"),
        (8, (0, 12), "0..11"),
        (8, (), "at least one"),
        (8, ("a",), "integers"),
    ],
)
def test_validation(nside, base, match):
    with pytest.raises(GridError, match=match):
        HealpixGrid(nside, base)


@pytest.mark.parametrize("nside", [1, 4, 64, 1024])
def test_face_coordinates_floor_is_healpy_pixel(nside):
    rng = np.random.default_rng(nside)
    v = rng.normal(size=(100_000, 3))
    # Add the awkward directions: poles, the |z| = 2/3 transition, phi = 0 and just below 2 pi.
    special = [
        [0, 0, 1],
        [0, 0, -1],
        [1, 0, 0],
        [np.sqrt(5) / 3, 0, 2 / 3],
        [np.sqrt(5) / 3, 0, -2 / 3],
        [1, -1e-17, 0.1],
    ]
    v = np.concatenate([v, special])
    face, x, y = face_coordinates(nside, v)
    assert np.all((x >= 0) & (x < nside) & (y >= 0) & (y < nside))
    pix = hp.xyf2pix(nside, np.floor(x).astype(int), np.floor(y).astype(int), face, nest=True)
    mismatch = pix != hp.vec2pix(nside, *v.T, nest=True)
    # Directions exactly on a pixel edge may be assigned to either side; nothing else may differ.
    assert mismatch.sum() <= 1


def test_face_coordinates_centres_are_half_integers():
    grid = HealpixGrid(32, tuple(range(12)))
    face, x, y = face_coordinates(32, grid.vectors())
    xy = grid.face_xy()
    np.testing.assert_array_equal(face, grid.global_index // 32**2)
    np.testing.assert_allclose(x, xy[:, 0] + 0.5, atol=1e-9)
    np.testing.assert_allclose(y, xy[:, 1] + 0.5, atol=1e-9)
