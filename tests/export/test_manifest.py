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
        name="m",
        model_name="heal_swin_tiny",
        task="segmentation",
        input_kind="sphere",
        in_chans=3,
        out_chans=2,
        input_shape=[-1, 3, 512],
        output_shape=[-1, 2, 512],
        onnx_sha256="a" * 64,
        opset=18,
        nside=8,
        base_pixels=list(range(8)),
        class_names=["a", "b"],
        class_colours=[[0, 0, 0], [255, 0, 0]],
        normalisation={
            "colour_order": "RGB",
            "scale": 1 / 255,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
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
    r = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr


def test_normalisation_is_required():
    """A manifest states its model's normalisation; the service never assumes one."""
    d = good()
    del d["normalisation"]
    with pytest.raises(ManifestError, match="missing field.*normalisation"):
        manifest_from_dict(d)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"opset": True}, "field 'opset': expected a valid integer, got True"),
        ({"out_chans": "2"}, "field 'out_chans': expected a valid integer, got '2'"),
        (
            {"normalisation": {"mean": [0, 0, "x"], "std": [1, 1, 1]}},
            "field 'normalisation.mean': expected a number",
        ),
        ({"normalisation": {"mean": [0, 0, 0], "std": [1, 1, 1], "gamma": 2}}, "field 'normalisation.gamma'"),
        ({"model_versions": {"01": "fp32"}}, "field 'model_versions': expected an object"),
        ({"model_versions": {"1": "fp16"}}, "field 'model_versions': expected 'fp32' or 'int8'"),
    ],
)
def test_type_errors_say_field_expected_and_got(change, message):
    with pytest.raises(ManifestError) as info:
        manifest_from_dict({**good(), **change}, "repo/m/model.json")
    text = str(info.value)
    assert text.startswith("repo/m/model.json: ") and message in text and "\n" not in text


def test_json_schema_accepts_a_real_export_and_rejects_what_load_rejects(tmp_path):
    """The published schema against a manifest that ``heal-swin export`` really wrote."""
    import jsonschema
    import torch

    from heal_swin.cli import main
    from heal_swin.inference.manifest import manifest_json_schema
    from heal_swin.models.checkpoint import save_model
    from heal_swin.models.registry import create_model

    schema = manifest_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.safetensors"
    model = create_model("heal_swin_tiny", nside=4, num_classes=3, embed_dim=8)
    meta = {
        "task": "segmentation",
        "class_names": ["a", "b", "c"],
        "class_colours": [[0, 0, 0], [0, 0, 255], [0, 255, 0]],
    }
    save_model(ckpt, model, meta)
    out = tmp_path / "repo" / "tiny"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    data = json.loads((out / "model.json").read_text())
    jsonschema.validate(data, schema)
    assert data["normalisation"]["mean"] == model.default_cfg["mean"]  # from the model's default config
    validator = jsonschema.Draft202012Validator(schema)
    for change in (
        {"onnx_sha256": "x"},
        {"base_pixels": [0, 0]},
        {"task": "classify"},
        {"extra": 1},
        {"class_colours": [[0, 0], [0, 0, 255], [0, 255, 0]]},
        {"opset": 0},
    ):
        assert not validator.is_valid({**data, **change}), change
        with pytest.raises(ManifestError):
            manifest_from_dict({**data, **change})
