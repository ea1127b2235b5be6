"""int8 quantisation and the fp32-vs-int8 comparison on a WoodScape-layout validation folder (no torch export)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from heal_swin.errors import InputError
from heal_swin.export.manifest import load_manifest
from heal_swin.export.quantize import compare_on_frames, quantize_int8, validation_frames_from_folder
from heal_swin.serve.demo import render_frames
from tests.serve.conftest import write_model


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory):
    """Two rendered synthetic frames in WoodScape's layout (nested rgb_images/rgb_images like the release)."""
    root = tmp_path_factory.mktemp("val")
    rgb = root / "rgb_images" / "rgb_images"
    lab = root / "semantic_annotations" / "gtLabels"
    cal = root / "calibration"
    dep = root / "depth_maps" / "raw_data"
    for d in (rgb, lab, cal, dep):
        d.mkdir(parents=True)
    stems = []
    for i, (cam, image, label, depth) in enumerate(render_frames(2, (192, 145), seed=5)):
        stem = f"{i:05d}_FV"
        stems.append(stem)
        cv2.imwrite(str(rgb / f"{stem}.png"), image)
        cv2.imwrite(str(lab / f"{stem}.png"), label)
        np.save(dep / f"{stem}.npy", np.where(np.isfinite(depth), depth, 1000).astype(np.float32))
        (cal / f"{stem}.json").write_text(json.dumps(cam.to_dict()))
    (root / "val.txt").write_text("\n".join(stems) + "\n")
    return root


def test_folder_frames(val_folder):
    frames, source = validation_frames_from_folder(val_folder, 8)
    assert len(frames) == 2 and "2 frames" in source
    cam, image, label, depth = frames[0]
    assert image.shape == (145, 192, 3) and label.shape == (145, 192) and cam.image_size == (192, 145)
    assert np.isinf(depth).any() and not (depth == 1000).any()  # SynWoodScape's sky value becomes inf


def test_folder_errors(tmp_path, val_folder):
    with pytest.raises(InputError, match="not a directory"):
        validation_frames_from_folder(tmp_path / "nope", 2)
    with pytest.raises(InputError, match="rgb_images"):
        validation_frames_from_folder(tmp_path, 2)


@pytest.mark.parametrize("task", ["segmentation", "depth"])
def test_int8_comparison(tmp_path, val_folder, task):
    write_model(tmp_path, "m", task, "sphere", nside=8)
    m = load_manifest(tmp_path / "m")
    q = quantize_int8(tmp_path / "m" / "1" / "model.onnx", tmp_path / "m" / "2" / "model.onnx")
    frames, source = validation_frames_from_folder(val_folder, 2)
    v = compare_on_frames(m, tmp_path / "m" / "1" / "model.onnx", q, frames, source)
    assert v["frames"] == 2 and v["source"] == source
    if task == "segmentation":
        assert (
            0 <= v["fp32"]["miou"] <= 1
            and 0 <= v["fp32"]["pixel_accuracy"] <= 1
            and 0.5 <= v["agreement"] <= 1
        )
        assert v["delta_miou"] == pytest.approx(v["int8"]["miou"] - v["fp32"]["miou"])
    else:
        assert v["fp32"]["abs_rel"] > 0 and v["fp32"]["rmse_log"] > 0
        assert 0 <= v["mean_rel_diff_int8_vs_fp32"] < 0.5
    json.dumps(v)  # goes into model.json


def test_int8_weights_keep_a_narrow_output_channel(tmp_path):
    """Weights are quantised per output channel: a channel whose weights are 1000x smaller than the
    others' survives int8 (one per-tensor scale would round all of its weights to zero)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    k, n = 64, 16
    w = rng.standard_normal((k, n)).astype(np.float32)
    w[:, 0] *= 1e-3
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "narrow_channel",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256, n])],
        [numpy_helper.from_array(w, "w")],
    )
    src = tmp_path / "fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), src)
    q = quantize_int8(src, tmp_path / "int8.onnx")
    assert any(n.op_type == "MatMulInteger" for n in onnx.load(q).graph.node)
    x = rng.standard_normal((1, 256, k)).astype(np.float32)
    ref = x @ w
    got = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    rel = np.abs(got - ref).mean((0, 1)) / np.abs(ref).mean((0, 1))
    assert rel[0] < 0.05 and rel.max() < 0.05, rel
