"""FisheyeCamera against independent math: round trips, analytic lenses, extrinsics, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from heal_swin.geometry.camera import (
    CalibrationError,
    FisheyeCamera,
    matrix_to_quaternion,
    quaternion_to_matrix,
)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # atan2(|a x b|, a.b) keeps full precision for tiny angles (arccos does not).
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


def test_project_unproject_round_trip_every_pixel(fv_calib):
    cam = FisheyeCamera.from_json(fv_calib)
    rays = cam.pixel_rays()
    assert rays.shape == (966, 1280, 3)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0, atol=1e-12)
    v, u = np.mgrid[0:966, 0:1280]
    err = np.abs(cam.project(rays) - np.stack([u, v], axis=-1))
    assert err.max() < 1e-6


def test_unproject_project_round_trip_rays(fv_calib):
    cam = FisheyeCamera.from_json(fv_calib)
    rng = np.random.default_rng(1)
    theta = rng.uniform(0, cam.max_incidence_angle, 200_000)
    phi = rng.uniform(0, 2 * np.pi, theta.size)
    rays = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    back = cam.unproject(cam.project(rays))
    assert _angle(rays, back).max() < 1e-9


def test_equidistant_lens_matches_closed_form():
    # k = (f, 0, 0, 0) is the equidistant fisheye: theta = r / f exactly.
    f = 300.0
    cam = FisheyeCamera(
        k=(f, 0, 0, 0), cx_offset=2.0, cy_offset=-1.0, aspect_ratio=1.0, width=1000, height=800
    )
    px = np.array([[700.0, 200.0], [499.5 + 2.0, 399.5 - 1.0], [10.0, 790.0]])
    x = px[:, 0] - (2.0 + 500 - 0.5)
    y = px[:, 1] - (-1.0 + 400 - 0.5)
    r = np.hypot(x, y)
    theta = r / f
    expected = np.stack(
        [
            np.sin(theta) * np.divide(x, r, where=r > 0, out=np.zeros_like(r)),
            np.sin(theta) * np.divide(y, r, where=r > 0, out=np.zeros_like(r)),
            np.cos(theta),
        ],
        axis=-1,
    )
    np.testing.assert_allclose(cam.unproject(px), expected, atol=1e-14)
    np.testing.assert_allclose(cam.unproject(px)[1], [0, 0, 1], atol=1e-15)  # the principal point


def test_aspect_ratio_scales_v_only():
    cam = FisheyeCamera(
        k=(300.0, 0, 0, 0), cx_offset=0, cy_offset=0, aspect_ratio=1.25, width=640, height=480
    )
    ray = np.array([np.sin(0.3), 0.0, np.cos(0.3)])
    u, v = cam.project(np.stack([ray, ray[[1, 0, 2]]]))[:, :]
    assert u[0] - 319.5 == pytest.approx(300 * 0.3) and u[1] == pytest.approx(239.5)
    assert v[1] - 239.5 == pytest.approx(1.25 * 300 * 0.3)


def test_max_incidence_angle_and_monotonic_range(fv_calib):
    cam = FisheyeCamera.from_json(fv_calib)
    # Independent: the corner pixel's outer edge, by sampling rho(theta) densely.
    theta = np.linspace(0, np.pi, 2_000_001)
    k1, k2, k3, k4 = cam.k
    rho = k1 * theta + k2 * theta**2 + k3 * theta**3 + k4 * theta**4
    corner = np.hypot(-0.5 - (cam.cx_offset + 639.5), -0.5 - (cam.cy_offset + 482.5))
    corners = [
        np.hypot(u - (cam.cx_offset + 639.5), v - (cam.cy_offset + 482.5))
        for u in (-0.5, 1279.5)
        for v in (-0.5, 965.5)
    ]
    expected = theta[np.searchsorted(rho, max(corners))]
    assert cam.max_incidence_angle == pytest.approx(expected, abs=1e-5)
    assert math.degrees(cam.max_incidence_angle) == pytest.approx(113, abs=1)  # WoodScape FV: ~113 deg
    assert corner > 0
    drho = np.diff(rho)
    first_decrease = theta[np.argmax(drho <= 0)] if np.any(drho <= 0) else np.pi
    assert cam.theta_monotonic == pytest.approx(first_decrease, abs=1e-5)


def test_scaled_camera_matches_resized_pixel_grid(fv_calib):
    cam = FisheyeCamera.from_json(fv_calib)
    small = cam.scaled(640, 480)  # not an exact factor vertically: aspect ratio must absorb it
    rng = np.random.default_rng(2)
    rays = cam.unproject(rng.uniform([0, 0], [1279, 965], size=(1000, 2)))
    uv = cam.project(rays)
    expected = (uv + 0.5) * np.array([640 / 1280, 480 / 966]) - 0.5
    np.testing.assert_allclose(small.project(rays), expected, atol=1e-9)
    np.testing.assert_allclose(small.unproject(expected), rays, atol=1e-12)
    assert small.max_incidence_angle == pytest.approx(cam.max_incidence_angle, abs=1e-9)


def test_extrinsics_front_camera_points_forward_and_down(fv_calib):
    cam = FisheyeCamera.from_json(fv_calib)
    r = cam.rotation
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    axis = cam.to_vehicle(np.array([0.0, 0.0, 1.0]), directions=True)
    assert axis[0] > 0.9  # forward (ISO 8855 x)
    assert math.degrees(math.asin(-axis[2])) == pytest.approx(23.4, abs=0.5)  # pitched down
    right = cam.to_vehicle(np.array([1.0, 0.0, 0.0]), directions=True)
    assert right[1] < -0.99  # image +u is the vehicle's right (-y)
    pts = np.random.default_rng(3).normal(size=(50, 3))
    np.testing.assert_allclose(cam.from_vehicle(cam.to_vehicle(pts)), pts, atol=1e-12)
    np.testing.assert_allclose(cam.to_vehicle(np.zeros(3)), fv_calib["extrinsic"]["translation"])


def test_quaternion_matrix_round_trip():
    rng = np.random.default_rng(4)
    for q in rng.normal(size=(20, 4)):
        q /= np.linalg.norm(q)
        q2 = matrix_to_quaternion(quaternion_to_matrix(q))
        assert min(np.abs(q - q2).max(), np.abs(q + q2).max()) < 1e-12
    # 90 deg about z, scalar-last: x -> y.
    r = quaternion_to_matrix(np.array([0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)]))
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 1, 0], atol=1e-15)


def test_synwoodscape_translation_key_and_dict_round_trip(fv_calib):
    syn = dict(fv_calib)
    syn["extrinsic"] = {
        "quaternion": fv_calib["extrinsic"]["quaternion"],
        "translation used in CARLA (CARLA reference)": [1.0, 2.0, 3.0],
    }
    cam = FisheyeCamera.from_json(syn)
    assert cam.translation == (1.0, 2.0, 3.0)
    again = FisheyeCamera.from_json(cam.to_dict())
    assert again == cam and again.intrinsics_key == cam.intrinsics_key


def _error(tmp_path, calib) -> CalibrationError:
    path = tmp_path / "bad.json"
    path.write_text(calib if isinstance(calib, str) else json.dumps(calib))
    with pytest.raises(CalibrationError) as info:
        FisheyeCamera.from_json(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    return info.value


def test_missing_field(tmp_path, fv_calib):
    del fv_calib["intrinsic"]["k3"]
    e = _error(tmp_path, fv_calib)
    assert e.field == "intrinsic.k3" and e.got == "missing"


def test_missing_translation(tmp_path, fv_calib):
    del fv_calib["extrinsic"]["translation"]
    assert _error(tmp_path, fv_calib).field == "extrinsic.translation"


def test_wrong_type(tmp_path, fv_calib):
    fv_calib["intrinsic"]["k1"] = "339.7"
    e = _error(tmp_path, fv_calib)
    assert e.field == "intrinsic.k1" and "number" in e.expected


def test_nan(tmp_path, fv_calib):
    fv_calib["intrinsic"]["cx_offset"] = float("nan")
    e = _error(tmp_path, fv_calib)  # json.dumps writes NaN, json.loads reads it back
    assert e.field == "intrinsic.cx_offset" and "finite" in e.expected


def test_non_monotonic_polynomial(tmp_path, fv_calib):
    fv_calib["intrinsic"]["k4"] = -40.0  # rho(theta) turns back before the image corners
    e = _error(tmp_path, fv_calib)
    assert e.field == "intrinsic.k1..k4" and "increasing" in e.expected


def test_other_model_and_bad_json(tmp_path, fv_calib):
    fv_calib["intrinsic"]["model"] = "pinhole"
    assert _error(tmp_path, fv_calib).field == "intrinsic.model"
    assert _error(tmp_path, "{not json").field == "<file>"
    with pytest.raises(CalibrationError, match="no such file"):
        FisheyeCamera.from_json(tmp_path / "missing.json")


def test_bad_quaternion(tmp_path, fv_calib):
    fv_calib["extrinsic"]["quaternion"] = [0.0, 0.0, 0.0, 2.0]
    assert _error(tmp_path, fv_calib).field == "extrinsic.quaternion"
    fv_calib["extrinsic"]["quaternion"] = [0.0, 0.0, 1.0]
    assert _error(tmp_path, fv_calib).field == "extrinsic.quaternion"
