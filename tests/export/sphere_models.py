"""Small hand-built sphere-model folders (no torch): real ONNX graphs with the exported models' interface.

``(B, 3, N) -> (B, C, N)``: a 1x1 convolution of each pixel plus a term from the sample's mean over
all pixels (so batching mistakes show) plus a term from the pixel's NESTED neighbour (so a
permuted grid shows). Written in the layout ``heal-swin export`` writes: ``REPO/<name>/model.json``,
``config.pbtxt`` and ``1/model.onnx``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heal_swin.data.classes import WOODSCAPE_CLASSES
from heal_swin.inference.manifest import Manifest, save_manifest, sha256_file
from heal_swin.inference.triton import CONFIG_NAME, model_config_text

WOODSCAPE_NAMES = list(WOODSCAPE_CLASSES.names)


def sphere_onnx(path: Path, npix: int, out_chans: int, seed: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (out_chans, 3, 1)).astype(np.float32)
    w2 = rng.normal(0, 1, (out_chans, 3, 1)).astype(np.float32)
    w3 = rng.normal(0, 0.5, (out_chans, 3, 1)).astype(np.float32)
    b = rng.normal(0, 0.1, (out_chans,)).astype(np.float32)
    neighbour = (np.arange(npix) ^ 1).astype(np.int64)  # the sibling in the NESTED quad
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["local"]),
        helper.make_node("ReduceMean", ["input", "axes"], ["avg"], keepdims=1),
        helper.make_node("Conv", ["avg", "w2"], ["glob"]),
        helper.make_node("Gather", ["input", "neighbour"], ["nb"], axis=2),
        helper.make_node("Conv", ["nb", "w3"], ["side"]),
        helper.make_node("Add", ["local", "glob"], ["lg"]),
        helper.make_node("Add", ["lg", "side"], ["output"]),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (w2, "w2"), (w3, "w3"), (neighbour, "neighbour"),
                                                        (np.array([2], np.int64), "axes"))]  # fmt: skip
    graph = helper.make_graph(
        nodes, "tiny_sphere",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, npix])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", out_chans, npix])],
        inits,
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="heal-swin tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_sphere_folder(
    repo: Path, name: str, task: str = "segmentation", nside: int = 8, seed: int = 0, **manifest
) -> Manifest:
    """``REPO/<name>/`` holding a hand-built sphere model (10 classes, or 1 log-depth channel)."""
    npix = 8 * nside * nside
    out = 10 if task == "segmentation" else 1
    path = sphere_onnx(repo / name / "1" / "model.onnx", npix, out, seed)
    rng = np.random.default_rng(seed + 100)
    m = Manifest(**{
        "name": name, "model_name": "hand_built", "task": task, "input_kind": "sphere", "in_chans": 3, "out_chans": out,
        "input_shape": [-1, 3, npix], "output_shape": [-1, out, npix], "onnx_sha256": sha256_file(path), "opset": 18,
        "nside": nside, "base_pixels": list(range(8)),
        "class_names": WOODSCAPE_NAMES if task == "segmentation" else [],
        "class_colours": rng.integers(0, 256, (out, 3)).tolist() if task == "segmentation" else [],
        "depth": {"log_mean": 2.0, "log_std": 0.5} if task == "depth" else None,
        "normalisation": {"colour_order": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        **manifest,
    })  # fmt: skip
    save_manifest(repo / name, m)
    (repo / name / CONFIG_NAME).write_text(model_config_text(m))
    return m
