"""SphereProjector against independent math: analytic images, healpy pixel lookup, round trips."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest

from heal_swin.geometry import FisheyeCamera, HealpixGrid, ImageSizeError, SphereProjector
from heal_swin.geometry import projector as projector_module


def smooth(v: np.ndarray) -> np.ndarray:
    """A smooth test function of the direction, (..., 3) -> (..., 3) in [0, 1]."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack(
        [0.5 + 0.4 * np.sin(2 * x + y), 0.5 + 0.4 * z * y, 0.5 + 0.3 * np.cos(3 * x * z)], axis=-1
    )


@pytest.fixture
def camera(fv_calib):
    # A quarter-size WoodScape FV camera keeps the tests fast; the geometry is the same.
    return FisheyeCamera.from_json(fv_calib).scaled(320, 242)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    return float(10 * np.log10(peak**2 / np.mean((a - b) ** 2)))


def test_analytic_image_projects_to_the_function(camera):
    grid = HealpixGrid(64)
    image = smooth(camera.pixel_rays()).astype(np.float32)  # rendered through the camera
    proj = SphereProjector(camera, grid)
    sphere = proj.to_sphere(image)
    valid = proj.valid_mask
    assert sphere.shape == (grid.npix, 3) and sphere.dtype == np.float32
    truth = smooth(grid.vectors())
    err = np.abs(sphere[valid] - truth[valid])
    # Bilinear error ~ curvature * (pixel size)^2: tiny for a smooth function.
    assert err.max() < 2e-3, err.max()
    assert np.all(sphere[~valid] == 0)
    np.testing.assert_array_equal(valid, camera.sees(grid.vectors()))


def test_nearest_is_the_pixel_under_the_projected_centre(camera):
    grid = HealpixGrid(32, tuple(range(12)))
    proj = SphereProjector(camera, grid)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=(camera.height, camera.width)).astype(np.uint8)
    sphere = proj.to_sphere(labels, mode="nearest")
    uv = camera.project(grid.vectors())
    valid = proj.valid_mask
    u = np.clip(np.round(uv[valid, 0]).astype(int), 0, camera.width - 1)
    v = np.clip(np.round(uv[valid, 1]).astype(int), 0, camera.height - 1)
    np.testing.assert_array_equal(sphere[valid], labels[v, u])
    assert sphere.dtype == np.uint8 and np.all(sphere[~valid] == 0)


def test_nearest_preserves_label_values_and_any_dtype(camera):
    proj = SphereProjector(camera, HealpixGrid(64))
    blocks = (np.arange(camera.width)[None, :] // 40 + 10 * (np.arange(camera.height)[:, None] // 40)) % 7
    for dtype in (np.uint8, np.int64, np.int32):
        out = proj.to_sphere(blocks.astype(dtype) + 1, mode="nearest")
        assert out.dtype == dtype
        assert set(np.unique(out[proj.valid_mask])) == set(range(1, 8))


def test_depth_invalid_handling(camera):
    proj = SphereProjector(camera, HealpixGrid(32))
    depth = np.full((camera.height, camera.width), 5.0, dtype=np.float32)
    depth[:, : camera.width // 2] = np.nan
    depth[:10] = 0.0
    out = proj.to_sphere_depth(depth)
    valid = proj.valid_mask
    assert out.dtype == np.float32
    assert np.all(np.isinf(out[~valid]))
    finite = np.isfinite(out)
    assert np.all(out[finite] == 5.0) and finite.sum() > 0 and (valid & ~finite).sum() > 0


def test_back_projection_nearest_matches_healpy(camera):
    grid = HealpixGrid(64)
    proj = SphereProjector(camera, grid)
    ids = proj.to_image(np.arange(grid.npix), mode="nearest", fill=-1)
    rays = camera.pixel_rays().reshape(-1, 3)
    expected = grid.local_index(hp.vec2pix(64, *rays.T, nest=True)).reshape(ids.shape)
    assert (ids != expected).sum() <= 2  # rays exactly on a pixel edge may go either way
    np.testing.assert_array_equal(proj.footprint(), expected >= 0)
    # ~6.7% of a WoodScape image lies outside base pixels 0-7 (HEAL-SWIN paper).
    assert 0.05 < 1 - proj.footprint().mean() < 0.09
    assert np.all(proj.to_image(np.arange(grid.npix, dtype=np.uint16), "nearest")[~proj.footprint()] == 0)


def test_back_projection_bilinear_on_the_sphere_including_seams(camera):
    grid = HealpixGrid(64, tuple(range(12)))  # full sphere: every image pixel is covered
    proj = SphereProjector(camera, grid)
    values = smooth(grid.vectors())
    truth = smooth(camera.pixel_rays())
    bil = proj.to_image(values, mode="bilinear")
    near = proj.to_image(values, mode="nearest")
    assert proj.footprint().all()
    err_b = np.abs(bil - truth).max()
    err_n = np.abs(near - truth).max()
    assert err_b < 4e-3, err_b  # continuous across face seams (atlas padding)
    assert err_b < 0.25 * err_n
    assert psnr(bil, truth) > psnr(near, truth) + 10


def test_round_trip_psnr_inside_the_footprint(camera):
    import cv2

    grid = HealpixGrid(256)
    proj = SphereProjector(camera, grid)
    rng = np.random.default_rng(5)
    # A band-limited random texture: a real image's content, smooth at the pixel scale.
    noise = cv2.GaussianBlur(
        rng.uniform(0, 255, (camera.height, camera.width, 3)).astype(np.float32), (0, 0), 2.0
    )
    image = np.clip((noise - noise.mean()) * 6 + 128, 0, 255).astype(np.uint8)
    back = proj.to_image(proj.to_sphere(image), mode="bilinear", fill=0)
    inner = cv2.erode(proj.footprint().astype(np.uint8) & (image[..., 0] >= 0), np.ones((5, 5))) > 0
    value = psnr(back[inner].astype(float), image[inner].astype(float), 255)
    print(f"round-trip PSNR {value:.1f} dB")
    assert value > 30
    assert np.all(back[~proj.footprint()] == 0)


def test_back_projection_out_size(camera):
    grid = HealpixGrid(32)
    proj = SphereProjector(camera, grid)
    values = smooth(grid.vectors()).astype(np.float32)
    out = proj.to_image(values, "bilinear", out_size=(160, 121))
    assert out.shape == (121, 160, 3)
    expected = smooth(camera.scaled(160, 121).pixel_rays())
    assert np.abs(out - expected)[proj.footprint((160, 121))].max() < 0.03


def test_image_size_mismatch(camera):
    proj = SphereProjector(camera, HealpixGrid(8))
    with pytest.raises(ImageSizeError, match=r"size 100x50 does not match .*320x242"):
        proj.to_sphere(np.zeros((50, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="values: expected shape"):
        proj.to_image(np.zeros(10))
    with pytest.raises(ValueError, match="mode"):
        proj.to_sphere(np.zeros((242, 320), np.uint8), mode="cubic")


def test_disk_cache_round_trip_and_corruption(tmp_path, camera):
    grid = HealpixGrid(16)
    projector_module.clear_memory_cache()
    a = SphereProjector(camera, grid, cache_dir=tmp_path)
    fwd, bwd = a.forward_maps, a.backward_maps()
    files = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert len(files) == 2 and not list(tmp_path.glob(".*"))  # no temporary left behind
    projector_module.clear_memory_cache()
    b = SphereProjector(camera, grid, cache_dir=tmp_path)
    for name in ("index", "weight", "valid"):
        np.testing.assert_array_equal(getattr(b.forward_maps, name), getattr(fwd, name))
    np.testing.assert_array_equal(b.backward_maps().atlas_index, bwd.atlas_index)
    for p in tmp_path.glob("*.npz"):
        p.write_bytes(b"garbage")
    projector_module.clear_memory_cache()
    c = SphereProjector(camera, grid, cache_dir=tmp_path)
    np.testing.assert_array_equal(c.forward_maps.valid, fwd.valid)  # recomputed, not fatal
    # Maps are shared per calibration and read-only.
    assert SphereProjector(camera, grid).forward_maps is c.forward_maps
    assert not c.forward_maps.valid.flags.writeable


def test_maps_key_on_intrinsics_not_extrinsics(fv_calib):
    cam_a = FisheyeCamera.from_json(fv_calib).scaled(160, 121)
    fv_calib["extrinsic"]["translation"] = [0.0, 1.0, 2.0]
    cam_b = FisheyeCamera.from_json(fv_calib).scaled(160, 121)
    grid = HealpixGrid(8)
    assert SphereProjector(cam_a, grid).forward_maps is SphereProjector(cam_b, grid).forward_maps
    cam_c = cam_a.scaled(162, 121)
    assert SphereProjector(cam_c, grid).forward_maps is not SphereProjector(cam_a, grid).forward_maps


@pytest.mark.parametrize("nside", [1, 2, 4])
def test_tiny_grids_work(camera, nside):
    grid = HealpixGrid(nside, tuple(range(12)))
    proj = SphereProjector(camera, grid)
    values = smooth(grid.vectors())
    for mode in ("nearest", "bilinear"):
        out = proj.to_image(values, mode)
        assert out.shape == (camera.height, camera.width, 3) and np.isfinite(out).all()
    assert proj.to_sphere(np.ones((camera.height, camera.width), np.float32)).shape == (grid.npix,)


@pytest.mark.parametrize("channels", [1, 3, 10])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_to_image_fill_and_channels(camera, channels, mode):
    grid = HealpixGrid(16)
    proj = SphereProjector(camera, grid)
    values = np.ones((grid.npix, channels), np.float32)
    out = proj.to_image(values, mode, fill=-7)
    outside = ~proj.footprint()
    assert out.reshape(camera.height, camera.width, -1).shape[-1] == channels
    assert np.all(out[outside] == -7) and np.all(out[cv2_erode(~outside)] == 1)


def cv2_erode(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3))) > 0


@pytest.mark.parametrize("channels", [1, 3, 6])
def test_to_sphere_fill_every_channel(camera, channels):
    proj = SphereProjector(camera, HealpixGrid(16))
    image = np.ones((camera.height, camera.width, channels), np.float32).squeeze()
    for mode in ("bilinear", "area", "nearest"):
        out = proj.to_sphere(image, mode, fill=-3).reshape(proj.grid.npix, -1)
        assert np.all(out[~proj.valid_mask] == -3)
        np.testing.assert_allclose(out[proj.valid_mask], 1, rtol=1e-6)  # float32 sums of weights
