"""``heal-swin export`` for each model family (HEAL-SWIN, flat Swin-UNet, S2CNN): files, manifest, checker,
parity of onnxruntime vs torch, int8 with its accuracy change, and the exported folder served end to end.

Each test exports its own model (one export per test, so xdist never repeats an export on two workers)."""

from __future__ import annotations

import contextlib

import numpy as np
import onnx
import pytest
import torch

from heal_swin.cli import main
from heal_swin.export.manifest import load_manifest, sha256_file
from heal_swin.inference.triton import parse_pbtxt
from heal_swin.models.checkpoint import load_model, save_model
from heal_swin.models.registry import create_model
from heal_swin.serve.readiness import wait_until_ready

pytestmark = pytest.mark.slow

TOL = {"rtol": 1e-3, "atol": 1e-4}


def export(tmp, name: str, meta: dict, args: list[str] = (), **kwargs) -> tuple[int, object]:
    torch.manual_seed(0)
    ckpt = tmp / f"{name}.safetensors"
    save_model(ckpt, create_model(kwargs.pop("registry"), **kwargs), meta)
    out = tmp / f"repo_{name}" / name
    return main(["export", "--checkpoint", str(ckpt), "--out", str(out), *args]), out


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


def check_folder(out, task: str, kind: str):
    """The Triton layout: config.pbtxt + model.json in OUT, the fp32 model in OUT/1/ (int8 in OUT/2/)."""
    m = load_manifest(out)
    assert m.task == task and m.input_kind == kind and m.name == out.name
    fp32 = out / "1" / "model.onnx"
    assert (
        fp32.is_file() and not (out / "1" / "model.onnx.data").exists() and not (out / "model.onnx").exists()
    )
    assert sha256_file(fp32) == m.onnx_sha256
    onnx.checker.check_model(str(fp32), full_check=True)
    graph = onnx.load(str(fp32)).graph
    cfg = parse_pbtxt((out / "config.pbtxt").read_text())
    assert (
        cfg["name"] == [m.name] and cfg["platform"] == ["onnxruntime_onnx"] and cfg["max_batch_size"] == [8]
    )
    assert cfg["input"][0]["name"] == [graph.input[0].name] and cfg["input"][0]["dims"] == m.input_shape[1:]
    assert (
        cfg["output"][0]["name"] == [graph.output[0].name] and cfg["output"][0]["dims"] == m.output_shape[1:]
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(["config.pbtxt", "model.json", *m.model_versions])
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert m.opset >= 17
    for which in ("random", "real"):
        p = m.parity[which]
        assert p["max_abs"] < 1e-3 and p["count"] >= 1, p
    assert m.parity["rtol"] == 1e-3 and m.parity["atol"] == 1e-4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    return m


def test_heal_swin_export(tmp):
    rc, heal_seg = export(
        tmp,
        "heal_seg",
        {"task": "segmentation", "dataset": "synthetic"},
        ["--int8", "--val-samples", "2"],
        registry="heal_swin_tiny",
        nside=8,
    )
    assert rc == 0
    m = check_folder(heal_seg, "segmentation", "sphere")
    assert m.model_name == "heal_swin_tiny" and m.nside == 8 and m.base_pixels == list(range(8))
    assert m.input_shape == [-1, 3, 512] and m.output_shape == [-1, 10, 512]
    assert m.class_names[1] == "road" and m.class_colours[1] == [
        255,
        0,
        255,
    ]  # WoodScape defaults for 10 classes
    assert m.dataset == "synthetic" and m.versions["torch"] == torch.__version__
    # int8: written, checked, accuracy change measured on validation frames
    q = m.int8
    assert m.model_versions == {"1": "fp32", "2": "int8"} and q["version"] == 2
    assert q["onnx_file"] == "model.onnx" and sha256_file(heal_seg / "2" / q["onnx_file"]) == q["onnx_sha256"]
    v = q["validation"]
    assert v["frames"] == 2 and "synthetic" in v["source"]
    assert (
        0 <= v["agreement"] <= 1
        and v["fp32"]["miou"] is not None
        and v["delta_miou"] == pytest.approx(v["int8"]["miou"] - v["fp32"]["miou"])
    )
    assert (heal_seg / "2" / "model.onnx").stat().st_size < (heal_seg / "1" / "model.onnx").stat().st_size
    served_heal_swin(tmp, heal_seg)


def test_flat_export(tmp):
    rc, flat_seg = export(
        tmp,
        "flat_seg",
        {"task": "segmentation", "class_names": list("abcd"), "class_colours": [[0, 0, 0]] * 4},
        registry="swin_unet_tiny",
        num_classes=4,
    )
    assert rc == 0
    m = check_folder(flat_seg, "segmentation", "flat")
    assert m.img_size == [64, 64] and m.nside is None and m.class_names == list("abcd")
    with serving(flat_seg.parent) as c:
        r = c.post("/v1/segment", files=demo_files(), data={"model": "flat_seg"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"


def test_s2cnn_depth_export(tmp):
    rc, s2_depth = export(
        tmp,
        "s2_depth",
        {"task": "depth", "depth_log_mean": 2.5, "depth_log_std": 0.7},
        registry="s2cnn_depth_tiny",
        nside=8,
    )
    assert rc == 0
    m = check_folder(s2_depth, "depth", "sphere")
    assert m.depth == {"log_mean": 2.5, "log_std": 0.7} and m.out_chans == 1 and m.int8 is None
    assert m.model_versions == {"1": "fp32"}
    x, _ = demo_input(m)
    model, _ = load_model(tmp / "s2_depth.safetensors")
    with torch.no_grad():
        z = model(torch.from_numpy(x)).numpy()[0, 0]
    with serving(s2_depth.parent) as c:
        r = c.post("/v1/depth", files=demo_files(), data={"format": "json"})
        assert r.status_code == 200, r.text
        got = np.asarray(r.json()["values"], np.float64)
        np.testing.assert_allclose(got, np.exp(z * 0.7 + 2.5), rtol=2e-3)


def demo_files() -> dict:
    from heal_swin.serve.demo import demo_paths

    img_path, cal_path = demo_paths()
    return {
        "image": ("f.jpg", img_path.read_bytes(), "image/jpeg"),
        "calibration": ("c.json", cal_path.read_bytes(), "application/json"),
    }


def demo_input(m):
    """The model input of the bundled demo frame (as the service computes it) and its camera."""
    import cv2

    from heal_swin.geometry import FisheyeCamera
    from heal_swin.serve import pipeline as pl
    from heal_swin.serve.demo import demo_paths

    img_path, cal_path = demo_paths()
    camera = FisheyeCamera.from_json(cal_path)
    return pl.model_input(cv2.imread(str(img_path)), m, camera)[None], camera


@contextlib.contextmanager
def serving(repo, precision: str = "latest"):
    from fastapi.testclient import TestClient

    from heal_swin.serve.app import create_app
    from heal_swin.serve.config import ServeConfig

    with TestClient(create_app(ServeConfig(model_repository=repo, precision=precision))) as c:
        wait_until_ready(c, 60)
        yield c


def served_heal_swin(tmp, heal_seg) -> None:
    """The exported folder as a repository: the service's answers equal torch's on the same input."""
    m = load_manifest(heal_seg)
    x, _ = demo_input(m)
    model, _ = load_model(tmp / "heal_seg.safetensors")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()[0]
    for precision in ("fp32", "int8", "latest"):
        with serving(heal_seg.parent, precision) as c:
            r = c.post("/v1/segment", files=demo_files(), data={"format": "json"})
            assert r.status_code == 200, r.text
            agree = float((np.asarray(r.json()["values"]) == want.argmax(0)).mean())
            assert agree > (0.99 if precision == "fp32" else 0.7), (precision, agree)
            assert c.get("/v1/models").json()["models"][0]["precision"] == (
                "int8" if precision == "latest" else precision
            )
            if precision == "fp32":
                body = {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": list(x.shape),
                            "datatype": "FP32",
                            "data": x.ravel().tolist(),
                        }
                    ]
                }
                r = c.post("/v2/models/heal_seg/infer", json=body)
                got = np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(want.shape)
                np.testing.assert_allclose(got, want, **TOL)
            if precision == "latest":  # the default is version 2 (int8); version 1 by the versions path
                r = c.post("/v2/models/heal_seg/versions/1/infer", json=body)
                assert r.json()["model_version"] == "1"
                got = np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(want.shape)
                np.testing.assert_allclose(got, want, **TOL)
                assert c.get("/v2/models/heal_seg").json()["versions"] == ["1", "2"]


def test_parity_failure_writes_nothing(tmp, monkeypatch, capsys):
    """If onnxruntime disagrees with torch the export fails loudly (exit 1) and leaves no manifest."""
    import heal_swin.export.onnx_export as oe
    from tests.serve.conftest import make_onnx

    def wrong_export(model, example, path, dynamic_batch=True, opset=None):
        return make_onnx(path, tuple(example.shape[2:]), 10)  # right interface, wrong numbers

    monkeypatch.setattr(oe, "export_onnx", wrong_export)
    rc, out = export(tmp, "broken", {"task": "segmentation"}, registry="heal_swin_tiny", nside=8)
    assert rc == 1
    assert "parity check FAILED" in capsys.readouterr().err
    assert not out.exists()


def test_input_errors_exit_2(tmp, capsys):
    assert main(["export", "--checkpoint", str(tmp / "nope.safetensors"), "--out", str(tmp / "x")]) == 2
    assert "nope.safetensors" in capsys.readouterr().err
    (tmp / "junk.safetensors").write_bytes(b"junk")
    assert main(["export", "--checkpoint", str(tmp / "junk.safetensors"), "--out", str(tmp / "x")]) == 2
    rc, _ = export(tmp, "depth_nometa", {"task": "depth"}, registry="s2cnn_depth_tiny", nside=8)
    assert rc == 2 and "depth_log_mean" in capsys.readouterr().err
    rc, _ = export(tmp, "bad_name", {}, ["--name", "../evil"], registry="heal_swin_tiny", nside=8)
    assert rc == 2 and "--name" in capsys.readouterr().err
