"""``heal-swin export`` for each model family (HEAL-SWIN, flat Swin-UNet, S2CNN): files, manifest, checker,
parity of onnxruntime vs torch, int8 with its accuracy change, and the exported folder served end to end."""

from __future__ import annotations

import json
import time

import numpy as np
import onnx
import pytest
import torch

from heal_swin.cli import main
from heal_swin.export.manifest import load_manifest, sha256_file
from heal_swin.models.checkpoint import load_model, save_model
from heal_swin.models.registry import create_model

pytestmark = pytest.mark.slow

TOL = dict(rtol=1e-3, atol=1e-4)


def export(tmp, name: str, meta: dict, args: list[str] = (), **kwargs) -> tuple[int, object]:
    torch.manual_seed(0)
    ckpt = tmp / f"{name}.safetensors"
    save_model(ckpt, create_model(kwargs.pop("registry"), **kwargs), meta)
    out = tmp / "repo" / name
    return main(["export", "--checkpoint", str(ckpt), "--out", str(out), *args]), out


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def heal_seg(tmp):
    meta = {"task": "segmentation", "dataset": "synthetic"}
    rc, out = export(tmp, "heal_seg", meta, ["--int8", "--val-samples", "2"], registry="heal_swin_tiny", nside=8)
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def flat_seg(tmp):
    rc, out = export(tmp, "flat_seg", {"task": "segmentation", "class_names": list("abcd"), "class_colours": [[0, 0, 0]] * 4},
                     registry="swin_unet_tiny", num_classes=4)
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def s2_depth(tmp):
    meta = {"task": "depth", "depth_log_mean": 2.5, "depth_log_std": 0.7}
    rc, out = export(tmp, "s2_depth", meta, registry="s2cnn_depth_tiny", nside=8)
    assert rc == 0
    return out


def check_folder(out, task: str, kind: str):
    m = load_manifest(out)
    assert m.task == task and m.input_kind == kind and m.name == out.name
    assert (out / "model.onnx").is_file() and not (out / "model.onnx.data").exists()
    assert sha256_file(out / "model.onnx") == m.onnx_sha256
    onnx.checker.check_model(str(out / "model.onnx"), full_check=True)
    graph = onnx.load(str(out / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert m.opset >= 17
    for which in ("random", "real"):
        p = m.parity[which]
        assert p["max_abs"] < 1e-3 and p["count"] >= 1, p
    assert m.parity["rtol"] == 1e-3 and m.parity["atol"] == 1e-4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    return m


def test_heal_swin_export(heal_seg):
    m = check_folder(heal_seg, "segmentation", "sphere")
    assert m.model_name == "heal_swin_tiny" and m.nside == 8 and m.base_pixels == list(range(8))
    assert m.input_shape == [-1, 3, 512] and m.output_shape == [-1, 10, 512]
    assert m.class_names[1] == "road" and m.class_colours[1] == [255, 0, 255]  # WoodScape defaults for 10 classes
    assert m.dataset == "synthetic" and m.versions["torch"] == torch.__version__
    # int8: written, checked, accuracy change measured on validation frames
    q = m.int8
    assert q["onnx_file"] == "model.int8.onnx" and sha256_file(heal_seg / q["onnx_file"]) == q["onnx_sha256"]
    v = q["validation"]
    assert v["frames"] == 2 and "synthetic" in v["source"]
    assert 0 <= v["agreement"] <= 1 and v["fp32"]["miou"] is not None and v["delta_miou"] == pytest.approx(v["int8"]["miou"] - v["fp32"]["miou"])
    assert (heal_seg / "model.int8.onnx").stat().st_size < (heal_seg / "model.onnx").stat().st_size


def test_flat_export(flat_seg):
    m = check_folder(flat_seg, "segmentation", "flat")
    assert m.img_size == [64, 64] and m.nside is None and m.class_names == list("abcd")


def test_s2cnn_depth_export(s2_depth):
    m = check_folder(s2_depth, "depth", "sphere")
    assert m.depth == {"log_mean": 2.5, "log_std": 0.7} and m.out_chans == 1 and m.int8 is None


def test_exported_models_served_end_to_end(heal_seg, flat_seg, s2_depth, tmp):
    """The exported folders as a repository: the service's answers equal torch's on the same inputs."""
    from fastapi.testclient import TestClient

    from heal_swin.geometry import FisheyeCamera
    from heal_swin.serve import pipeline as pl
    from heal_swin.serve.app import create_app
    from heal_swin.serve.config import ServeConfig
    from heal_swin.serve.demo import demo_paths

    img_path, cal_path = demo_paths()
    files = {"image": ("f.jpg", img_path.read_bytes(), "image/jpeg"), "calibration": ("c.json", cal_path.read_bytes(), "application/json")}
    camera = FisheyeCamera.from_json(cal_path)
    import cv2

    image = cv2.imread(str(img_path))
    for precision in ("fp32", "int8"):
        app = create_app(ServeConfig(model_repository=tmp / "repo", precision=precision))
        with TestClient(app) as c:
            deadline = time.monotonic() + 60
            while c.get("/v2/health/ready").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            r = c.post("/v1/segment", files=files, data={"model": "heal_seg", "format": "json"})
            assert r.status_code == 200, r.text
            values = np.asarray(r.json()["values"])
            model, _ = load_model(tmp / "heal_seg.safetensors")
            m = load_manifest(heal_seg)
            x = pl.model_input(image, m, camera)[None]
            with torch.no_grad():
                want = model(torch.from_numpy(x)).numpy()[0]
            agree = float((values == want.argmax(0)).mean())
            assert agree > (0.99 if precision == "fp32" else 0.7), (precision, agree)
            if precision == "fp32":
                r = c.post("/v2/models/heal_seg/infer", json={"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]})
                got = np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(want.shape)
                np.testing.assert_allclose(got, want, **TOL)
                r = c.post("/v1/depth", files=files, data={"model": "s2_depth", "format": "npy"})
                assert r.status_code == 200, r.text
                r = c.post("/v1/segment", files=files, data={"model": "flat_seg"})
                assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            assert c.get("/v1/models").json()["models"][1]["precision"] == precision  # heal_seg (sorted: flat_seg, heal_seg, s2_depth)


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
    assert not (out / "model.json").exists() and not (out / "model.onnx").exists()


def test_input_errors_exit_2(tmp, capsys):
    assert main(["export", "--checkpoint", str(tmp / "nope.safetensors"), "--out", str(tmp / "x")]) == 2
    assert "nope.safetensors" in capsys.readouterr().err
    (tmp / "junk.safetensors").write_bytes(b"junk")
    assert main(["export", "--checkpoint", str(tmp / "junk.safetensors"), "--out", str(tmp / "x")]) == 2
    rc, _ = export(tmp, "depth_nometa", {"task": "depth"}, registry="s2cnn_depth_tiny", nside=8)
    assert rc == 2 and "depth_log_mean" in capsys.readouterr().err
    rc, _ = export(tmp, "bad_name", {}, ["--name", "../evil"], registry="heal_swin_tiny", nside=8)
    assert rc == 2 and "--name" in capsys.readouterr().err
