"""The vehicle sphere against independent computation: rays through ``to_vehicle``, healpy lookups,
analytic scenes (a smooth sky, a spherical world for range), and a direction two cameras see."""

from __future__ import annotations

import math

import healpy as hp
import numpy as np
import pytest

from heal_swin.geometry import FisheyeCamera, ImageSizeError
from heal_swin.geometry.camera import matrix_to_quaternion
from heal_swin.geometry.rig import CameraRig, RigError, VehicleSphere, vehicle_grid

W, H = 160, 121


def mount(yaw: float, pitch_down: float) -> np.ndarray:
    """Camera -> vehicle rotation: optical axis at azimuth ``yaw`` (deg, 90 = left), ``pitch_down`` below the horizon."""
    a, p = math.radians(yaw), math.radians(pitch_down)
    z = np.array([math.cos(p) * math.cos(a), math.cos(p) * math.sin(a), -math.sin(p)])
    x = np.array([math.sin(a), -math.cos(a), 0.0])
    return np.stack([x, np.cross(z, x), z], axis=1)


def make_rig(calib: dict, width: int = W, height: int = H) -> CameraRig:
    """A WoodScape-like four-camera rig (the FV lens on every mount), at ``width x height``."""
    base = FisheyeCamera.from_dict(calib).scaled(width, height)
    layout = {
        "FV": (0, 20, (3.7, 0.0, 0.66)),
        "MVL": (90, 45, (2.0, 1.0, 1.0)),
        "RV": (180, 25, (-1.0, 0.0, 0.9)),
        "MVR": (-90, 45, (2.0, -1.0, 1.0)),
    }
    cams = {}
    for name, (yaw, pitch, t) in layout.items():
        d = base.to_dict()
        d["extrinsic"] = {
            "quaternion": matrix_to_quaternion(mount(yaw, pitch)).tolist(),
            "translation": list(t),
        }
        d["name"] = name
        cams[name] = FisheyeCamera.from_dict(d)
    return CameraRig.from_cameras(cams)


@pytest.fixture
def rig(fv_calib) -> CameraRig:
    return make_rig(fv_calib)


def sky(v: np.ndarray) -> np.ndarray:
    """A smooth function of the vehicle direction, (..., 3) -> (..., 3)."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack(
        [0.5 + 0.4 * np.sin(2 * x + y), 0.5 + 0.4 * z * y, 0.5 + 0.3 * np.cos(3 * x * z)], axis=-1
    )


def healpy_vectors(nside: int) -> np.ndarray:
    return np.stack(hp.pix2vec(nside, np.arange(12 * nside * nside), nest=True), axis=-1)


def weights_by_hand(cam: FisheyeCamera, v: np.ndarray, feather: float = 0.05) -> np.ndarray:
    """The documented weight, from the optical axis in the vehicle frame and to_vehicle-independent pixels."""
    axis = cam.to_vehicle(np.array([0.0, 0.0, 1.0]), directions=True)
    theta = np.arccos(np.clip(v @ axis, -1, 1))
    ray = cam.from_vehicle(v, directions=True)
    uv = cam.project(ray)
    d = np.min(np.stack([uv[:, 0] + 0.5, W - 0.5 - uv[:, 0], uv[:, 1] + 0.5, H - 0.5 - uv[:, 1]]), axis=0)
    w = np.clip(1 - theta / cam.max_incidence_angle, 0, 1) * np.clip(d / (feather * min(W, H)), 0, 1)
    return np.where(cam.sees(ray), w, 0.0)


def test_blend_of_a_sky_rendered_through_every_camera_is_the_sky(rig):
    vs = VehicleSphere(rig, vehicle_grid(32))
    # each camera renders the sky at the vehicle direction of its pixel rays (rotation only: at infinity)
    images = [sky(c.to_vehicle(c.pixel_rays(), directions=True)).astype(np.float32) for c in rig.cameras]
    fused = vs.to_sphere(images)
    v = healpy_vectors(32)
    np.testing.assert_allclose(vs.grid.vectors(), v)
    seen = vs.valid_mask
    assert seen.mean() > 0.8  # four 190 deg lenses, pitched down: all but the sky around the zenith
    err = np.abs(fused[seen] - sky(v)[seen])
    assert err.max() < 0.01, err.max()
    assert np.all(fused[~seen] == 0)


def test_finite_registration_distance_follows_the_parallax(rig):
    radius = 12.0
    vs = VehicleSphere(rig, vehicle_grid(16), radius=radius)
    images = []
    for c in rig.cameras:
        # where each pixel ray from the camera centre meets the sphere |P| = radius (quadratic by hand)
        d = c.to_vehicle(c.pixel_rays(), directions=True)
        t = np.asarray(c.translation)
        b = d @ t
        s = -b + np.sqrt(b * b - t @ t + radius**2)
        p = t + s[..., None] * d
        images.append(sky(p / np.linalg.norm(p, axis=-1, keepdims=True)).astype(np.float32))
    fused = vs.to_sphere(images)
    seen = vs.valid_mask
    err = np.abs(fused[seen] - sky(healpy_vectors(16))[seen])
    assert err.max() < 0.01, err.max()
    # the same images registered at infinity are measurably wrong where cameras overlap (parallax)
    wrong = VehicleSphere(rig, vehicle_grid(16)).to_sphere(images)
    two = vs.maps.count >= 2
    assert np.abs(wrong[two] - sky(healpy_vectors(16))[two]).max() > 5 * err.max()


def test_direction_seen_by_two_cameras(rig):
    vs = VehicleSphere(rig, vehicle_grid(32))
    v = np.array([math.cos(math.radians(45)), math.sin(math.radians(45)), -0.3])
    v /= np.linalg.norm(v)
    pix = hp.vec2pix(32, *v, nest=True)  # the full grid: local index == global nested index
    centre = healpy_vectors(32)[pix][None]
    w = np.array([weights_by_hand(c, centre)[0] for c in rig.cameras])
    fv, mvl = rig.index("FV"), rig.index("MVL")
    assert w[fv] > 0 and w[mvl] > 0 and w[rig.index("RV")] == 0 and w[rig.index("MVR")] == 0
    np.testing.assert_allclose(vs.maps.weights[:, pix], w / w.sum(), rtol=1e-5, atol=1e-7)
    assert vs.maps.count[pix] == 2 and vs.source[pix] == int(np.argmax(w))
    # constant images 100 (FV) and 200 (MVL): the blend at that direction is the weighted mean
    consts = [np.full((H, W), 100.0 * (i + 1), np.float32) for i in range(len(rig))]
    assert vs.to_sphere(consts)[pix] == pytest.approx(
        float(np.dot(w / w.sum(), [100, 200, 300, 400])), rel=1e-5
    )
    # labels: from the camera with the larger weight
    labels = [np.full((H, W), 10 + i, np.uint8) for i in range(len(rig))]
    assert vs.labels_to_sphere(labels)[pix] == 10 + int(np.argmax(w))


def test_weights_source_and_labels_everywhere_match_the_documented_formula(rig):
    vs = VehicleSphere(rig, vehicle_grid(16))
    v = healpy_vectors(16)
    w = np.stack([weights_by_hand(c, v) for c in rig.cameras])
    total = w.sum(0)
    seen = total > 0
    np.testing.assert_array_equal(vs.valid_mask, seen)
    np.testing.assert_allclose(vs.maps.weights[:, seen], (w / np.where(seen, total, 1))[:, seen], atol=1e-6)
    clear = seen & (np.sort(w, axis=0)[-1] - np.sort(w, axis=0)[-2] > 1e-9)  # no ties
    np.testing.assert_array_equal(vs.source[clear], np.argmax(w, axis=0)[clear])
    assert np.all(vs.source[~seen] == -1)
    assert (vs.maps.count >= 2).mean() > 0.1  # the rig overlaps
    labels = [np.full((H, W), i, np.uint8) for i in range(len(rig))]
    lab = vs.labels_to_sphere(labels, fill=255)
    np.testing.assert_array_equal(lab[seen], vs.source[seen])
    assert np.all(lab[~seen] == 255)
    # the weights are continuous: they vanish at the rim (a pixel just seen has a tiny weight)
    assert np.all(vs.maps.weights <= 1) and np.all(vs.maps.weights >= 0)


def test_depth_becomes_range_from_the_vehicle_origin(rig):
    radius = 15.0
    vs = VehicleSphere(rig, vehicle_grid(32), radius=radius)
    depths = []
    for c in rig.cameras:
        # a spherical world of radius 15 m around the origin: distance along each pixel ray
        d = c.to_vehicle(c.pixel_rays(), directions=True)
        t = np.asarray(c.translation)
        b = d @ t
        depths.append((-b + np.sqrt(b * b - t @ t + radius**2)).astype(np.float32))
    rng = vs.depth_to_range(depths)
    seen = vs.valid_mask
    # nearest-pixel sampling: the depth of a neighbouring pixel, a few centimetres off
    assert np.abs(rng[seen] - radius).max() < 0.05 * radius
    assert np.median(np.abs(rng[seen] - radius)) < 0.01 * radius
    assert np.all(np.isinf(rng[~seen]))
    # invalid depth stays invalid
    bad = [np.full((H, W), np.inf, np.float32) for _ in rig.cameras]
    assert np.all(np.isinf(vs.depth_to_range(bad)))


def test_back_projection_is_the_healpy_pixel_of_each_ray_in_the_vehicle_frame(rig):
    nside = 32
    vs = VehicleSphere(rig, vehicle_grid(nside))
    index = np.arange(vs.grid.npix, dtype=np.int64)
    for cam, img in zip(rig.cameras, vs.to_images(index, mode="nearest", fill=-1)):
        v = cam.to_vehicle(cam.pixel_rays(), directions=True)
        truth = hp.vec2pix(nside, v[..., 0], v[..., 1], v[..., 2], nest=True)
        assert img.shape == (H, W)
        assert (img == truth).mean() > 0.9999
    # a sphere picture goes back onto each image (bilinear) close to what the camera rendered
    fused_sky = sky(vs.grid.vectors()).astype(np.float32)
    for cam in rig.cameras:
        back = vs.to_image(fused_sky, cam.name, mode="bilinear")
        truth = sky(cam.to_vehicle(cam.pixel_rays(), directions=True))
        assert np.abs(back - truth).max() < 0.02


def test_maps_are_cached_per_camera_in_memory_and_on_disk(rig, tmp_path):
    # a registration distance no other test uses: these maps are not in the memory cache yet
    a = VehicleSphere(rig, vehicle_grid(8), radius=37.5, cache_dir=tmp_path)
    b = VehicleSphere(
        CameraRig.from_cameras(dict(zip(rig.names, rig.cameras))),
        vehicle_grid(8),
        radius=37.5,
        cache_dir=tmp_path,
    )
    assert a.maps is b.maps
    a.to_sphere([np.zeros((H, W), np.float32)] * 4)
    assert len(list(tmp_path.glob("taps-bilinear-*.npz"))) == 4  # one forward map per camera
    moved = VehicleSphere(rig, vehicle_grid(8), radius=10.0)
    assert VehicleSphere(rig, vehicle_grid(8), radius=37.5).maps is a.maps
    assert moved.maps is not a.maps


def test_bad_inputs_are_named(rig, fv_calib):
    vs = VehicleSphere(rig, vehicle_grid(8))
    with pytest.raises(RigError, match="expected 4 images"):
        vs.to_sphere([np.zeros((H, W), np.uint8)] * 3)
    with pytest.raises(ImageSizeError, match="does not match the calibration"):
        vs.to_sphere([np.zeros((H + 1, W), np.uint8)] * 4)
    with pytest.raises(RigError, match="radius"):
        VehicleSphere(rig, vehicle_grid(8), radius=2.0)  # inside the rig: FV is 3.76 m out
    with pytest.raises(RigError, match="unique"):
        CameraRig(rig.cameras[:2], ("FV", "FV"))
    with pytest.raises(RigError, match="cameras"):
        CameraRig.from_dict({"cameras": []})
    roundtrip = CameraRig.from_dict(rig.to_dict())
    assert roundtrip.key == rig.key and roundtrip.names == rig.names
    with pytest.raises(RigError, match="expected one of"):
        vs.to_image(np.zeros(vs.grid.npix), "XX")
