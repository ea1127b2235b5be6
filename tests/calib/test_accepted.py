"""Converted calibrations are accepted where calibrations are used: ``heal-swin project``,
``heal-swin predict`` and the service (upload and registered camera), with the geometry checked
against the source tools' own formulas (cv2.fisheye, Usenko et al.) and healpy."""

from __future__ import annotations

import json
import math

import cv2
import healpy as hp
import numpy as np
import pytest

from heal_swin.cli import main
from heal_swin.geometry import FisheyeCamera
from heal_swin.serve.readiness import wait_until_ready
from tests.geometry.test_camera_models import _usenko_domain, _usenko_project, _usenko_unproject

W, H = 160, 120
NSIDE = 16
K = np.array([[52.0, 0.0, 80.3], [0.0, 51.6, 59.6], [0.0, 0.0, 1.0]])
D = np.array([0.05, -0.01, 0.003, -0.0004])
UCM = {"fx": 30.0, "fy": 29.8, "cx": 79.2, "cy": 60.3, "alpha": 0.52}  # ~125 deg at the corners


def _grid_rays(nside: int = NSIDE, base=range(8)) -> np.ndarray:
    """Camera-frame rays of the grid's pixels (DESIGN: pixel i -> nested base[i // nside^2] nside^2 + i % nside^2)."""
    n2 = nside * nside
    idx = np.concatenate([b * n2 + np.arange(n2) for b in base])
    return np.stack(hp.pix2vec(nside, idx, nest=True), -1)


@pytest.fixture()
def opencv_calib(tmp_path, capsys):
    src = tmp_path / "fisheye.yaml"
    fs = cv2.FileStorage(str(src), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", W)
    fs.write("image_height", H)
    fs.write("camera_matrix", K)
    fs.write("distortion_coefficients", D)
    fs.release()
    out = tmp_path / "kb.json"
    assert main(["calib", "convert", "--from", "opencv-fisheye", str(src), "--out", str(out)]) == 0
    capsys.readouterr()
    return out


@pytest.fixture()
def ucm_calib(tmp_path, capsys):
    src = tmp_path / "basalt.json"
    src.write_text(
        json.dumps(
            {"value0": {"intrinsics": [{"camera_type": "ucm", "intrinsics": UCM}], "resolution": [[W, H]]}}
        )
    )
    out = tmp_path / "ucm.json"
    assert main(["calib", "convert", "--from", "ucm", str(src), "--out", str(out), "--name", "ucm_cam"]) == 0
    capsys.readouterr()
    return out


def _ucm_pixels(rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Usenko et al.'s UCM projection of rays and whether each lands inside the image (pixel footprint)."""
    uv = _usenko_project("ucm", rays, UCM["fx"], UCM["fy"], UCM["cx"], UCM["cy"], (UCM["alpha"],))
    inside = _usenko_domain("ucm", rays, (UCM["alpha"],)) & np.all(
        (uv >= -0.5) & (uv < np.array([W, H]) - 0.5), -1
    )
    return uv, inside


def _coded_image() -> np.ndarray:
    """BGR image whose red channel is u and green channel is v."""
    v, u = np.mgrid[0:H, 0:W]
    return np.stack([np.zeros_like(u), v, u], -1).astype(np.uint8)


def _project(tmp_path, calib) -> tuple[np.ndarray, np.ndarray]:
    img = tmp_path / "coded.png"
    cv2.imwrite(str(img), _coded_image())
    out = tmp_path / f"proj_{calib.stem}"
    args = [
        "project",
        str(img),
        "--calib",
        str(calib),
        "--nside",
        str(NSIDE),
        "--mode",
        "nearest",
        "--out",
        str(out),
        "--view-width",
        "64",
    ]
    assert main(args) == 0
    return np.load(out / "sphere.npy"), np.load(out / "valid.npy")


def test_project_cli_samples_where_cv2_fisheye_projects(tmp_path, opencv_calib, capsys):
    sphere, valid = _project(tmp_path, opencv_calib)
    capsys.readouterr()
    rays = _grid_rays()
    front = rays[:, 2] > 0.05  # cv2.fisheye divides by z
    ref, _ = cv2.fisheye.projectPoints(rays[front].reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)
    ref = ref.reshape(-1, 2)
    inside = np.all((ref >= -0.5) & (ref < np.array([W, H]) - 0.5), -1)
    np.testing.assert_array_equal(valid[front], inside)
    got = sphere[front][inside][:, :2].astype(np.float64)  # (R, G) = (u, v) of the nearest pixel
    want = np.clip(np.floor(ref[inside] + 0.5), 0, [W - 1, H - 1])
    assert np.abs(got - want).max() <= 1 and (got == want).all(-1).mean() > 0.99
    assert valid.sum() > 500


def test_project_cli_samples_where_usenko_ucm_projects(tmp_path, ucm_calib, capsys):
    sphere, valid = _project(tmp_path, ucm_calib)
    capsys.readouterr()
    uv, inside = _ucm_pixels(_grid_rays())
    np.testing.assert_array_equal(valid, inside)
    got = sphere[inside][:, :2].astype(np.float64)
    want = np.clip(np.floor(uv[inside] + 0.5), 0, [W - 1, H - 1])
    assert np.abs(got - want).max() <= 1 and (got == want).all(-1).mean() > 0.99
    assert (_grid_rays()[inside][:, 2] < 0).any()  # the lens sees behind the image plane


def test_predict_cli_with_a_converted_calibration(tmp_path, ucm_calib, capsys):
    torch = pytest.importorskip("torch")
    from heal_swin.models.checkpoint import save_model
    from heal_swin.models.registry import create_model
    from heal_swin.train.inference import Predictor

    torch.manual_seed(0)
    model = create_model("heal_swin_tiny", nside=NSIDE, num_classes=4, cosine_attn=False, post_norm=False)
    meta = {
        "task": "segmentation",
        "class_names": list("abcd"),
        "class_colours": [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
    }
    model_file = save_model(tmp_path / "m.safetensors", model, meta)
    rng = np.random.default_rng(0)
    bgr = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (7, 7), 2)
    img = tmp_path / "frame.png"
    cv2.imwrite(str(img), bgr)
    out = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(model_file),
                str(img),
                "--calib",
                str(ucm_calib),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    _, inside = _ucm_pixels(_grid_rays())
    np.testing.assert_array_equal(np.load(out / "valid.npy"), inside)
    pred = Predictor(model_file)(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), FisheyeCamera.from_json(ucm_calib))
    np.testing.assert_array_equal(np.load(out / "sphere.npy"), pred.sphere)
    np.testing.assert_array_equal(cv2.imread(str(out / "mask.png"), cv2.IMREAD_UNCHANGED), pred.flat)


def test_service_accepts_converted_calibrations(tmp_path, ucm_calib):
    pytest.importorskip("fastapi")
    import onnxruntime as ort
    from fastapi.testclient import TestClient

    from heal_swin.export.manifest import load_manifest
    from heal_swin.serve import pipeline as pl
    from heal_swin.serve.app import create_app
    from heal_swin.serve.config import ServeConfig
    from tests.serve.conftest import write_model

    repo = tmp_path / "repo"
    write_model(repo, "seg16", "segmentation", "sphere", nside=NSIDE)
    (repo / "cameras").mkdir()
    (repo / "cameras" / "ucm_cam.json").write_bytes(
        ucm_calib.read_bytes()
    )  # registration: a file in cameras/
    rng = np.random.default_rng(1)
    bgr = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (7, 7), 2)
    png = cv2.imencode(".png", bgr)[1].tobytes()
    with TestClient(create_app(ServeConfig(model_repository=repo))) as client:
        wait_until_ready(client, 30)
        assert "ucm_cam" in client.get("/v1/models").json()["cameras"]
        up = client.post(
            "/v1/segment",
            data={"model": "seg16"},
            files={
                "image": ("f.png", png, "image/png"),
                "calibration": ("c.json", ucm_calib.read_bytes(), "application/json"),
            },
        )
        reg = client.post(
            "/v1/segment",
            data={"model": "seg16", "camera": "ucm_cam"},
            files={"image": ("f.png", png, "image/png")},
        )
    assert up.status_code == 200 and reg.status_code == 200, (up.text, reg.text)
    mask = cv2.imdecode(np.frombuffer(up.content, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(
        mask, cv2.imdecode(np.frombuffer(reg.content, np.uint8), cv2.IMREAD_UNCHANGED)
    )
    # Pixels outside the grid (255): their ray, by Usenko et al.'s unprojection, is in a base pixel >= 8 (healpy).
    v, u = np.mgrid[0:H, 0:W]
    rays = _usenko_unproject(
        "ucm",
        np.stack([u, v], -1).reshape(-1, 2).astype(float),
        UCM["fx"],
        UCM["fy"],
        UCM["cx"],
        UCM["cy"],
        (UCM["alpha"],),
    )
    outside = (hp.vec2pix(NSIDE, *rays.T, nest=True) // NSIDE**2 >= 8).reshape(H, W)
    assert outside.any() and not outside.all()
    np.testing.assert_array_equal(mask == 255, outside)
    # The classes are the model's on the sphere built from this camera (plain onnxruntime outside the service).
    camera = FisheyeCamera.from_json(ucm_calib)
    m = load_manifest(repo / "seg16")
    sess = ort.InferenceSession(str(repo / "seg16" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": pl.model_input(bgr, m, camera)[None]})[0][0]
    np.testing.assert_array_equal(
        mask, pl.classes_to_image(pl.classes_from_logits(logits), m, camera, (W, H))
    )
    assert math.isfinite(camera.max_incidence_angle) and camera.max_incidence_angle > math.pi / 2


def test_synthetic_renderer_accepts_converted_cameras(opencv_calib):
    # export --camera checks its parity on a street scene rendered through the calibration (the
    # renderer used to rebuild the camera as a radial_poly one and failed on any other lens model).
    from heal_swin.data.synthetic import make_scene, render_scene

    camera = FisheyeCamera.from_json(opencv_calib)
    rng = np.random.default_rng(0)
    out = render_scene(make_scene(rng, cameras=("FV",)), camera, rng)
    assert out["image"].shape == (H, W, 3) and out["label"].shape == (H, W) and out["depth"].shape == (H, W)
