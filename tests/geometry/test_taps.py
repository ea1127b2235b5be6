"""Forward resampling as sampling taps, against independent formulations.

bilinear: OpenCV's ``cv2.remap`` at the projected pixel centres (what the projector did before the
taps). area: the mean of the bilinearly interpolated image over each HEALPix pixel's footprint,
estimated by brute force -- millions of uniformly random rays binned with healpy's ``vec2pix``,
the image interpolated by scipy's ``map_coordinates`` -- independent of the NESTED sub-pixels
the taps use.
"""

from __future__ import annotations

import cv2
import healpy as hp
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from heal_swin.geometry import FisheyeCamera, HealpixGrid, SphereProjector
from heal_swin.geometry.taps import area_level, area_taps, bilinear_taps


@pytest.fixture
def camera(fv_calib):
    return FisheyeCamera.from_json(fv_calib).scaled(160, 121)


def _cv2_bilinear(image: np.ndarray, camera: FisheyeCamera, grid: HealpixGrid) -> np.ndarray:
    rays = grid.vectors()
    uv, sees = camera.project(rays), camera.sees(rays)
    u = np.where(sees, np.clip(uv[:, 0], 0, camera.width - 1), -16).astype(np.float32)[None]
    v = np.where(sees, np.clip(uv[:, 1], 0, camera.height - 1), -16).astype(np.float32)[None]
    return cv2.remap(image, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)[0]


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "area"])
def test_taps_layout(camera, mode):
    grid = HealpixGrid(8)
    taps = SphereProjector(camera, grid).taps(mode)
    assert taps.index.dtype == np.int32 and taps.weight.dtype == np.float32
    assert taps.index.shape == taps.weight.shape == (grid.npix, taps.taps)
    assert taps.index.min() >= 0 and taps.index.max() < camera.width * camera.height
    np.testing.assert_allclose(taps.weight.sum(axis=1)[taps.valid], 1, atol=1e-5)
    assert np.all(taps.weight[~taps.valid] == 0) and taps.weight.min() >= 0
    np.testing.assert_array_equal(taps.valid, camera.sees(grid.vectors()))


def test_bilinear_taps_equal_cv2_remap(camera):
    grid = HealpixGrid(32)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (camera.height, camera.width, 3), dtype=np.uint8)
    ours = SphereProjector(camera, grid).to_sphere(image, "bilinear")
    ref = _cv2_bilinear(image, camera, grid)
    assert ours.dtype == np.uint8
    # cv2 quantises the weights to 1/32: at most one grey level apart.
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    flt = rng.random((camera.height, camera.width)).astype(np.float32)
    np.testing.assert_allclose(
        bilinear_taps(camera, grid).apply(flt), _cv2_bilinear(flt, camera, grid), atol=0.04
    )


def test_area_is_the_footprint_mean(camera):
    grid = HealpixGrid(8)  # ~5 image pixels per grid pixel: point sampling aliases
    rng = np.random.default_rng(0)
    image = rng.random((camera.height, camera.width)).astype(np.float32)  # white noise
    rays = rng.normal(size=(2_000_000, 3))
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    rays = rays[camera.sees(rays)]
    pix = grid.local_index(hp.vec2pix(grid.nside, rays[:, 0], rays[:, 1], rays[:, 2], nest=True))
    rays, pix = rays[pix >= 0], pix[pix >= 0]
    uv = camera.project(rays)
    val = map_coordinates(image, [uv[:, 1], uv[:, 0]], order=1, mode="nearest")
    count = np.bincount(pix, minlength=grid.npix)
    ref = np.bincount(pix, weights=val, minlength=grid.npix) / np.maximum(count, 1)
    proj = SphereProjector(camera, grid)
    valid = proj.valid_mask & (count >= 1000)
    assert valid.sum() > 0.8 * proj.valid_mask.sum()
    area = proj.to_sphere(image, "area")
    bilinear = proj.to_sphere(image, "bilinear")
    err_area, err_bil = np.abs(area - ref)[valid], np.abs(bilinear - ref)[valid]
    # Monte-Carlo noise of the reference: ~0.2 / sqrt(count) ~ 0.005.
    assert err_area.mean() < 0.006 and err_area.max() < 0.03, (err_area.mean(), err_area.max())
    assert err_bil.mean() > 20 * err_area.mean()  # what the anti-aliasing removes


def test_area_is_bilinear_on_a_grid_finer_than_the_image(camera):
    grid = HealpixGrid(128)
    assert area_level(camera, grid) == 0
    a, b = area_taps(camera, grid), bilinear_taps(camera, grid)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.weight, b.weight)


def test_area_keeps_constants_and_smooth_functions(camera):
    grid = HealpixGrid(16)
    proj = SphereProjector(camera, grid)
    const = np.full((camera.height, camera.width, 3), 200, np.uint8)
    out = proj.to_sphere(const, "area")
    assert (
        out.dtype == np.uint8 and np.all(out[proj.valid_mask] == 200) and np.all(out[~proj.valid_mask] == 0)
    )
    # A linear ramp in u: its footprint mean is the ramp at the footprint's centroid, close to
    # the pixel centre's value.
    ramp = np.broadcast_to(np.arange(camera.width, dtype=np.float32), (camera.height, camera.width))
    diff = np.abs(proj.to_sphere(ramp, "area") - proj.to_sphere(ramp, "bilinear"))[proj.valid_mask]
    assert np.median(diff) < 0.5


def test_unknown_mode_names_the_modes(camera):
    with pytest.raises(ValueError, match="nearest, bilinear, area"):
        SphereProjector(camera, HealpixGrid(4)).taps("cubic")
