"""The manifest schema: round trip, validation naming the bad field, and no torch in the serving path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from heal_swin.export.manifest import (
    Manifest,
    ManifestError,
    load_manifest,
    manifest_from_dict,
    save_manifest,
)
from tests.serve.conftest import ROOT


def good() -> dict:
    return Manifest(
        name="m", model_name="heal_swin_tiny", task="segmentation", input_kind="sphere", in_chans=3, out_chans=2,
        input_shape=[-1, 3, 512], output_shape=[-1, 2, 512], onnx_sha256="a" * 64, opset=18, nside=8,
        base_pixels=list(range(8)), class_names=["a", "b"], class_colours=[[0, 0, 0], [255, 0, 0]],
    ).to_dict()


def test_round_trip(tmp_path):
    m = manifest_from_dict(good())
    path = save_manifest(tmp_path, m)
    assert path.name == "model.json" and (path.stat().st_mode & 0o777) == 0o644
    back = load_manifest(tmp_path)
    assert back == m and back.npix == 512 and back.mean == [0.485, 0.456, 0.406]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"task": "classify"}, "task"),
        ({"input_kind": "cube"}, "input_kind"),
        ({"nside": 6}, "nside"),
        ({"base_pixels": [0, 0]}, "base_pixels"),
        ({"base_pixels": [12]}, "base_pixels"),
        ({"input_shape": [-1, 3, 511]}, "input_shape"),
        ({"output_shape": [-1, 3, 512]}, "output_shape"),
        ({"class_names": ["a"]}, "class_names"),
        ({"class_colours": [[0, 0, 0], [256, 0, 0]]}, "class_colours"),
        ({"onnx_sha256": "x"}, "onnx_sha256"),
        ({"onnx_file": "../model.onnx"}, "onnx_file"),
        ({"format": "other/1"}, "format"),
        ({"in_chans": 4, "input_shape": [-1, 4, 512]}, "in_chans"),
        ({"normalisation": {"mean": [0, 0], "std": [1, 1, 1]}}, "normalisation.mean"),
        ({"normalisation": {"mean": [0, 0, 0], "std": [1, 0, 1]}}, "normalisation.std"),
        ({"task": "depth", "out_chans": 1, "output_shape": [-1, 1, 512], "depth": None}, "depth"),
        ({"int8": {"onnx_file": "/etc/passwd"}}, "int8.onnx_file"),
        ({"opset": 0}, "opset"),
        ({"input_kind": "flat", "img_size": [64]}, "img_size"),
    ],
)
def test_validation_names_the_field(change, field):
    with pytest.raises(ManifestError, match=f"'{field}'"):
        manifest_from_dict({**good(), **change})


def test_missing_and_unknown_fields(tmp_path):
    d = good()
    del d["task"]
    with pytest.raises(ManifestError, match="missing field.*task"):
        manifest_from_dict(d)
    with pytest.raises(ManifestError, match="unknown field.*colour"):
        manifest_from_dict({**good(), "colour": 1})
    (tmp_path / "model.json").write_text("{oops")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path)
    with pytest.raises(ManifestError, match="no such manifest"):
        load_manifest(tmp_path / "nope")
    (tmp_path / "model.json").write_text(json.dumps([1]))
    with pytest.raises(ManifestError, match="JSON object"):
        load_manifest(tmp_path / "model.json")


def test_service_does_not_import_torch():
    code = (
        "import sys, heal_swin.serve.app, heal_swin.serve.cli, heal_swin.export.manifest, heal_swin.export.quantize, "
        "heal_swin.inference.manifest, heal_swin.inference.processing, heal_swin.inference.demo; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
