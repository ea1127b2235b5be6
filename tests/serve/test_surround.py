"""POST /v1/surround in-process: the service's masks and panorama are the library's surround path run
on the same ONNX model, for an uploaded and a registered rig; bad requests are one-line 4xx."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from heal_swin.export.manifest import Manifest, save_manifest, sha256_file
from heal_swin.inference.surround import predict_surround
from heal_swin.inference.triton import CONFIG_NAME, model_config_text
from heal_swin.serve.app import create_app
from heal_swin.serve.config import ServeConfig
from heal_swin.serve.readiness import serve_process, wait_until_ready
from tests.conftest import WOODSCAPE_FV
from tests.geometry.test_rig import H, W, make_rig
from tests.serve.conftest import WOODSCAPE_NAMES, make_onnx, write_model

NSIDE = 8


def write_surround_model(repo, name: str, seed: int = 5) -> Manifest:
    n = 12 * NSIDE**2
    path = make_onnx(repo / name / "1" / "model.onnx", (n,), 10, seed)
    m = Manifest(
        name=name, model_name="hand_built", task="segmentation", input_kind="sphere", in_chans=3, out_chans=10,
        input_shape=[-1, 3, n], output_shape=[-1, 10, n], onnx_sha256=sha256_file(path), opset=18, nside=NSIDE,
        base_pixels=list(range(12)), class_names=WOODSCAPE_NAMES,
        class_colours=np.random.default_rng(seed).integers(0, 256, (10, 3)).tolist(), metadata={"surround": True},
        normalisation={"colour_order": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    )  # fmt: skip
    save_manifest(repo / name, m)
    (repo / name / CONFIG_NAME).write_text(model_config_text(m))
    return m


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    repo = tmp_path_factory.mktemp("surround_repo")
    manifest = write_surround_model(repo, "surround8")
    write_model(
        repo, "seg8", "segmentation", "sphere", nside=8, seed=2
    )  # a per-camera model (base pixels 0-7)
    rig = make_rig(json.loads(json.dumps(WOODSCAPE_FV)))
    (repo / "rigs").mkdir()
    (repo / "rigs" / "testcar.json").write_text(json.dumps(rig.to_dict()))
    rng = np.random.default_rng(0)
    frames = {}
    for i, cam in enumerate(rig.cameras):
        v = cam.to_vehicle(cam.pixel_rays(), directions=True)  # a scene consistent across the cameras + noise
        img = np.stack(
            [128 + 100 * v[..., 0], 128 + 100 * v[..., 1], 128 + 100 * v[..., 2]], -1
        ) + rng.normal(0, 20, (H, W, 3))
        frames[cam.name] = np.clip(img, 0, 255).astype(np.uint8)
    app = create_app(ServeConfig(model_repository=repo, max_wait_ms=2))
    with TestClient(app) as client:
        wait_until_ready(client, 30)
        yield client, repo, manifest, rig, frames


def png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def files(frames, rig=None, names=None):
    out = [
        ("frames", (f"{(names or {}).get(n, '00042_' + n)}.png", png(f), "image/png"))
        for n, f in frames.items()
    ]
    if rig is not None:
        out.append(("rig", ("rig.json", json.dumps(rig.to_dict()).encode(), "application/json")))
    return out


def test_masks_and_panorama_are_the_library_path(setup):
    client, repo, manifest, rig, frames = setup
    session = ort.InferenceSession(
        str(repo / "surround8" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    ref = predict_surround(
        frames, rig, manifest, lambda x: session.run(None, {"input": x})[0], picture_width=256
    )
    r = client.post(
        "/v1/surround", files=files(frames), data={"rig_name": "testcar", "panorama_width": "256"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["model"] == "surround8"
        and body["cameras"] == ["FV", "MVL", "RV", "MVR"]
        and body["nside"] == NSIDE
    )
    for name in rig.names:
        mask = cv2.imdecode(
            np.frombuffer(base64.b64decode(body["masks"][name]), np.uint8), cv2.IMREAD_UNCHANGED
        )
        np.testing.assert_array_equal(mask, ref.masks[name])
    pano = cv2.imdecode(np.frombuffer(base64.b64decode(body["panorama"]), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(pano, ref.picture)
    assert len(np.unique(ref.classes)) > 1  # the model's answer depends on the frames
    # the same rig uploaded, frames named by their stems, panorama format
    r2 = client.post(
        "/v1/surround",
        files=files(frames, rig, names={n: n for n in frames}),
        data={"format": "panorama", "panorama_width": "256"},
    )
    assert r2.status_code == 200 and r2.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(
        cv2.imdecode(np.frombuffer(r2.content, np.uint8), cv2.IMREAD_COLOR), ref.picture
    )


@pytest.mark.parametrize(
    "case, status, words",
    [
        ("missing_frame", 422, "one per rig camera"),
        ("unnamed_frame", 422, "names no camera"),
        ("both_rigs", 422, "exactly one"),
        ("unknown_rig", 404, "not found"),
        ("path_rig", 422, "rig_name"),
        ("per_camera_model", 422, "12 base pixels"),
        ("wrong_size", 422, "does not match"),
        ("not_an_image", 415, "not a PNG or JPEG"),
        ("bad_rig_json", 422, "rig upload"),
    ],
)
def test_bad_requests_are_one_line_4xx(setup, case, status, words):
    client, _, _, rig, frames = setup
    data = {"rig_name": "testcar"}
    f = files(frames)
    if case == "missing_frame":
        f = f[:3]
    elif case == "unnamed_frame":
        f[0] = ("frames", ("camera.png", f[0][1][1], "image/png"))
    elif case == "both_rigs":
        f = files(frames, rig)
    elif case == "unknown_rig":
        data = {"rig_name": "nocar"}
    elif case == "path_rig":
        data = {"rig_name": "../rigs/testcar"}
    elif case == "per_camera_model":
        data["model"] = "seg8"
    elif case == "wrong_size":
        f[1] = ("frames", ("00042_MVL.png", png(np.zeros((H + 2, W, 3), np.uint8)), "image/png"))
    elif case == "not_an_image":
        f[2] = ("frames", ("00042_RV.png", b"GIF89a not a png", "image/png"))
    elif case == "bad_rig_json":
        data = {}
        f.append(("rig", ("rig.json", b'{"cameras": {"FV": {"intrinsic": {}}}}', "application/json")))
    r = client.post("/v1/surround", files=f, data=data)
    assert r.status_code == status, r.text
    msg = json.dumps(r.json())
    assert words in msg and "Traceback" not in msg


@pytest.fixture(scope="module")
def surround_server(setup):
    """``heal-swin serve`` on the surround repository (a real process, for the browser)."""
    from tests.serve.conftest import ROOT

    _, repo, *_ = setup
    with serve_process(repo, cwd=ROOT) as (url, _):
        yield url


@pytest.mark.slow
def test_demo_page_surround_tab(setup, surround_server, tmp_path):
    from tests.serve.test_browser import ARGS, CHROMIUM, playwright_or_skip

    sync_api = playwright_or_skip()
    _, _, _, rig, frames = setup
    paths = []
    for name, img in frames.items():
        paths.append(str(tmp_path / f"00042_{name}.png"))
        cv2.imwrite(paths[-1], img)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(surround_server + "/")
        page.click("#sv-run")  # no frames yet: a message, no request
        page.wait_for_function("document.body.dataset.svDone !== undefined", timeout=20000)
        assert page.evaluate("document.body.dataset.svDone") == "error" and "frames" in page.inner_text(
            "#sv-status"
        )
        page.evaluate("delete document.body.dataset.svDone")
        page.set_input_files("#sv-frames", paths)
        page.fill("#sv-rig-name", "testcar")
        page.click("#sv-run")
        page.wait_for_function("document.body.dataset.svDone !== undefined", timeout=30000)
        assert page.evaluate("document.body.dataset.svDone") == "1", page.inner_text("#sv-status")
        assert page.evaluate(
            "[document.getElementById('sv-panorama').naturalWidth, document.getElementById('sv-panorama').naturalHeight]"
        ) == [1024, 512]
        sizes = page.evaluate(
            "[...document.querySelectorAll('#sv-out canvas')].map(c => [c.width, c.height])"
        )
        assert sizes == [[W, H]] * 4
        assert page.locator("#sv-out figcaption").all_inner_texts()[1:] == [
            f"{n} (back-projected)" for n in rig.names
        ]
        assert not errors, errors
        browser.close()
