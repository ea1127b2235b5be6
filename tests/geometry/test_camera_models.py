"""The lens models of FisheyeCamera against independent math: OpenCV's fisheye functions for
Kannala-Brandt, the closed forms of Usenko et al. 2018 ("The Double Sphere Camera Model") for
UCM / EUCM / DS, Kalibr's omni formula for Mei; round trips over whole images; range errors."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from heal_swin.geometry import CalibrationError, FisheyeCamera

# Realistic calibrations (values of the kind Kalibr / basalt report for 190-deg lenses).
W, H = 512, 512
FX, FY, CX, CY = 190.97, 190.03, 254.93, 256.90
CAMERAS = {
    "kannala_brandt": (
        0.0034823894022493434,
        0.0007150348452162257,
        -0.0020532361418706202,
        0.00020293673591811182,
    ),
    "ucm": (0.55,),
    "eucm": (0.58, 1.05),
    "double_sphere": (-0.18, 0.59),
    "mei": (0.9, -0.05, 0.01),
}
# DS / UCM / EUCM focal lengths are smaller than KB's for the same lens (Usenko et al., table 2).
F_SCALE = {"kannala_brandt": 1.0, "ucm": 0.83, "eucm": 0.83, "double_sphere": 0.83, "mei": 1.4}


def camera(model: str, **kw) -> FisheyeCamera:
    s = F_SCALE[model]
    return FisheyeCamera.from_focal(model, FX * s, FY * s, CX, CY, W, H, CAMERAS[model], **kw)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


def _rays(theta_max: float, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Uniform on the spherical cap up to theta_max.
    z = rng.uniform(math.cos(theta_max), 1.0, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    s = np.sqrt(1 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=-1)


# --------------------------------------------------------- Kannala-Brandt
def test_kannala_brandt_matches_cv2_fisheye_project_points():
    cam = camera("kannala_brandt")
    K = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1.0]])
    D = np.array(CAMERAS["kannala_brandt"])
    rays = _rays(math.radians(89.0), 20_000)  # OpenCV divides by z: rays in front of the camera only
    points = rays * np.random.default_rng(1).uniform(0.5, 20, (len(rays), 1))  # points, not only unit rays
    ref, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)
    np.testing.assert_allclose(cam.project(points), ref.reshape(-1, 2), atol=1e-9, rtol=0)


def test_kannala_brandt_unproject_matches_cv2_fisheye_undistort_points():
    cam = camera("kannala_brandt")
    K = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1.0]])
    D = np.array(CAMERAS["kannala_brandt"])
    v, u = np.mgrid[0:H:7, 0:W:7].astype(np.float64)
    px = np.stack([u.ravel(), v.ravel()], axis=-1)
    rays = cam.unproject(px)
    front = rays[:, 2] > math.cos(math.radians(80))  # undistortPoints returns points on z = 1
    und = cv2.fisheye.undistortPoints(
        px[front].reshape(-1, 1, 2),
        K,
        D,
        criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-14),
    )
    ref = np.concatenate([und.reshape(-1, 2), np.ones((front.sum(), 1))], axis=1)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert front.sum() > 2000
    assert _angle(rays[front], ref).max() < 1e-9


# ------------------------------------------------- Usenko et al. closed forms
def _usenko_project(model: str, p: np.ndarray, fx, fy, cx, cy, params) -> np.ndarray:
    """The projection functions pi(x) as printed in Usenko et al. 2018, section 3."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    if model == "ucm":
        (a,) = params
        d = np.sqrt(x * x + y * y + z * z)
        den = a * d + (1 - a) * z
    elif model == "eucm":
        a, b = params
        d = np.sqrt(b * (x * x + y * y) + z * z)
        den = a * d + (1 - a) * z
    else:  # double sphere
        xi, a = params
        d1 = np.sqrt(x * x + y * y + z * z)
        d2 = np.sqrt(x * x + y * y + (xi * d1 + z) ** 2)
        den = a * d2 + (1 - a) * (xi * d1 + z)
    return np.stack([fx * x / den + cx, fy * y / den + cy], axis=-1)


def _usenko_unproject(model: str, uv: np.ndarray, fx, fy, cx, cy, params) -> np.ndarray:
    """The unprojection functions pi^-1(u) as printed in Usenko et al. 2018 (unit-normalised here)."""
    mx, my = (uv[..., 0] - cx) / fx, (uv[..., 1] - cy) / fy
    r2 = mx * mx + my * my
    if model == "ucm":
        (a,) = params
        # The paper's UCM unprojection in Mei's xi form: xi = alpha / (1 - alpha), m scaled by 1 - alpha.
        xi, mx, my = a / (1 - a), mx * (1 - a), my * (1 - a)
        r2 = mx * mx + my * my
        k = (xi + np.sqrt(1 + (1 - xi * xi) * r2)) / (1 + r2)
        out = np.stack([k * mx, k * my, k - xi], axis=-1)
    elif model == "eucm":
        a, b = params
        mz = (1 - b * a * a * r2) / (a * np.sqrt(1 - (2 * a - 1) * b * r2) + 1 - a)
        out = np.stack([mx, my, mz], axis=-1)
    else:
        xi, a = params
        mz = (1 - a * a * r2) / (a * np.sqrt(1 - (2 * a - 1) * r2) + 1 - a)
        k = (mz * xi + np.sqrt(mz * mz + (1 - xi * xi) * r2)) / (mz * mz + r2)
        out = np.stack([k * mx, k * my, k * mz - xi], axis=-1)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def _usenko_domain(model: str, p: np.ndarray, params) -> np.ndarray:
    """The set Omega of points each model projects (Usenko et al. 2018)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    a = params[0] if model in ("ucm", "eucm") else params[1]
    w1 = a / (1 - a) if a <= 0.5 else (1 - a) / a
    if model == "ucm":
        return z > -w1 * np.sqrt(x * x + y * y + z * z)
    if model == "eucm":
        return z > -w1 * np.sqrt(params[1] * (x * x + y * y) + z * z)
    xi = params[0]
    w2 = (w1 + xi) / np.sqrt(2 * w1 * xi + xi * xi + 1)
    return z > -w2 * np.sqrt(x * x + y * y + z * z)


@pytest.mark.parametrize("model", ["ucm", "eucm", "double_sphere"])
def test_unified_models_match_usenko_closed_forms(model):
    cam = camera(model)
    fx, fy = FX * F_SCALE[model], FY * F_SCALE[model]
    params = CAMERAS[model]
    rays = _rays(math.pi, 50_000, seed=2)
    inside = _usenko_domain(model, rays, params) & cam.sees(rays)
    assert inside.sum() > 10_000
    ref = _usenko_project(model, rays[inside], fx, fy, CX, CY, params)
    np.testing.assert_allclose(cam.project(rays[inside]), ref, atol=1e-9, rtol=0)
    # Unprojection of every 5th pixel of the image against the paper's formula.
    v, u = np.mgrid[0:H:5, 0:W:5].astype(np.float64)
    px = np.stack([u.ravel(), v.ravel()], axis=-1)
    assert _angle(cam.unproject(px), _usenko_unproject(model, px, fx, fy, CX, CY, params)).max() < 1e-12
    # The field of view the model can represent is the paper's domain (or where its unprojection ends).
    edge = rays[~_usenko_domain(model, rays, params)]
    assert not cam.sees(edge).any()


def test_mei_matches_kalibr_omni_formula():
    cam = camera("mei")
    xi, k1, k2 = CAMERAS["mei"]
    fx, fy = FX * F_SCALE["mei"], FY * F_SCALE["mei"]
    rays = _rays(math.radians(120), 30_000, seed=3)
    rays = rays[cam.sees(rays)]
    x, y, z = rays.T * 3.0  # points at 3 m: the formula divides by z + xi * |p|
    d = np.sqrt(x * x + y * y + z * z)
    mx, my = x / (z + xi * d), y / (z + xi * d)
    r2 = mx * mx + my * my
    g = 1 + k1 * r2 + k2 * r2 * r2
    ref = np.stack([fx * mx * g + CX, fy * my * g + CY], axis=-1)
    np.testing.assert_allclose(cam.project(rays * 3.0), ref, atol=1e-9, rtol=0)


def test_ucm_with_alpha_zero_is_the_pinhole_camera():
    cam = FisheyeCamera.from_focal("ucm", 400.0, 410.0, 320.0, 240.0, 640, 480, (0.0,))
    p = np.array([[0.3, -0.2, 1.0], [-1.0, 0.5, 2.0]])
    np.testing.assert_allclose(
        cam.project(p), np.stack([400 * p[:, 0] / p[:, 2] + 320, 410 * p[:, 1] / p[:, 2] + 240], -1)
    )


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("model", list(CAMERAS))
def test_round_trip_over_the_whole_image(model):
    cam = camera(model)
    rays = cam.pixel_rays()
    assert np.isfinite(rays).all()
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0, atol=1e-12)
    v, u = np.mgrid[0:H, 0:W]
    assert np.abs(cam.project(rays) - np.stack([u, v], axis=-1)).max() < 1e-8
    seen = _rays(cam.max_incidence_angle, 50_000, seed=4)
    seen = seen[cam.sees(seen)]
    assert _angle(cam.unproject(cam.project(seen)), seen).max() < 1e-10
    assert cam.sees(rays).all()


@pytest.mark.parametrize("model", list(CAMERAS))
def test_schema_round_trip_scaling_and_key(model):
    cam = camera(model, name="FV", quaternion=(0.0, 0.0, 0.0, 1.0), translation=(1.0, 0.0, 0.5))
    d = cam.to_dict()
    assert d["intrinsic"]["model"] == model and d["intrinsic"]["f"] == pytest.approx(FX * F_SCALE[model])
    back = FisheyeCamera.from_dict(d)
    assert back == cam and back.intrinsics_key == cam.intrinsics_key
    assert cam.principal_point == pytest.approx((CX, CY))
    # Scaling the image by (sx, sy) maps pixel centres as u' = (u + 0.5) sx - 0.5.
    small = cam.scaled(W // 2, H // 4)
    rays = cam.pixel_rays()[::17, ::13].reshape(-1, 3)
    expected = (cam.project(rays) + 0.5) * np.array([0.5, 0.25]) - 0.5
    np.testing.assert_allclose(small.project(rays), expected, atol=1e-9)
    assert small.intrinsics_key != cam.intrinsics_key
    other = FisheyeCamera.from_dict(
        {**d, "intrinsic": {**d["intrinsic"], "cx_offset": d["intrinsic"]["cx_offset"] + 1}}
    )
    assert other.intrinsics_key != cam.intrinsics_key


# ------------------------------------------------------------------ errors
def test_a_field_of_view_the_model_cannot_represent_is_named():
    # UCM with alpha = 0.9 reaches r <= 1 / sqrt(2 alpha - 1) = 1.118 f: 224 px at f = 200,
    # less than the corner radius of a 640x480 image (400 px).
    with pytest.raises(CalibrationError) as e:
        FisheyeCamera.from_focal("ucm", 200.0, 200.0, 319.5, 239.5, 640, 480, (0.9,), source="cam.json")
    assert (
        e.value.field == "intrinsic.alpha" and "field of view" in str(e.value) and "400.0 px" in str(e.value)
    )
    with pytest.raises(CalibrationError) as e:
        FisheyeCamera.from_focal("double_sphere", 150.0, 150.0, 319.5, 239.5, 640, 480, (-0.2, 0.8))
    assert e.value.field == "intrinsic.xi,alpha" and "field of view" in str(e.value)


def test_a_lens_not_monotonic_over_the_image_is_named():
    # rho = f t (1 - 0.2 t^2) turns back at t = 1 / sqrt(0.6) = 1.29 rad, at 0.86 f = 258 px < 400 px.
    with pytest.raises(CalibrationError) as e:
        FisheyeCamera.from_focal("kannala_brandt", 300.0, 300.0, 319.5, 239.5, 640, 480, (-0.2, 0, 0, 0))
    assert e.value.field == "intrinsic.k1..k4" and "stops increasing at theta 74.0 deg (258.2 px)" in str(
        e.value
    )
    cam = FisheyeCamera.from_focal("kannala_brandt", 300.0, 300.0, 199.5, 149.5, 400, 300, (-0.2, 0, 0, 0))
    assert cam.theta_monotonic == pytest.approx(1 / math.sqrt(0.6), abs=1e-12)
    # An increasing lens whose 180 deg ends inside the image: rho(pi) = 50 pi = 157.1 px < 400 px.
    with pytest.raises(CalibrationError, match=r"got 'theta reaches 180 deg at 157.1 px'"):
        FisheyeCamera.from_focal("kannala_brandt", 50.0, 50.0, 319.5, 239.5, 640, 480, (0, 0, 0, 0))


@pytest.mark.parametrize(
    "intr, field",
    [
        ({"model": "fisheye62"}, "intrinsic.model"),
        ({"model": "ucm", "f": 200.0}, "intrinsic.alpha"),
        ({"model": "ucm", "f": 200.0, "alpha": 1.5}, "intrinsic.alpha"),
        ({"model": "eucm", "f": 200.0, "alpha": 0.5, "beta": 0.0}, "intrinsic.beta"),
        ({"model": "double_sphere", "f": 200.0, "alpha": 0.5, "xi": 2.0}, "intrinsic.xi"),
        ({"model": "kannala_brandt", "f": -1.0, "k1": 0, "k2": 0, "k3": 0, "k4": 0}, "intrinsic.f"),
        ({"model": "kannala_brandt", "f": 200.0, "k1": 0, "k2": 1e9, "k3": 0, "k4": 0}, "intrinsic.k2"),
        ({"model": "mei", "f": 200.0, "xi": 50.0, "k1": 0, "k2": 0}, "intrinsic.xi"),
    ],
)
def test_bad_lens_fields_are_named(fv_calib, intr, field):
    base = {
        k: fv_calib["intrinsic"][k] for k in ("aspect_ratio", "cx_offset", "cy_offset", "width", "height")
    }
    d = {**fv_calib, "intrinsic": {**base, **intr}}
    with pytest.raises(CalibrationError) as e:
        FisheyeCamera.from_dict(d, source="x.json")
    assert (
        e.value.field == field
        and str(e.value).startswith(f"x.json: field '{field}'")
        and "\n" not in str(e.value)
    )


@pytest.mark.parametrize("model", list(CAMERAS))
def test_flip_and_crop_are_exact_for_every_lens_model(model):
    from heal_swin.data.transforms import flip_camera
    from heal_swin.data.woodscape import crop_camera

    cam = camera(model)
    rays = cam.pixel_rays()[::9, ::11].reshape(-1, 3)
    uv = cam.project(rays)
    # The mirrored image sees (-X, Y, Z) at pixel (W - 1 - u, v).
    flipped = flip_camera(cam)
    assert flipped.model == model
    np.testing.assert_allclose(
        flipped.project(rays * [-1, 1, 1]), np.stack([W - 1 - uv[:, 0], uv[:, 1]], -1), atol=1e-9
    )
    # Removing 3 rows at the top and bottom moves every pixel up by 3.
    cropped = crop_camera(cam, 3)
    assert cropped.model == model and cropped.height == H - 6
    np.testing.assert_allclose(cropped.project(rays), uv - [0, 3], atol=1e-9)
