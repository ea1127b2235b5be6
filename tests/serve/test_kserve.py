"""KServe v2 with the real client: ``tritonclient`` (HTTP) against the service on a real uvicorn.

The models: ``seg`` (our exported interface: float32 (B, 3, 512) -> (B, 10, 512), two versions) and
``frame_cam`` (no model.json, the end-to-end interface: uint8 frames in, uint8 masks out, plus a
float32 second input and output). Outputs are checked against onnxruntime run directly on the files.
"""

from __future__ import annotations

import gzip
import json
import logging

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from heal_swin.inference.manifest import save_manifest, sha256_file
from heal_swin.serve.config import ServeConfig
from tests.serve.conftest import make_onnx, write_frame_model, write_model
from tests.serve.kserve_server import running_service

httpclient = pytest.importorskip(
    "tritonclient.http", reason="tritonclient not installed (pip install -e '.[dev]')"
)
from tritonclient.utils import InferenceServerException

H, W = 12, 16


@pytest.fixture(scope="module")
def kserve_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("kserve_repo")
    m = write_model(root, "seg", "segmentation", "sphere", nside=8)
    q = make_onnx(root / "seg" / "2" / "model.onnx", (512,), 10, seed=9)
    m.model_versions = {"1": "fp32", "2": "int8"}
    m.int8 = {"version": 2, "onnx_file": "model.onnx", "onnx_sha256": sha256_file(q), "validation": {}}
    save_manifest(root / "seg", m)
    write_frame_model(root, "frame_cam", H, W)
    return root


@pytest.fixture(scope="module")
def url(kserve_repo):
    cfg = ServeConfig(
        model_repository=kserve_repo,
        warmup=True,
        max_infer_batch=4,
        max_tensor_elements=200_000,
        max_upload_bytes=4_000_000,
    )
    with running_service(cfg) as u:
        yield u


@pytest.fixture(scope="module")
def client(url):
    c = httpclient.InferenceServerClient(url)
    yield c
    c.close()


def direct(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_health_metadata_and_config(client):
    assert client.is_server_live() and client.is_server_ready()
    assert (
        client.is_model_ready("seg")
        and client.is_model_ready("seg", "1")
        and client.is_model_ready("frame_cam")
    )
    assert not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("frame_cam")
    assert meta["inputs"] == [{"name": "frame", "datatype": "UINT8", "shape": [-1, H, W, 3]},
                              {"name": "gain", "datatype": "FP32", "shape": [-1, 1]}]  # fmt: skip
    assert meta["outputs"] == [{"name": "mask", "datatype": "UINT8", "shape": [-1, H, W]},
                               {"name": "mean", "datatype": "FP32", "shape": [-1, 1]}]  # fmt: skip
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    seg = client.get_model_metadata("seg", "1")
    assert seg["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 512]}]
    assert seg["parameters"]["version"] == "1" and seg["parameters"]["task"] == "segmentation"
    assert seg["parameters"]["execution_provider"] == "CPUExecutionProvider"
    config = client.get_model_config("frame_cam")
    assert [t["name"] for t in config["input"]] == ["frame", "gain"] and config["input"][0][
        "data_type"
    ] == "TYPE_UINT8"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_sphere_model_versions(client, kserve_repo, binary):
    x = np.random.default_rng(0).standard_normal((2, 3, 512), dtype=np.float32)
    for version in ("", "1", "2"):
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = [httpclient.InferRequestedOutput("output", binary_data=binary)]
        res = client.infer("seg", [inp], model_version=version, outputs=out, request_id="r1")
        want = direct(kserve_repo / "seg" / (version or "2") / "model.onnx", {"input": x})[0]
        got = res.as_numpy("output")
        assert got.dtype == np.float32 and got.shape == (2, 10, 512)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        r = res.get_response()
        assert r["model_version"] == (version or "2") and r["id"] == "r1"
    stats = {s["version"]: s for s in client.get_inference_statistics("seg")["model_stats"]}
    assert stats["1"]["inference_count"] >= 2 and stats["2"]["inference_count"] >= 4  # 2 samples per request
    assert (
        stats["2"]["execution_count"] >= 2
        and stats["2"]["inference_stats"]["success"]["count"] == stats["2"]["inference_count"]
    )


def test_infer_end_to_end_interface(client, kserve_repo):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (3, H, W, 3), dtype=np.uint8)
    gain = np.array([[1.0], [0.5], [2.0]], np.float32)
    a = httpclient.InferInput("frame", list(frames.shape), "UINT8")
    a.set_data_from_numpy(frames)
    b = httpclient.InferInput("gain", [3, 1], "FP32")
    b.set_data_from_numpy(gain, binary_data=False)  # one JSON input beside a binary one
    res = client.infer("frame_cam", [a, b])  # no outputs listed: all, as binary (tritonclient's default)
    mask, mean = res.as_numpy("mask"), res.as_numpy("mean")
    assert mask.dtype == np.uint8 and mask.shape == (3, H, W)
    np.testing.assert_array_equal(mask, frames.max(axis=3))  # independent of onnxruntime
    np.testing.assert_allclose(mean, gain * frames.reshape(3, -1).mean(axis=1, keepdims=True), rtol=1e-5)
    # only one output, as JSON
    res = client.infer(
        "frame_cam", [a, b], outputs=[httpclient.InferRequestedOutput("mean", binary_data=False)]
    )
    assert res.as_numpy("mask") is None and res.get_response()["outputs"][0]["datatype"] == "FP32"
    np.testing.assert_allclose(res.as_numpy("mean"), mean)
    # request compression
    res = client.infer("frame_cam", [a, b], request_compression_algorithm="gzip")
    np.testing.assert_array_equal(res.as_numpy("mask"), mask)


def test_datatype_shape_and_limits_are_clear_client_errors(client, url):
    x = np.zeros((1, 3, 512), np.int8)
    inp = httpclient.InferInput("input", [1, 3, 512], "INT8")
    inp.set_data_from_numpy(x)
    with pytest.raises(
        InferenceServerException,
        match="inputs\\[0\\] \\('input'\\).datatype: model 'seg' expects FP32, got INT8",
    ):
        client.infer("seg", [inp])
    f = httpclient.InferInput("frame", [1, H, W, 3], "FP32")  # an FP32 frame for a UINT8 input
    f.set_data_from_numpy(np.zeros((1, H, W, 3), np.float32))
    g = httpclient.InferInput("gain", [1, 1], "FP32")
    g.set_data_from_numpy(np.ones((1, 1), np.float32))
    with pytest.raises(InferenceServerException, match="expects UINT8, got FP32"):
        client.infer("frame_cam", [f, g])
    big = httpclient.InferInput("input", [5, 3, 512], "FP32")  # max_infer_batch is 4
    big.set_data_from_numpy(np.zeros((5, 3, 512), np.float32))
    with pytest.raises(InferenceServerException, match="max_infer_batch"):
        client.infer("seg", [big])
    four = httpclient.InferInput("input", [4, 3, 512], "FP32")  # 6144 in, 20480 out: fine
    four.set_data_from_numpy(np.zeros((4, 3, 512), np.float32))
    assert client.infer("seg", [four]).as_numpy("output").shape == (4, 10, 512)
    base = f"http://{url}/v2/models/seg/infer"
    body = {"inputs": [{"name": "input", "shape": [1, 3, 512], "datatype": "INT8", "data": [0] * 1536}]}
    r = httpx.post(base, json=body)
    assert r.status_code == 400 and "expects FP32" in r.json()["error"]
    body["inputs"][0]["datatype"] = "FP32"
    body["inputs"][0]["shape"] = [1, 3, 500]
    r = httpx.post(base, json=body)
    assert r.status_code == 400 and "expected [B, 3, 512], got [1, 3, 500]" in r.json()["error"]


def test_tensor_element_cap_and_binary_layout_errors(url):
    base = f"http://{url}/v2/models/frame_cam/infer"
    n = 4 * H * W * 3
    head = json.dumps({"inputs": [
        {"name": "frame", "shape": [4, H, W, 3], "datatype": "UINT8", "parameters": {"binary_data_size": n}},
        {"name": "gain", "shape": [4, 1], "datatype": "FP32", "data": [1, 1, 1, 1]},
    ]}).encode()  # fmt: skip
    ok = httpx.post(
        base, content=head + bytes(n), headers={"Inference-Header-Content-Length": str(len(head))}
    )
    assert ok.status_code == 200, ok.text
    r = httpx.post(
        base, content=head + bytes(n - 1), headers={"Inference-Header-Content-Length": str(len(head))}
    )
    assert r.status_code == 400 and "binary data ends after" in r.json()["error"]
    r = httpx.post(
        base, content=head + bytes(n + 3), headers={"Inference-Header-Content-Length": str(len(head))}
    )
    assert r.status_code == 400 and "3 bytes after the binary inputs" in r.json()["error"]
    r = httpx.post(base, content=head + bytes(n), headers={"Inference-Header-Content-Length": "x"})
    assert r.status_code == 400 and "Inference-Header-Content-Length" in r.json()["error"]
    r = httpx.post(base, content=gzip.compress(b"{}")[:-4], headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["error"]


def test_element_cap(kserve_repo):
    cfg = ServeConfig(model_repository=kserve_repo, warmup=False, max_tensor_elements=10_000)
    with running_service(cfg) as u:
        c = httpclient.InferenceServerClient(u)
        inp = httpclient.InferInput("input", [1, 3, 512], "FP32")  # 1536 in, but 5120 out: under 10k
        inp.set_data_from_numpy(np.zeros((1, 3, 512), np.float32))
        assert c.infer("seg", [inp]).as_numpy("output").shape == (1, 10, 512)
        inp = httpclient.InferInput("input", [2, 3, 512], "FP32")  # 3072 in, 10240 out: over
        inp.set_data_from_numpy(np.zeros((2, 3, 512), np.float32))
        with pytest.raises(
            InferenceServerException,
            match=r"\[413\] outputs: 10240 tensor elements for batch 2, above the limit of 10000",
        ):
            c.infer("seg", [inp])
        c.close()


def test_v1_refuses_a_model_without_manifest(url):
    r = httpx.post(
        f"http://{url}/v1/segment",
        files={"image": ("f.png", b"x", "image/png")},
        data={"model": "frame_cam", "camera": "x"},
    )
    assert r.status_code == 422 and "/v2/models/frame_cam/infer" in r.json()["error"]
    assert [m["name"] for m in httpx.get(f"http://{url}/v1/models").json()["models"]] == ["seg"]


def test_execution_providers_fall_back_with_one_warning(kserve_repo, caplog):
    """Asking for CUDA (and TensorRT) on a machine without them: one warning line, the models run on the CPU."""
    from fastapi.testclient import TestClient

    from heal_swin.serve.app import create_app
    from heal_swin.serve.runtime import available_providers

    missing = [
        p
        for p in ("TensorRT", "CUDA")
        if {"TensorRT": "TensorrtExecutionProvider", "CUDA": "CUDAExecutionProvider"}[p]
        not in available_providers()
    ]
    assert missing, "this test needs a machine without CUDA/TensorRT providers"
    cfg = ServeConfig(model_repository=kserve_repo, warmup=False, providers=["TensorRT", "CUDA", "CPU"])
    with caplog.at_level(logging.WARNING, logger="heal_swin.serve"):
        app = create_app(cfg)
    lines = [
        r.getMessage() for r in caplog.records if r.name == "heal_swin.serve" and r.levelno == logging.WARNING
    ]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert all(p in lines[0] for p in missing) and "run on CPUExecutionProvider" in lines[0]
    with TestClient(app) as c:
        for path in ("/v2/models/seg", "/v2/models/seg/versions/1", "/v2/models/frame_cam"):
            params = c.get(path).json()["parameters"]
            assert params["execution_provider"] == "CPUExecutionProvider" and params[
                "execution_providers"
            ] == ["CPUExecutionProvider"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="heal_swin.serve"):
        create_app(ServeConfig(model_repository=kserve_repo, warmup=False))  # CPU only: nothing to warn about
    assert not [r for r in caplog.records if r.name == "heal_swin.serve"]


def test_end_to_end_export_served_over_v2_matches_v1(tmp_path, frame):
    """``heal-swin export --camera``'s folder (uint8 frame in, uint8 mask out) served as it is: the mask that
    tritonclient gets equals /v1/segment's for the same frame and the sphere model it was built around."""

    from fastapi.testclient import TestClient

    from heal_swin.export.end_to_end import export_end_to_end
    from heal_swin.serve.app import create_app

    write_model(tmp_path, "seg16", "segmentation", "sphere", nside=16)
    image, camera, png, calib = frame
    export_end_to_end(tmp_path / "seg16", camera, "front")
    e2e = tmp_path / "seg16_front"
    assert (e2e / "model.json").is_file() and (e2e / "1" / "model.onnx").is_file()
    cfg = ServeConfig(model_repository=tmp_path, warmup=False)
    with TestClient(create_app(cfg)) as tc:
        r = tc.post(
            "/v1/segment",
            files={
                "image": ("f.png", png, "image/png"),
                "calibration": ("c.json", calib, "application/json"),
            },
        )
        assert r.status_code == 200
        want = cv2_decode(r.content)
        assert (
            tc.get("/v1/models").json()["defaults"]["segmentation"] == "seg16"
        )  # never the end-to-end model
    with running_service(cfg) as u:
        c = httpclient.InferenceServerClient(u)
        meta = c.get_model_metadata("seg16_front")
        h, w = image.shape[:2]
        assert meta["inputs"][0]["datatype"] == "UINT8" and meta["inputs"][0]["shape"] == [-1, h, w, 3]
        inp = httpclient.InferInput(meta["inputs"][0]["name"], [1, h, w, 3], "UINT8")
        inp.set_data_from_numpy(image[None])
        res = c.infer("seg16_front", [inp])
        mask = res.as_numpy(meta["outputs"][0]["name"])
        c.close()
    assert mask.dtype == np.uint8 and mask.shape == (1, h, w)
    assert (mask[0] == want).mean() >= 0.999, (mask[0] != want).sum()


def cv2_decode(data: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
