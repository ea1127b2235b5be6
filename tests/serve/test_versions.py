"""Model versions in the Triton layout: the highest by default, a chosen one by the KServe v2
versions path, and a one-line re-export error for a folder in the layout before versions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient

from heal_swin.cli import main
from heal_swin.inference.manifest import load_manifest, save_manifest, sha256_file
from heal_swin.serve.app import create_app
from heal_swin.serve.config import ServeConfig
from heal_swin.serve.repository import ModelRepository, NotFoundError, RepositoryError
from tests.serve.conftest import make_onnx, write_model

NSIDE = 8
SPATIAL = (8 * NSIDE * NSIDE,)


def two_versions(root):
    """Model 'seg': version 1 fp32, version 2 'int8' (a different small graph standing in for the quantised one)."""
    m = write_model(root, "seg", "segmentation", "sphere", nside=NSIDE)
    q = make_onnx(root / "seg" / "2" / "model.onnx", SPATIAL, 10, seed=9)
    m.model_versions = {"1": "fp32", "2": "int8"}
    m.int8 = {"version": 2, "onnx_file": "model.onnx", "onnx_sha256": sha256_file(q), "validation": {}}
    save_manifest(root / "seg", m)
    return root


def outputs(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_default_version_is_the_highest_unless_a_precision_is_preferred(tmp_path):
    two_versions(tmp_path)
    repo = ModelRepository(tmp_path)
    assert sorted(repo.versions["seg"]) == [1, 2]
    assert repo.model("seg").version == 2 and repo.model("seg").precision == "int8"
    assert repo.model("seg", "1").onnx_path == tmp_path / "seg" / "1" / "model.onnx"
    assert ModelRepository(tmp_path, precision="fp32").model("seg").version == 1
    assert ModelRepository(tmp_path, precision="int8").model("seg").version == 2
    for bad in ("3", "0", "01", "x", "-1"):
        with pytest.raises(NotFoundError, match="no version"):
            repo.model("seg", bad)


def test_v2_versions_routes(tmp_path):
    two_versions(tmp_path)
    x = np.random.default_rng(0).standard_normal((2, 3, *SPATIAL), dtype=np.float32)
    body = {
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    with TestClient(create_app(ServeConfig(model_repository=tmp_path, warmup=False))) as c:
        meta = c.get("/v2/models/seg").json()
        assert (
            meta["versions"] == ["1", "2"]
            and meta["parameters"]["version"] == "2"
            and meta["platform"] == "onnxruntime_onnx"
        )
        v1 = c.get("/v2/models/seg/versions/1").json()
        assert v1["parameters"]["version"] == "1" and v1["parameters"]["precision"] == "fp32"
        assert v1["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, *SPATIAL]}]
        for path in (
            "/v2/models/seg/ready",
            "/v2/models/seg/versions/1/ready",
            "/v2/models/seg/versions/2/ready",
        ):
            assert c.get(path).json() == {"name": "seg", "ready": True}, path
        for version, path in (
            ("2", "/v2/models/seg/infer"),
            ("1", "/v2/models/seg/versions/1/infer"),
            ("2", "/v2/models/seg/versions/2/infer"),
        ):
            r = c.post(path, json=body)
            assert r.status_code == 200, r.text
            assert r.json()["model_version"] == version
            got = np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(2, 10, *SPATIAL)
            np.testing.assert_allclose(
                got, outputs(tmp_path / "seg" / version / "model.onnx", x), rtol=1e-5, atol=1e-5
            )
        r = c.post("/v2/models/seg/versions/3/infer", json=body)
        assert r.status_code == 404 and "no version '3'" in r.json()["error"]
        assert c.get("/v2/models/seg/versions/x").status_code == 404
        assert c.get("/v2/models/nope/versions/1").status_code == 404
        # /v1 uses the default version too
        assert c.get("/v1/models").json()["models"][0]["precision"] == "int8"


def test_repository_version_errors(tmp_path):
    two_versions(tmp_path)
    shutil.copytree(tmp_path / "seg" / "1", tmp_path / "seg" / "3")
    with pytest.raises(RepositoryError, match=r"version folder\(s\) \[3\] not in model.json"):
        ModelRepository(tmp_path)
    shutil.rmtree(tmp_path / "seg" / "3")
    (tmp_path / "seg" / "2" / "model.onnx").write_bytes(b"changed")
    with pytest.raises(RepositoryError, match="2/model.onnx: sha256 does not match"):
        ModelRepository(tmp_path)


def old_layout_repo(root):
    """A model folder as export wrote it before versions: model.onnx (+ model.int8.onnx) beside model.json."""
    write_model(root, "seg", "segmentation", "sphere", nside=NSIDE)
    folder = root / "seg"
    (folder / "1" / "model.onnx").rename(folder / "model.onnx")
    (folder / "1").rmdir()
    (folder / "config.pbtxt").unlink()
    (folder / "model.int8.onnx").write_bytes(b"old int8")
    data = json.loads((folder / "model.json").read_text())
    data["format"] = "heal-swin-onnx/1"
    del data["model_versions"]
    (folder / "model.json").write_text(json.dumps(data))
    return folder


def test_old_layout_is_a_one_line_error_with_the_export_command(tmp_path, capsys):
    folder = old_layout_repo(tmp_path)
    with pytest.raises(RepositoryError) as e:
        ModelRepository(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "old model folder layout" in msg
    assert msg.endswith(
        f"re-export it: heal-swin export --checkpoint MODEL.safetensors --out {folder} --int8"
    )
    assert main(["serve", "--model-repository", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "heal-swin export --checkpoint" in err, err
    # An old manifest moved into a version folder by hand: also told to re-export.
    (folder / "1").mkdir()
    (folder / "model.onnx").rename(folder / "1" / "model.onnx")
    (folder / "model.int8.onnx").unlink()
    with pytest.raises(RepositoryError, match="heal-swin-onnx/1.*re-export it: heal-swin export"):
        ModelRepository(tmp_path)


def test_exported_manifest_says_which_version_is_which(tmp_path):
    two_versions(tmp_path)
    m = load_manifest(tmp_path / "seg")
    assert m.precision_of(1) == "fp32" and m.precision_of(2) == "int8" and m.precision_of(3) is None
    assert m.sha256_of(2) == sha256_file(tmp_path / "seg" / "2" / "model.onnx")
