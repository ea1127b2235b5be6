from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest

from heal_swin.data.check import check_dataset
from heal_swin.data.cli import add_data_commands, run_data_command
from heal_swin.data.datasets import FisheyeDataset
from heal_swin.data.layout import DatasetError, scan


def _parse(argv):
    p = argparse.ArgumentParser()
    add_data_commands(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def _break(root):
    """Five bad samples, one per kind of problem; returns {path: expected words}."""
    bad = {}
    p = root / "rgb_images" / "00000_FV.png"
    p.write_bytes(b"this is not a png")
    bad[str(p)] = "not a PNG"
    p = root / "semantic_annotations" / "gtLabels" / "00000_RV.png"
    cv2.imwrite(str(p), np.zeros((60, 80), np.uint8))
    bad[str(p)] = "size"
    p = root / "semantic_annotations" / "gtLabels" / "00001_FV.png"
    lab = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    lab[5, 5] = 42
    cv2.imwrite(str(p), lab)
    bad[str(p)] = "unknown label ids [42]"
    p = root / "calibration" / "00001_RV.json"
    p.unlink()
    bad[str(p)] = "missing calibration"
    p = root / "depth_maps" / "raw_data" / "00002_FV.npy"
    p.write_bytes(p.read_bytes()[:200])
    bad[str(p)] = "npy"
    return bad


def test_clean_dataset_passes(tiny_synth, capsys):
    rep = check_dataset(tiny_synth)
    assert rep.ok and rep.usable == 16 and rep.per_camera == {"FV": 4, "MVL": 4, "MVR": 4, "RV": 4}
    assert rep.calibrations == 16 and rep.distinct_intrinsics == 4
    assert all(v > 0 for v in rep.class_pixels.values())
    assert run_data_command(_parse(["data", "check", str(tiny_synth)])) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "traffic_sign" in out and "FV 4" in out


def test_bad_files_are_named_and_skipped(synth_copy, capsys):
    bad = _break(synth_copy)
    rep = check_dataset(synth_copy)
    assert not rep.ok and rep.usable == 11
    text = rep.format()
    for path, words in bad.items():
        assert path in text, path
        assert any(path == p and words.lower() in why.lower() for p, why in rep.problems), (
            path,
            rep.problems,
        )
    assert run_data_command(_parse(["data", "check", str(synth_copy)])) == 1
    out = capsys.readouterr().out
    assert all(p in out for p in bad)
    # loading skips them, lists them and says so (never silently)
    with pytest.warns(UserWarning, match="skipped 5 bad file"):
        ds = FisheyeDataset(synth_copy, split="all", validate="full")
    assert len(ds) == 11 and {p for p, _ in ds.skipped} == set(bad)
    # quick validation catches everything except the unknown id, which loads as IGNORE
    with pytest.warns(UserWarning, match="skipped 4 bad file"):
        quick = FisheyeDataset(synth_copy, split="all", validate="quick")
    assert len(quick) == 12
    with pytest.raises(DatasetError, match="00000_FV.png"):
        scan(synth_copy, split="all", on_error="raise")


def test_missing_root_and_split_entries(tmp_path, synth_copy):
    with pytest.raises(DatasetError, match="not a directory"):
        scan(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        scan(tmp_path / "empty")
    (synth_copy / "val.txt").write_text((synth_copy / "val.txt").read_text() + "09999_FV\n")
    idx = scan(synth_copy, split="val")
    assert any("09999_FV.png" in p and "val.txt" in why for p, why in idx.skipped)
