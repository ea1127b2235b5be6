"""``heal-swin calib convert`` on files written the way the tools write them (cv2.FileStorage, Kalibr's
camchain YAML, basalt's JSON), checked against the tools' own projection formulas, and its errors."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import yaml

from heal_swin.cli import main
from heal_swin.geometry import FisheyeCamera
from tests.geometry.test_camera_models import _usenko_domain, _usenko_project

K = np.array([[330.0, 0.0, 640.2], [0.0, 331.5, 401.3], [0.0, 0.0, 1.0]])
D = np.array([0.05, -0.01, 0.003, -0.0004])
T_CAM_IMU = [
    [0.0148655429818, -0.999880929698, 0.00414029679422, -0.0216401454975],
    [0.999557249008, 0.0149672133247, 0.025715529948, -0.064676986768],
    [-0.0257744366974, 0.00375618835797, 0.999660727178, 0.00981073058949],
    [0.0, 0.0, 0.0, 1.0],
]


def convert(tmp_path, capsys, fmt, src, *extra) -> tuple[FisheyeCamera, dict, str]:
    out = tmp_path / "out.json"
    rc = main(["calib", "convert", "--from", fmt, str(src), "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return FisheyeCamera.from_json(out), json.loads(out.read_text()), captured.out


def fails(tmp_path, capsys, fmt, src, *extra) -> str:
    out = tmp_path / "bad_out.json"
    rc = main(["calib", "convert", "--from", fmt, str(src), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("heal-swin calib: error: "), err
    assert not out.exists()
    return err


def _front_rays(n: int, max_deg: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(math.cos(math.radians(max_deg)), 1, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    return np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], -1)


# ---------------------------------------------------------------- OpenCV
@pytest.mark.parametrize(
    "suffix, keys", [(".yaml", ("camera_matrix", "distortion_coefficients")), (".json", ("K", "D"))]
)
def test_opencv_filestorage_file_converts_exactly(tmp_path, capsys, suffix, keys):
    path = tmp_path / f"fisheye{suffix}"
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    if suffix == ".yaml":
        fs.write("image_width", 1280)
        fs.write("image_height", 800)
    else:
        fs.write("image_size", (1280, 800))
    fs.write(keys[0], K)
    fs.write(keys[1], D.reshape(4, 1))
    fs.release()
    cam, data, out = convert(tmp_path, capsys, "opencv-fisheye", path)
    assert cam.model == "kannala_brandt" and cam.image_size == (1280, 800) and "exact" in out
    assert data["provenance"]["exact"] is True
    rays = _front_rays(20_000, 89.0)
    ref, _ = cv2.fisheye.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)
    np.testing.assert_allclose(cam.project(rays), ref.reshape(-1, 2), atol=1e-9, rtol=0)
    px = np.random.default_rng(1).uniform([0, 0], [1279, 799], (5000, 2))
    und = cv2.fisheye.undistortPoints(px.reshape(-1, 1, 2), K, D, criteria=(3, 100, 1e-14)).reshape(-1, 2)
    rays = cam.unproject(px)
    front = rays[:, 2] > 0.2
    np.testing.assert_allclose(rays[front, :2] / rays[front, 2:], und[front], atol=1e-9)


def test_ros_camera_info_yaml_converts_exactly(tmp_path, capsys):
    path = tmp_path / "camera_info.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "image_width": 1280,
                "image_height": 800,
                "camera_name": "front",
                "distortion_model": "equidistant",
                "camera_matrix": {"rows": 3, "cols": 3, "data": K.ravel().tolist()},
                "distortion_coefficients": {"rows": 1, "cols": 4, "data": D.tolist()},
            },
            default_flow_style=None,
        )
    )
    cam, _, _ = convert(tmp_path, capsys, "opencv-fisheye", path)
    rays = _front_rays(5000, 85.0, seed=7)
    ref, _ = cv2.fisheye.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)
    np.testing.assert_allclose(cam.project(rays), ref.reshape(-1, 2), atol=1e-9, rtol=0)
    path.write_text(path.read_text().replace("equidistant", "plumb_bob"))
    assert "field 'distortion_model': expected equidistant" in fails(tmp_path, capsys, "opencv-fisheye", path)


# ---------------------------------------------------------------- Kalibr
def _kalibr_equidistant(p, intr, dist):
    fu, fv, pu, pv = intr
    x, y = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
    r = np.hypot(x, y)
    t = np.arctan(r)
    td = t * (1 + dist[0] * t**2 + dist[1] * t**4 + dist[2] * t**6 + dist[3] * t**8)
    return np.stack([fu * x * td / r + pu, fv * y * td / r + pv], -1)


def _kalibr_omni_radtan(p, intr, dist):
    xi, fu, fv, pu, pv = intr
    k1, k2, p1, p2 = dist
    d = np.linalg.norm(p, axis=-1)
    x, y = p[:, 0] / (p[:, 2] + xi * d), p[:, 1] / (p[:, 2] + xi * d)
    r2 = x * x + y * y
    g = 1 + k1 * r2 + k2 * r2 * r2
    xd = x * g + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * g + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([fu * xd + pu, fv * yd + pv], -1)


CAMCHAIN = {
    "cam0": {
        "camera_model": "pinhole",
        "distortion_model": "equidistant",
        "intrinsics": [380.8, 380.2, 376.1, 239.4],
        "distortion_coeffs": [0.0341, -0.0087, 0.0012, -0.0002],
        "resolution": [752, 480],
        "T_cam_imu": T_CAM_IMU,
        "rostopic": "/cam0/image_raw",
        "cam_overlaps": [1],
    },
    "cam1": {
        "camera_model": "omni",
        "distortion_model": "radtan",
        "intrinsics": [1.71, 1160.0, 1159.0, 376.0, 240.0],
        "distortion_coeffs": [-0.21, 0.12, 0.0, 0.0],
        "resolution": [752, 480],
        "T_cam_imu": T_CAM_IMU,
    },
    "cam2": {
        "camera_model": "ds",
        "distortion_model": "none",
        "intrinsics": [-0.18, 0.59, 158.3, 158.2, 254.9, 256.9],
        "distortion_coeffs": [],
        "resolution": [512, 512],
        "T_cam_imu": T_CAM_IMU,
    },
    "cam3": {
        "camera_model": "eucm",
        "distortion_model": "none",
        "intrinsics": [0.58, 1.05, 158.3, 158.2, 254.9, 256.9],
        "distortion_coeffs": [],
        "resolution": [512, 512],
        "T_cam_imu": T_CAM_IMU,
    },
    "cam4": {
        "camera_model": "pinhole",
        "distortion_model": "radtan",
        "intrinsics": [458.6, 457.3, 367.2, 248.4],
        "distortion_coeffs": [-0.283, 0.074, 0.0, 0.0],
        "resolution": [752, 480],
        "T_cam_imu": T_CAM_IMU,
    },
    "cam5": {
        "camera_model": "pinhole",
        "distortion_model": "none",
        "intrinsics": [458.6, 457.3, 367.2, 248.4],
        "resolution": [752, 480],
        "T_cam_imu": T_CAM_IMU,
    },
}


def _write_yaml(tmp_path, data, name="camchain-imucam.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, default_flow_style=None))
    return path


@pytest.mark.parametrize("name", list(CAMCHAIN))
def test_kalibr_camchain_converts_exactly(tmp_path, capsys, name):
    path = _write_yaml(tmp_path, CAMCHAIN)
    cam, data, _ = convert(tmp_path, capsys, "kalibr", path, "--camera", name)
    c = CAMCHAIN[name]
    assert (
        cam.name == name and cam.image_size == tuple(c["resolution"]) and data["provenance"]["exact"] is True
    )
    rays = _front_rays(50_000, 150.0, seed=2)
    if c["camera_model"] == "pinhole":
        rays = rays[(rays[:, 2] > 0.05) & cam.sees(rays)]
        if c["distortion_model"] == "equidistant":
            ref = _kalibr_equidistant(rays, c["intrinsics"], c["distortion_coeffs"])
        else:  # the pinhole projection is the omni one with xi = 0
            ref = _kalibr_omni_radtan(rays, [0.0, *c["intrinsics"]], c.get("distortion_coeffs", [0.0] * 4))
    elif c["camera_model"] == "omni":
        rays = rays[cam.sees(rays)]
        ref = _kalibr_omni_radtan(rays, c["intrinsics"], c["distortion_coeffs"])
    else:
        params = tuple(c["intrinsics"][:2])
        rays = rays[
            cam.sees(rays)
            & _usenko_domain("double_sphere" if c["camera_model"] == "ds" else "eucm", rays, params)
        ]
        ref = _usenko_project(
            "double_sphere" if c["camera_model"] == "ds" else "eucm", rays, *c["intrinsics"][2:], params
        )
    assert len(rays) > 5000
    np.testing.assert_allclose(cam.project(rays), ref, atol=1e-8, rtol=0)
    # The extrinsic maps the camera to the IMU: the inverse of T_cam_imu.
    p = np.random.default_rng(3).normal(size=(10, 3))
    t_imu_cam = np.linalg.inv(np.array(T_CAM_IMU))
    np.testing.assert_allclose(cam.to_vehicle(p), p @ t_imu_cam[:3, :3].T + t_imu_cam[:3, 3], atol=1e-9)


def test_kalibr_camchain_without_imu_chains_to_cam0(tmp_path, capsys):
    t10 = np.eye(4)
    t10[:3, :3] = cv2.Rodrigues(np.array([0.0, 0.3, 0.05]))[0]
    t10[:3, 3] = [-0.11, 0.002, 0.001]
    t21 = np.eye(4)
    t21[:3, :3] = cv2.Rodrigues(np.array([0.02, -0.4, 0.0]))[0]
    t21[:3, 3] = [-0.1, 0.0, 0.01]
    chain = {f"cam{i}": {k: v for k, v in CAMCHAIN["cam0"].items() if k != "T_cam_imu"} for i in range(3)}
    chain["cam1"]["T_cn_cnm1"] = t10.tolist()
    chain["cam2"]["T_cn_cnm1"] = t21.tolist()
    path = _write_yaml(tmp_path, chain, "camchain.yaml")
    cam0, _, _ = convert(tmp_path, capsys, "kalibr", path)
    assert cam0.name == "cam0" and np.allclose(cam0.rotation, np.eye(3)) and np.allclose(cam0.translation, 0)
    cam2, _, _ = convert(tmp_path, capsys, "kalibr", path, "--camera", "2")
    t_0_2 = np.linalg.inv(t21 @ t10)  # cam2 -> cam0
    p = np.random.default_rng(4).normal(size=(10, 3))
    np.testing.assert_allclose(cam2.to_vehicle(p), p @ t_0_2[:3, :3].T + t_0_2[:3, 3], atol=1e-9)


def test_kalibr_tangential_distortion_is_fitted_and_reported(tmp_path, capsys):
    chain = {"cam0": {**CAMCHAIN["cam1"], "distortion_coeffs": [-0.21, 0.12, 0.0004, -0.0003]}}
    path = _write_yaml(tmp_path, chain)
    cam, data, out = convert(tmp_path, capsys, "kalibr", path)
    fit = data["provenance"]["fit"]
    assert data["provenance"]["exact"] is False and cam.model == "mei"
    assert (
        0 < fit["mean_px"] <= fit["max_px"] <= fit["threshold_px"] == 0.5
        and f"max {fit['max_px']:.4f} px" in out
    )
    # Independent check: pixels unprojected by the converted camera land within the reported error
    # under Kalibr's own formula (tangential terms included).
    px = np.random.default_rng(5).uniform([0, 0], [751, 479], (20_000, 2))
    back = _kalibr_omni_radtan(
        cam.unproject(px), chain["cam0"]["intrinsics"], chain["cam0"]["distortion_coeffs"]
    )
    err = np.linalg.norm(back - px, axis=-1)
    assert err.max() <= fit["max_px"] * 1.05 and err.max() > 0.01
    # A stronger tangential distortion than the threshold allows is refused, naming the field.
    chain["cam0"]["distortion_coeffs"] = [-0.21, 0.12, 0.01, -0.008]
    err = fails(tmp_path, capsys, "kalibr", _write_yaml(tmp_path, chain))
    assert "cam0.distortion_coeffs" in err and "within 0.5 px" in err and "max " in err


def test_tangential_fit_without_scipy_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "scipy.optimize", None)  # as if scipy were not installed
    chain = {"cam0": {**CAMCHAIN["cam1"], "distortion_coeffs": [-0.21, 0.12, 0.0004, -0.0003]}}
    assert "pip install 'heal-swin[calib]'" in fails(tmp_path, capsys, "kalibr", _write_yaml(tmp_path, chain))


# ---------------------------------------------------------------- basalt
def _basalt(tmp_path, ctype: str, intr: dict, res=(512, 512)):
    data = {
        "value0": {
            "T_imu_cam": [
                {"px": 0.04, "py": -0.06, "pz": 0.01, "qx": 0.0036, "qy": 0.0144, "qz": 0.7072, "qw": 0.7068}
            ],
            "intrinsics": [{"camera_type": ctype, "intrinsics": intr}],
            "resolution": [list(res)],
            "calib_accel_bias": [0.0] * 9,
        }
    }
    path = tmp_path / f"calib_{ctype}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "fmt, intr",
    [
        ("ds", {"fx": 158.28, "fy": 158.26, "cx": 254.93, "cy": 256.90, "xi": -0.177, "alpha": 0.593}),
        ("ucm", {"fx": 190.5, "fy": 190.4, "cx": 254.93, "cy": 256.90, "alpha": 0.54}),
    ],
)
def test_basalt_calibration_converts_exactly(tmp_path, capsys, fmt, intr):
    cam, _, _ = convert(tmp_path, capsys, fmt, _basalt(tmp_path, fmt, intr))
    model = {"ds": "double_sphere", "ucm": "ucm"}[fmt]
    params = (intr["xi"], intr["alpha"]) if fmt == "ds" else (intr["alpha"],)
    assert cam.model == model and cam.name == "cam0"
    rays = _front_rays(50_000, 180.0, seed=6)
    rays = rays[cam.sees(rays) & _usenko_domain(model, rays, params)]
    ref = _usenko_project(model, rays, intr["fx"], intr["fy"], intr["cx"], intr["cy"], params)
    np.testing.assert_allclose(cam.project(rays), ref, atol=1e-8, rtol=0)
    q = np.array([0.0036, 0.0144, 0.7072, 0.7068])
    q /= np.linalg.norm(q)
    x, y, z, w = q
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    np.testing.assert_allclose(cam.to_vehicle(np.eye(3)), np.eye(3) @ r.T + [0.04, -0.06, 0.01], atol=1e-12)


# ---------------------------------------------------------------- errors
def test_bad_files_are_one_line_errors_naming_file_and_field(tmp_path, capsys):
    count = iter(range(100))

    def kalibr(**cam0):
        return _write_yaml(tmp_path, {"cam0": {**CAMCHAIN["cam0"], **cam0}}, f"camchain{next(count)}.yaml")

    cases = [
        (
            "kalibr",
            kalibr(camera_model="pinhole", distortion_model="fov"),
            "cam0.camera_model",
            "pinhole+equidistant",
        ),
        (
            "kalibr",
            _write_yaml(
                tmp_path,
                {"cam0": {k: v for k, v in CAMCHAIN["cam0"].items() if k != "intrinsics"}},
                "no_intr.yaml",
            ),
            "cam0.intrinsics",
            "missing",
        ),
        ("kalibr", kalibr(intrinsics=[380.8, 380.2, 376.1]), "cam0.intrinsics", "list of 4 numbers"),
        ("kalibr", kalibr(resolution=[752, "480"]), "cam0.resolution[1]", "a number"),
        # A lens not monotonic over the image: KB with k1 = -0.3 turns back at 65 deg, before the corners.
        (
            "kalibr",
            kalibr(distortion_coeffs=[-0.3, 0.0, 0.0, 0.0]),
            "cam0.distortion_coeffs (intrinsic.k1..k4)",
            "stops increasing",
        ),
        # A field of view the model cannot represent: DS with alpha 0.9 ends at a radius of 1.12 f.
        (
            "ds",
            _basalt(
                tmp_path, "ds", {"fx": 158.0, "fy": 158.0, "cx": 255.5, "cy": 255.5, "xi": -0.2, "alpha": 0.9}
            ),
            "value0.intrinsics[0].intrinsics (intrinsic.xi,alpha)",
            "field of view ends",
        ),
        ("ds", _basalt(tmp_path, "kb4", {"fx": 1.0}), "value0.intrinsics[0].camera_type", "'ds' (--from ds)"),
        (
            "ucm",
            _basalt(tmp_path, "ucm", {"fx": 190.0, "fy": 190.0, "cx": 255.5, "cy": 255.5}),
            "value0.intrinsics[0].intrinsics.alpha",
            "missing",
        ),
        (
            "kalibr",
            kalibr(T_cam_imu=[[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
            "cam0.T_cam_imu",
            "rigid",
        ),
    ]
    for fmt, path, field, words in cases:
        err = fails(tmp_path, capsys, fmt, path)
        assert f"{path}: field '{field}'" in err and words in err, err

    laughs = tmp_path / "laughs.yaml"
    lines = ["a: &l0 [1, 1]"] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 20)]
    laughs.write_text("\n".join(lines) + "\n")
    assert "at most 100 aliases" in fails(tmp_path, capsys, "kalibr", laughs)
    broken = tmp_path / "broken.yaml"
    broken.write_text("cam0: {camera_model: [unclosed\n")
    assert "field '<file>': expected valid YAML" in fails(tmp_path, capsys, "kalibr", broken)
    assert "no such file" in fails(tmp_path, capsys, "kalibr", tmp_path / "missing.yaml")
    assert "field 'cam5'" in fails(tmp_path, capsys, "kalibr", kalibr(), "--camera", "cam5")

    fs_path = tmp_path / "pinhole.yaml"
    fs = cv2.FileStorage(str(fs_path), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", 1280)
    fs.write("image_height", 800)
    fs.write("camera_matrix", K)
    fs.write("distortion_coefficients", np.zeros((5, 1)))  # the pinhole model's k1 k2 p1 p2 k3
    fs.release()
    err = fails(tmp_path, capsys, "opencv-fisheye", fs_path)
    assert "field 'distortion_coefficients'" in err and "5 values" in err
    err = fails(tmp_path, capsys, "opencv-fisheye", broken)
    assert "field '<file>'" in err and "broken.yaml(" in err and "skipSpaces" not in err
    skew = tmp_path / "skew.yaml"
    fs = cv2.FileStorage(str(skew), cv2.FILE_STORAGE_WRITE)
    fs.write("image_size", (1280, 800))
    fs.write("K", K + np.array([[0, 0.5, 0], [0, 0, 0], [0, 0, 0]]))
    fs.write("D", D)
    fs.release()
    assert "field 'K'" in fails(tmp_path, capsys, "opencv-fisheye", skew)
