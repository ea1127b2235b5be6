"""The service in-process (TestClient): every endpoint and format, and every kind of bad input."""

from __future__ import annotations

import io
import json
import threading
import zlib

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from heal_swin.export.manifest import load_manifest
from heal_swin.serve import pipeline as pl
from heal_swin.serve.app import create_app
from heal_swin.serve.config import ServeConfig
from heal_swin.serve.readiness import wait_until_ready


def wait_ready(client: TestClient, timeout: float = 30) -> None:
    wait_until_ready(client, timeout, interval=0.02)


@pytest.fixture(scope="module")
def client(repo):
    app = create_app(
        ServeConfig(
            model_repository=repo, max_upload_bytes=2_000_000, max_image_pixels=1_000_000, max_wait_ms=2
        )
    )
    with TestClient(app) as c:
        wait_ready(c)
        yield c


def reference(repo, name, image, camera):
    """The model output computed outside the service (same pre-processing, plain onnxruntime)."""
    m = load_manifest(repo / name)
    sess = ort.InferenceSession(str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    x = pl.model_input(image, m, camera)[None]
    return m, sess.run(None, {"input": x})[0][0]


def files(frame, calib=True, image=None):
    f = {"image": ("frame.png", frame[2] if image is None else image, "image/png")}
    if calib:
        f["calibration"] = ("calib.json", frame[3], "application/json")
    return f


def png(resp) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    return cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_UNCHANGED)


# ------------------------------------------------------------------ happy paths
def test_segment_mask_matches_reference(client, repo, frame):
    image, camera = frame[0], frame[1]
    mask = png(client.post("/v1/segment", files=files(frame)))
    m, logits = reference(repo, "seg16", image, camera)
    want = pl.classes_to_image(pl.classes_from_logits(logits), m, camera, (image.shape[1], image.shape[0]))
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, want)
    footprint = pl.projector_for(camera, m).footprint()
    assert np.all(mask[~footprint] == 255) and np.all(mask[footprint] < 10)
    assert len(np.unique(mask[footprint])) > 1


def test_segment_formats(client, frame):
    image = frame[0]
    overlay = png(client.post("/v1/segment", files=files(frame), data={"format": "overlay"}))
    assert overlay.shape == image.shape
    sphere = png(client.post("/v1/segment", files=files(frame), data={"format": "sphere"}))
    assert sphere.ndim == 3 and sphere.shape[1] == 512
    r = client.post("/v1/segment", files=files(frame), data={"format": "json", "model": "seg16"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["nside"] == 16 and body["base_pixels"] == list(range(8)) and body["order"] == "NESTED"
    assert len(body["values"]) == body["npix"] == 8 * 16 * 16 == len(body["valid"])
    assert body["class_names"][1] == "road" and len(body["class_colours"]) == 10
    assert 0 < sum(body["valid"]) < body["npix"]


def test_segment_registered_camera_and_jpeg(client, repo, frame):
    a = png(client.post("/v1/segment", files=files(frame, calib=False), data={"camera": "front"}))
    b = png(client.post("/v1/segment", files=files(frame)))
    np.testing.assert_array_equal(a, b)
    _ok, jpg = cv2.imencode(".jpg", frame[0], [cv2.IMWRITE_JPEG_QUALITY, 95])
    r = client.post(
        "/v1/segment", files={"image": ("f.jpg", jpg.tobytes(), "image/jpeg")}, data={"camera": "front"}
    )
    assert png(r).shape == frame[0].shape[:2]


def test_resize_scales_the_calibration(client, frame):
    big = cv2.resize(frame[0], (320, 242))
    _ok, data = cv2.imencode(".png", big)
    r = client.post("/v1/segment", files=files(frame, image=data.tobytes()))
    assert r.status_code == 422
    assert "320x242" in r.json()["error"] and "160x121" in r.json()["error"]
    mask = png(client.post("/v1/segment", files=files(frame, image=data.tobytes()), data={"resize": "true"}))
    assert mask.shape == (242, 320)


def test_depth_formats(client, repo, frame):
    image, camera = frame[0], frame[1]
    mm = png(client.post("/v1/depth", files=files(frame)))
    assert mm.dtype == np.uint16 and mm.shape == image.shape[:2]
    r = client.post("/v1/depth", files=files(frame), data={"format": "npy"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    metres = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert metres.dtype == np.float32 and metres.shape == image.shape[:2]
    m, out = reference(repo, "depth16", image, camera)
    want = pl.depth_to_image(pl.depth_from_output(out, m), m, camera, (image.shape[1], image.shape[0]))
    np.testing.assert_allclose(metres, want, rtol=1e-5, equal_nan=True)
    inside = np.isfinite(metres)
    assert inside.any() and (~inside).any()
    assert np.all(mm[~inside] == 0)
    np.testing.assert_allclose(mm[inside], np.clip(np.rint(metres[inside] * 1000), 1, 65535), atol=1)
    body = client.post("/v1/depth", files=files(frame), data={"format": "json"}).json()
    assert body["unit"] == "m" and len(body["values"]) == body["npix"] == 2048
    assert png(client.post("/v1/depth", files=files(frame), data={"format": "colour"})).shape == image.shape
    assert png(client.post("/v1/depth", files=files(frame), data={"format": "sphere"})).shape[1] == 512


def test_flat_models(client, frame):
    image = frame[0]
    mask = png(client.post("/v1/segment", files=files(frame, calib=False), data={"model": "flatseg"}))
    assert mask.shape == image.shape[:2] and mask.max() < 10  # a flat model predicts every pixel
    assert (
        png(
            client.post("/v1/segment", files=files(frame), data={"model": "flatseg", "format": "overlay"})
        ).shape
        == image.shape
    )
    mm = png(client.post("/v1/depth", files=files(frame, calib=False), data={"model": "flatdepth"}))
    assert mm.dtype == np.uint16 and mm.shape == image.shape[:2] and mm.min() > 0
    r = client.post("/v1/segment", files=files(frame), data={"model": "flatseg", "format": "json"})
    assert r.status_code == 422 and "sphere" in r.json()["error"]


def test_v2_protocol(client, repo):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "heal-swin"
    meta = client.get("/v2/models/seg8").json()
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 512]}]
    assert meta["outputs"][0]["shape"] == [-1, 10, 512]
    assert client.get("/v2/models/seg8/ready").json() == {"name": "seg8", "ready": True}
    x = np.random.default_rng(0).normal(size=(2, 3, 512)).astype(np.float32)
    r = client.post(
        "/v2/models/seg8/infer",
        json={
            "id": "q1",
            "inputs": [
                {"name": "input", "shape": [2, 3, 512], "datatype": "FP32", "data": x.ravel().tolist()}
            ],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "q1" and body["model_name"] == "seg8"
    out = body["outputs"][0]
    assert out["shape"] == [2, 10, 512] and out["datatype"] == "FP32"
    sess = ort.InferenceSession(str(repo / "seg8" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        np.asarray(out["data"], np.float32).reshape(2, 10, 512),
        sess.run(None, {"input": x})[0],
        rtol=1e-5,
        atol=1e-5,
    )
    # nested data works too
    r = client.post(
        "/v2/models/seg8/infer",
        json={
            "inputs": [{"name": "input", "shape": [1, 3, 512], "datatype": "FP32", "data": x[:1].tolist()}]
        },
    )
    assert r.status_code == 200


def test_models_metrics_docs_demo(client):
    info = client.get("/v1/models").json()
    assert {m["name"] for m in info["models"]} == {"seg16", "depth16", "seg8", "flatseg", "flatdepth"}
    assert info["cameras"] == ["demo", "front"] and info["defaults"] == {
        "segmentation": "seg16",
        "depth": "depth16",
    }
    # One inference first, so the batch-size histogram has a sample whatever ran before this test.
    r = client.post(
        "/v2/models/seg8/infer",
        json={"inputs": [{"name": "input", "shape": [1, 3, 512], "datatype": "FP32", "data": [0.0] * 1536}]},
    )
    assert r.status_code == 200
    text = client.get("/metrics").text
    assert 'heal_swin_http_requests_total{method="GET",route="/v1/models",status="200"}' in text
    assert "heal_swin_batch_size_bucket" in text and "heal_swin_http_request_duration_seconds_bucket" in text
    assert 'heal_swin_model_ready{model="seg16"} 1.0' in text
    schema = client.get("/openapi.json").json()
    assert {"/v1/segment", "/v1/depth", "/v2/models/{name}/infer", "/metrics"} <= set(schema["paths"])
    docs_work_offline(client)
    page = client.get("/")
    assert page.status_code == 200 and "demo_fisheye.jpg" in page.text
    assert client.get("/static/demo_fisheye.jpg").headers["content-type"] == "image/jpeg"


def docs_work_offline(client) -> None:
    """/docs and /redoc load every script and stylesheet from the service itself (no CDN)."""
    import re

    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text) + re.findall(
            r"""url: *['"]([^'"]+)['"]""", r.text
        )
        assets = [u for u in urls if u.endswith((".js", ".css"))]
        assert assets, (page, r.text[:500])
        for u in urls:
            assert not u.startswith(("http:", "https:", "//")), (page, u)
        for u in assets:
            got = client.get(u)
            assert got.status_code == 200 and len(got.content) > 10_000, (u, got.status_code)
    assert "SwaggerUIBundle" in client.get("/docs").text


def test_concurrent_requests_are_batched_correctly(client, repo, frame):
    """Different frames at once: each answer must be its own frame's (no mixing inside a batch)."""
    rng = np.random.default_rng(1)
    frames = []
    for _ in range(8):
        img = np.clip(frame[0].astype(np.int16) + rng.integers(-60, 60, (1, 1, 3)), 0, 255).astype(np.uint8)
        frames.append(img)
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        _ok, data = cv2.imencode(".png", frames[i])
        r = client.post("/v1/segment", files=files(frame, image=data.tobytes()), data={"format": "json"})
        results[i] = np.asarray(r.json()["values"])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, img in enumerate(frames):
        _m, logits = reference(repo, "seg16", img, frame[1])
        np.testing.assert_array_equal(results[i], pl.classes_from_logits(logits))
    text = client.get("/metrics").text
    sizes = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('heal_swin_batch_size_count{model="seg16"}')
    ]
    assert sizes and sizes[0] > 0


# ------------------------------------------------------------------ bad input
def test_bad_images(client, frame):
    r = client.post("/v1/segment", files=files(frame, image=b"GIF89a" + b"\0" * 100))
    assert r.status_code == 415 and "PNG or JPEG" in r.json()["error"]
    corrupt = frame[2][:40] + b"\0" * 200  # a PNG header, then garbage
    r = client.post("/v1/segment", files=files(frame, image=corrupt))
    assert r.status_code == 422 and "corrupt" in r.json()["error"]
    r = client.post("/v1/segment", files=files(frame, image=b""))
    assert r.status_code == 422 and "empty" in r.json()["error"]
    r = client.post("/v1/segment", files=files(frame, image=b"\xff\xd8\xff\xe0" + b"\x01" * 50))
    assert r.status_code == 422
    # a huge PNG header: rejected from the header, before any decoding
    huge = bytearray(frame[2][:33])
    huge[16:20] = (20000).to_bytes(4, "big")
    huge[20:24] = (20000).to_bytes(4, "big")
    huge[29:33] = zlib.crc32(bytes(huge[12:29])).to_bytes(4, "big")  # a valid header that claims 20000x20000
    r = client.post("/v1/segment", files=files(frame, image=bytes(huge)))
    assert r.status_code == 413 and "20000x20000" in r.json()["error"]


def test_upload_too_large(client, frame):
    r = client.post("/v1/segment", files=files(frame, image=frame[2] + b"\0" * 2_100_000))
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_bad_calibrations(client, frame):
    def post(calib: bytes):
        return client.post(
            "/v1/segment",
            files={
                "image": ("f.png", frame[2], "image/png"),
                "calibration": ("c.json", calib, "application/json"),
            },
        )

    r = post(b"{not json")
    assert r.status_code == 422 and "valid JSON" in r.json()["error"]
    cal = json.loads(frame[3])
    cal["intrinsic"]["k1"] = -5
    r = post(json.dumps(cal).encode())
    assert r.status_code == 422 and "intrinsic.k1" in r.json()["error"]
    del cal["intrinsic"]
    r = post(json.dumps(cal).encode())
    assert r.status_code == 422 and "intrinsic" in r.json()["error"]
    r = post(b"\xff\xfe\x00binary")
    assert r.status_code == 422
    r = client.post("/v1/segment", files=files(frame, calib=False))
    assert r.status_code == 422 and "calibration" in r.json()["error"]
    r = client.post("/v1/segment", files=files(frame), data={"camera": "front"})
    assert r.status_code == 422 and "not both" in r.json()["error"]


def test_unknown_and_invalid_names(client, frame):
    r = client.post("/v1/segment", files=files(frame, calib=False), data={"camera": "rear"})
    assert r.status_code == 404 and "rear" in r.json()["error"]
    r = client.post("/v1/segment", files=files(frame), data={"model": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["error"]
    for bad in ("../seg16", "..", "a/b", "cameras/front", "x" * 200):
        r = client.post("/v1/segment", files=files(frame, calib=False), data={"camera": bad})
        assert r.status_code in (400, 422), (bad, r.status_code)
        assert "error" in r.json()
        r = client.post("/v1/segment", files=files(frame), data={"model": bad})
        assert r.status_code in (400, 422), (bad, r.status_code)
    assert client.get("/v2/models/..%2Fseg16").status_code in (400, 404, 422)
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get("/v2/models/nope/ready").status_code == 404
    r = client.post("/v1/segment", files=files(frame), data={"model": "depth16"})
    assert r.status_code == 422 and "/v1/depth" in r.json()["error"]
    r = client.post("/v1/segment", files=files(frame), data={"format": "bmp"})
    assert r.status_code == 422 and "format" in r.json()["error"]
    r = client.post("/v1/segment", data={"camera": "front"})
    assert r.status_code == 422 and "image" in r.json()["error"]


def test_bad_infer_requests(client):
    def infer(body, name="seg8"):
        return client.post(f"/v2/models/{name}/infer", json=body)

    ok = {"name": "input", "shape": [1, 3, 512], "datatype": "FP32", "data": [0.0] * 1536}
    assert infer({"inputs": [ok]}).status_code == 200
    cases = [
        ({"inputs": [{**ok, "shape": [1, 3, 511]}]}, "shape"),
        ({"inputs": [{**ok, "shape": [100000, 3, 512]}]}, "shape"),
        ({"inputs": [{**ok, "data": [0.0] * 10}]}, "1536"),
        ({"inputs": [{**ok, "data": ["a"] * 1536}]}, "numbers"),
        ({"inputs": [{**ok, "data": [1e30] * 1536}]}, "finite"),
        ({"inputs": [{**ok, "name": "x"}]}, "input"),
        ({"inputs": [ok, ok]}, "1 input"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [{**ok, "datatype": "BYTES"}]}, "datatype"),
        ({}, "inputs"),
    ]
    for body, word in cases:
        r = infer(body)
        assert 400 <= r.status_code < 500 and word in r.json()["error"], (
            body.keys(),
            r.status_code,
            r.text[:200],
        )
    r = infer({"inputs": [ok], "outputs": [{"name": "nope"}]})
    assert r.status_code == 404
    r = client.post("/v2/models/seg8/infer", content=b"{broken", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()
    assert infer({"inputs": [ok]}, name="nope").status_code == 404


def test_not_ready_until_warm(repo, frame, monkeypatch):
    from heal_swin.serve import runtime

    release = threading.Event()
    original = runtime.ModelRuntime.warm_up

    def slow(self, sizes=(1,)):
        release.wait(10)
        return original(self, sizes)

    monkeypatch.setattr(runtime.ModelRuntime, "warm_up", slow)
    app = create_app(ServeConfig(model_repository=repo))
    with TestClient(app) as c:
        assert c.get("/v2/health/live").status_code == 200
        r = c.get("/v2/health/ready")
        assert r.status_code == 503 and "warming" in r.json()["error"]
        assert c.get("/v2/models/seg16/ready").status_code == 503
        r = c.post("/v1/segment", files=files(frame))
        assert r.status_code == 503
        release.set()
        wait_ready(c)
        assert c.post("/v1/segment", files=files(frame)).status_code == 200


def test_no_batching_and_int8_fallback(repo, frame):
    app = create_app(ServeConfig(model_repository=repo, batching=False, precision="int8", warmup=False))
    with TestClient(app) as c:
        wait_ready(c)
        assert c.post("/v1/segment", files=files(frame)).status_code == 200
        assert c.get("/v1/models").json()["models"][0]["precision"] == "fp32"  # no int8 file exported
