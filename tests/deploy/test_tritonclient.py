"""tritonclient (HTTP and gRPC) against a real tritonserver serving heal-swin's end-to-end models.

The masks (and depth) Triton returns for raw fisheye frames equal what our own service returns for
the same frames (``POST /v1/segment`` / ``/v1/depth``, in-process): same camera, same sphere model,
the projection once in Python (service) and once inside the ONNX graph (Triton, Python backend).

The server fixture is parametrised by the server kind: the same client checks run against tritonserver
(HTTP and gRPC) and against ``heal-swin serve`` (HTTP; it serves the end-to-end models over KServe v2).
"""

from __future__ import annotations

import io
import queue

import cv2
import numpy as np
import pytest

from tests.export.test_end_to_end import SMALL, frames

W, H = SMALL.image_size
CASES = [
    ("tritonserver", "http"),
    ("tritonserver", "grpc"),
    ("heal-swin serve", "http"),
]  # our service has no gRPC


@pytest.fixture(scope="module")
def server(request):
    """(kind, urls by protocol) of a running server."""
    kind = request.param
    if kind == "tritonserver":
        ts = request.getfixturevalue("tritonserver")
        return {"kind": kind, "http": f"127.0.0.1:{ts.http_port}", "grpc": f"127.0.0.1:{ts.grpc_port}"}
    if kind == "heal-swin serve":
        return {"kind": kind, "http": request.getfixturevalue("heal_swin_serve")}
    raise ValueError(kind)


def client_module(protocol: str):
    if protocol == "http":
        import tritonclient.http as mod
    else:
        import tritonclient.grpc as mod
    return mod


@pytest.fixture
def client(server, protocol):
    mod = client_module(protocol)
    c = mod.InferenceServerClient(server[protocol])
    yield mod, c
    c.close()


def infer(mod, c, model: str, batch: np.ndarray, output: str) -> np.ndarray:
    inp = mod.InferInput("image", list(batch.shape), "UINT8")
    inp.set_data_from_numpy(batch)
    return c.infer(model, [inp], outputs=[mod.InferRequestedOutput(output)]).as_numpy(output)


@pytest.fixture(scope="module")
def test_frames() -> np.ndarray:
    return np.concatenate([frames(SMALL, seed=11), frames(SMALL, seed=12)[:1]])  # 2 scenes, noise, blocks


@pytest.fixture(scope="module")
def service_outputs(service_client, test_frames):
    """Our service's mask and depth (float32 metres) for every frame, camera 'small'."""
    masks, depths = [], []
    for img in test_frames:
        body = cv2.imencode(".png", img)[1].tobytes()
        r = service_client.post(
            "/v1/segment",
            files={"image": ("f.png", body, "image/png")},
            data={"camera": "small", "model": "seg"},
        )
        assert r.status_code == 200, r.text
        masks.append(cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_UNCHANGED))
        r = service_client.post("/v1/depth", files={"image": ("f.png", body, "image/png")},
                                data={"camera": "small", "model": "depth", "format": "npy"})  # fmt: skip
        assert r.status_code == 200, r.text
        depths.append(np.load(io.BytesIO(r.content), allow_pickle=False))
    return np.stack(masks), np.stack(depths)


@pytest.mark.parametrize(("server", "protocol"), CASES, indirect=["server"])
def test_metadata(client):
    _, c = client
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("seg_small")
    meta = c.get_model_metadata("seg_small")
    if not isinstance(meta, dict):  # gRPC: a protobuf message
        meta = {"inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.inputs],
                "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.outputs]}  # fmt: skip
    assert [(t["name"], t["datatype"], [int(s) for s in t["shape"]]) for t in meta["inputs"]] == [
        ("image", "UINT8", [-1, H, W, 3])
    ]
    assert [(t["name"], t["datatype"], [int(s) for s in t["shape"]]) for t in meta["outputs"]] == [
        ("mask", "UINT8", [-1, H, W])
    ]


@pytest.mark.parametrize(("server", "protocol"), CASES, indirect=["server"])
def test_masks_equal_the_service(client, test_frames, service_outputs):
    mod, c = client
    want = service_outputs[0]
    batched = infer(mod, c, "seg_small", test_frames, "mask")  # one request, batch of 4
    assert batched.dtype == np.uint8 and batched.shape == (len(test_frames), H, W)
    np.testing.assert_array_equal(batched, want)
    for i in (0, 2):  # one frame per request
        np.testing.assert_array_equal(infer(mod, c, "seg_small", test_frames[i : i + 1], "mask")[0], want[i])
    assert np.any(want == 255) and len(np.unique(want[want != 255])) > 1  # a footprint and a real prediction


@pytest.mark.parametrize(("server", "protocol"), CASES, indirect=["server"])
def test_depth_equals_the_service(client, test_frames, service_outputs):
    mod, c = client
    got = infer(mod, c, "depth_small", test_frames, "depth")
    want = service_outputs[1]
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(np.isfinite(got), np.isfinite(want)) and np.isfinite(want).mean() > 0.5
    ok = np.isfinite(want)
    assert np.max(np.abs(got[ok] - want[ok]) / want[ok]) <= 1e-4


def model_counts(c, model: str) -> tuple[int, int]:
    """(inferences, executions) of a model so far: executions < inferences when requests were batched together."""
    stats = (
        c.get_inference_statistics(model, as_json=True)
        if "grpc" in type(c).__module__
        else c.get_inference_statistics(model)
    )
    s = stats["model_stats"][0]
    return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))


@pytest.mark.parametrize(("server", "protocol"), CASES, indirect=["server"])
def test_concurrent_requests_are_batched_correctly(server, protocol, test_frames, service_outputs):
    """8 requests in flight: dynamic batching hands several to one execute(); each gets its own frame's mask.

    ``seg_small_batching`` is ``seg_small`` with a 0.5 s batching window (see conftest).
    """
    mod = client_module(protocol)
    c = mod.InferenceServerClient(server[protocol], **({"concurrency": 8} if protocol == "http" else {}))
    model = "seg_small_batching"
    before = model_counts(c, model) if server["kind"] == "tritonserver" else None
    order = [i % len(test_frames) for i in range(8)]
    pending = []
    for i in order:
        inp = mod.InferInput("image", [1, H, W, 3], "UINT8")
        inp.set_data_from_numpy(test_frames[i][None])
        if protocol == "http":
            pending.append(c.async_infer(model, [inp]))
        else:
            box: queue.Queue = queue.Queue()
            c.async_infer(model, [inp], callback=lambda result, error, box=box: box.put((result, error)))
            pending.append(box)
    for i, p in zip(order, pending):
        if protocol == "http":
            result = p.get_result()
        else:
            result, error = p.get(timeout=60)
            assert error is None, error
        np.testing.assert_array_equal(result.as_numpy("mask")[0], service_outputs[0][i])
    if server["kind"] == "tritonserver":  # Triton's statistics: some requests shared an execution of model.py
        after = model_counts(c, model)
        assert after[0] - before[0] == 8 and after[1] - before[1] < 8, (before, after)
    c.close()


@pytest.mark.parametrize(("server", "protocol"), CASES, indirect=["server"])
def test_bad_frames_are_client_errors(client):
    """A frame of the wrong size or type is refused with a message naming the input; the server keeps serving."""
    mod, c = client
    from tritonclient.utils import InferenceServerException

    for shape, dtype in (((1, H - 1, W, 3), "UINT8"), ((1, H, W, 3), "FP32")):
        inp = mod.InferInput("image", list(shape), dtype)
        inp.set_data_from_numpy(np.zeros(shape, np.uint8 if dtype == "UINT8" else np.float32))
        with pytest.raises(InferenceServerException, match="image|shape|data type|datatype"):
            c.infer("seg_small", [inp])
    assert c.is_server_ready() and c.is_model_ready("seg_small")
