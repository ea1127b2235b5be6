"""Fixtures for the service tests: a model repository of small hand-built ONNX models (no torch, no export).

The models are real ONNX graphs with the exported models' interface: ``(B, 3, N) -> (B, K, N)`` on a
HEALPix grid (sphere) or ``(B, 3, H, W) -> (B, K, H, W)`` (flat). Each output depends on the sample's
own pixels (1x1 convolution) *and* on its mean over all pixels, so a batcher that mixed samples up
would be caught. Export of the real models is tested in tests/export.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from heal_swin.data.classes import WOODSCAPE_CLASSES
from heal_swin.export.manifest import Manifest, save_manifest, sha256_file
from heal_swin.geometry import FisheyeCamera
from heal_swin.inference.triton import CONFIG_NAME, model_config_text
from heal_swin.serve.demo import demo_paths
from heal_swin.serve.readiness import free_port, serve_process, wait_until_ready  # noqa: F401  (free_port: tests import it from here)

ROOT = Path(__file__).resolve().parents[2]
IMG_SIZE = (160, 121)  # (W, H) of the test frames: the demo frame scaled down
WOODSCAPE_NAMES = list(WOODSCAPE_CLASSES.names)


def make_onnx(path: Path, spatial: tuple[int, ...], out_chans: int, seed: int = 0) -> Path:
    """A small ONNX model: y = conv1x1(x) + W2 @ mean_pixels(x), dynamic batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nd = len(spatial)
    w = rng.normal(0, 1, (out_chans, 3) + (1,) * nd).astype(np.float32)
    b = rng.normal(0, 0.1, (out_chans,)).astype(np.float32)
    w2 = rng.normal(0, 1, (out_chans, 3) + (1,) * nd).astype(np.float32)
    axes = np.arange(2, 2 + nd, dtype=np.int64)
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["local"]),
        helper.make_node("ReduceMean", ["input", "axes"], ["avg"], keepdims=1),
        helper.make_node("Conv", ["avg", "w2"], ["glob"]),
        helper.make_node("Add", ["local", "glob"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, *spatial])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", out_chans, *spatial])],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(b, "b"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(axes, "axes"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="heal-swin tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_model(
    repo: Path,
    name: str,
    task: str,
    kind: str,
    *,
    nside: int = 16,
    img_size=(64, 64),
    classes: int = 10,
    seed: int = 0,
) -> Manifest:
    folder = repo / name
    if kind == "sphere":
        base = list(range(8))
        spatial: tuple[int, ...] = (len(base) * nside * nside,)
    else:
        spatial = tuple(img_size)
    out = classes if task == "segmentation" else 1
    path = make_onnx(folder / "1" / "model.onnx", spatial, out, seed)
    rng = np.random.default_rng(seed + 100)
    m = Manifest(
        name=name,
        model_name="hand_built",
        task=task,
        input_kind=kind,
        in_chans=3,
        out_chans=out,
        input_shape=[-1, 3, *spatial],
        output_shape=[-1, out, *spatial],
        onnx_sha256=sha256_file(path),
        opset=18,
        nside=nside if kind == "sphere" else None,
        base_pixels=base if kind == "sphere" else None,
        img_size=list(img_size) if kind == "flat" else None,
        class_names=(WOODSCAPE_NAMES[:classes] if classes <= 10 else [f"c{i}" for i in range(classes)])
        if task == "segmentation"
        else [],
        class_colours=rng.integers(0, 256, (out, 3)).tolist() if task == "segmentation" else [],
        depth={"log_mean": 2.0, "log_std": 0.5} if task == "depth" else None,
        normalisation={
            "colour_order": "RGB",
            "scale": 1 / 255,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
    )
    save_manifest(folder, m)
    (folder / CONFIG_NAME).write_text(model_config_text(m))
    return m


@pytest.fixture(scope="session")
def frame() -> tuple[np.ndarray, FisheyeCamera, bytes, bytes]:
    """(image BGR 160x121, camera, PNG bytes, calibration JSON bytes): the demo frame scaled down."""
    img_path, cal_path = demo_paths()
    full = cv2.imread(str(img_path))
    image = cv2.resize(full, IMG_SIZE, interpolation=cv2.INTER_AREA)
    camera = FisheyeCamera.from_json(cal_path).scaled(*IMG_SIZE)
    _ok, data = cv2.imencode(".png", image)
    calib = camera.to_dict()
    calib["name"] = "test_FV"
    return image, camera, data.tobytes(), json.dumps(calib).encode()


@pytest.fixture(scope="session")
def repo(tmp_path_factory, frame) -> Path:
    """seg16 / depth16 (sphere, nside 16), seg8 (sphere, nside 8), flatseg / flatdepth (64x64), camera 'front'."""
    root = tmp_path_factory.mktemp("repo")
    write_model(root, "seg16", "segmentation", "sphere", nside=16)
    write_model(root, "depth16", "depth", "sphere", nside=16, seed=1)
    write_model(root, "seg8", "segmentation", "sphere", nside=8, seed=2)
    write_model(root, "flatseg", "segmentation", "flat", img_size=(64, 64), seed=3)
    write_model(root, "flatdepth", "depth", "flat", img_size=(48, 64), seed=4)
    (root / "cameras").mkdir()
    (root / "cameras" / "front.json").write_bytes(frame[3])
    (root / "cameras" / "demo.json").write_bytes(demo_paths()[1].read_bytes())
    return root


@pytest.fixture(scope="session")
def server(repo):
    """A real ``heal-swin serve`` process on 127.0.0.1 (a free port); yields its base URL."""
    with serve_process(repo, "--batching", "--max-wait-ms", "4", cwd=ROOT) as (
        url,
        _,
    ):  # the micro-batcher under load
        yield url


def make_frame_model(path: Path, height: int, width: int) -> Path:
    """An ONNX model with the end-to-end models' interface and a second input/output of other datatypes.

    inputs:  ``frame`` uint8 (B, H, W, 3), ``gain`` float32 (B, 1)
    outputs: ``mask`` uint8 (B, H, W) = max over the colour channels, ``mean`` float32 (B, 1) = gain * mean(frame)
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMax", ["frame", "ch"], ["mask"], keepdims=0),
        helper.make_node("Cast", ["frame"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f", "all"], ["m"], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "one"], ["m1"]),
        helper.make_node("Mul", ["m1", "gain"], ["mean"]),
    ]
    graph = helper.make_graph(
        nodes,
        "frame_model",
        [helper.make_tensor_value_info("frame", TensorProto.UINT8, ["batch", height, width, 3]),
         helper.make_tensor_value_info("gain", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("mask", TensorProto.UINT8, ["batch", height, width]),
         helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(np.array([3], np.int64), "ch"), numpy_helper.from_array(np.array([1, 2, 3], np.int64), "all"),
         numpy_helper.from_array(np.array([1], np.int64), "one")],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="heal-swin tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_frame_model(repo: Path, name: str, height: int = 12, width: int = 16) -> Path:
    """REPO/<name>/config.pbtxt + 1/model.onnx, no model.json: a model the service knows only from its ONNX graph."""
    folder = repo / name
    make_frame_model(folder / "1" / "model.onnx", height, width)
    (folder / CONFIG_NAME).write_text(f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n')
    return folder
