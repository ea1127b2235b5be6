"""``heal-swin data check`` on adversarial roots: stray and orphan files are warnings, truncated
label PNGs are caught by the quick scan (what training runs), unknown label ids are an error
unless the dataset card says ``unknown_label_ids: ignore``, absurd calibrations are named."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from heal_swin.cli import main
from heal_swin.data.check import check_dataset
from heal_swin.data.classes import WOODSCAPE_CLASSES, table_from_card
from heal_swin.data.datasets import FisheyeDataset
from heal_swin.data.layout import scan

LABELS = ("semantic_annotations", "gtLabels")


def test_stray_and_orphan_files_are_warnings(synth_copy, capsys):
    root = synth_copy
    strays = {
        root / "rgb_images" / "notes.txt": "stray file",
        root / "rgb_images" / "holiday photo.png": "stray name",
        root / "calibration" / "backup": "stray folder",
        root / "calibration" / "00000_FV.json.bak": "stray file",
        root / LABELS[0] / LABELS[1] / "00099_FV.png": "orphan label",
        root / "calibration" / "00099_RV.json": "orphan calibration",
        root / "depth_maps" / "raw_data" / "00098_MVL.npy": "orphan depth",
    }
    for p in strays:
        if p.name == "backup":
            p.mkdir()
        elif p.suffix == ".png":
            cv2.imwrite(str(p), np.zeros((120, 160, 3), np.uint8))
        else:
            p.write_text("{}")
    (root / "rgb_images" / ".DS_Store").write_text("")  # dot-files are not reported
    # The stray image is loaded (without a camera), so it needs its label and calibration.
    cv2.imwrite(str(root / LABELS[0] / LABELS[1] / "holiday photo.png"), np.zeros((120, 160), np.uint8))
    (root / "calibration" / "holiday photo.json").write_bytes(
        (root / "calibration" / "00000_FV.json").read_bytes()
    )
    np.save(root / "depth_maps" / "raw_data" / "holiday photo.npy", np.ones((120, 160), np.float32))

    rep = check_dataset(root)
    assert rep.ok, rep.problems  # warnings only
    got = {p: why for p, why in rep.warnings}
    assert set(got) == {str(p) for p in strays}, rep.warnings
    for p, words in strays.items():
        assert words in got[str(p)], (p, got[str(p)])
    assert "no image" in got[str(root / "calibration" / "00099_RV.json")]
    # Orphans of cameras not being checked are not reported.
    only_fv = {p for p, _ in check_dataset(root, cameras=["FV"]).warnings}
    assert (
        str(root / "calibration" / "00099_RV.json") not in only_fv
        and str(root / LABELS[0] / LABELS[1] / "00099_FV.png") in only_fv
    )

    assert main(["data", "check", str(root), "--no-histogram"]) == 0
    out = capsys.readouterr().out
    assert "WARNINGS (7)" in out and "notes.txt: stray file" in out
    assert main(["data", "check", str(root), "--json", "--no-histogram"]) == 0
    assert len(json.loads(capsys.readouterr().out)["warnings"]) == 7


def test_clean_root_has_no_warnings(tiny_synth):
    assert check_dataset(tiny_synth, histogram=False).warnings == []


def test_truncated_label_png_is_caught_by_the_quick_scan(synth_copy):
    label = synth_copy / LABELS[0] / LABELS[1] / "00002_MVL.png"
    data = label.read_bytes()
    label.write_bytes(data[: len(data) * 2 // 3])  # header and size intact, data cut off
    image = synth_copy / "rgb_images" / "00003_FV.png"
    image.write_bytes(image.read_bytes()[:-12])  # only the IEND chunk missing
    idx = scan(synth_copy, split="all", validate="quick")
    skipped = dict(idx.skipped)
    assert "truncated PNG" in skipped[str(label)] and "truncated PNG" in skipped[str(image)]
    with pytest.warns(UserWarning, match="skipped 2 bad file"):
        ds = FisheyeDataset(synth_copy, split="all")  # training's default validation: quick
    assert len(ds) == 14
    for i in range(len(ds)):  # what is left loads: nothing fails later, mid-epoch
        ds[i]
    rep = check_dataset(synth_copy, level="quick", histogram=False)
    assert not rep.ok and {str(label), str(image)} <= {p for p, _ in rep.problems}


def _put_unknown_id(root):
    p = root / LABELS[0] / LABELS[1] / "00001_FV.png"
    lab = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    lab[5, 5] = 77
    cv2.imwrite(str(p), lab)
    return p


def test_unknown_label_ids_error_states_what_training_does(synth_copy, capsys):
    p = _put_unknown_id(synth_copy)
    rep = check_dataset(synth_copy)
    why = dict(rep.problems)[str(p)]
    assert (
        "unknown label ids [77]" in why
        and "training would silently ignore" in why
        and "unknown_label_ids" in why
    )
    assert main(["data", "check", str(synth_copy), "--no-histogram"]) == 1
    assert str(p) in capsys.readouterr().out


def test_card_declaring_unknown_ids_ignored_makes_them_a_warning(synth_copy, capsys):
    p = _put_unknown_id(synth_copy)
    card_path = synth_copy / "dataset_card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "unknown_label_ids": "ignore"}))
    rep = check_dataset(synth_copy)
    assert rep.ok and str(p) not in dict(rep.problems)
    assert any("unknown label ids [77]" in why and "1 pixels" in why for _, why in rep.warnings), rep.warnings
    assert rep.class_pixels["unknown id 77"] == 1
    assert (
        table_from_card({**WOODSCAPE_CLASSES.to_card(), "unknown_label_ids": "ignore"}).unknown_label_ids
        == "ignore"
    )
    # A value the card cannot have: one line, exit 2, naming the card and the field.
    card_path.write_text(json.dumps({**card, "unknown_label_ids": "sometimes"}))
    assert main(["data", "check", str(synth_copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(card_path) in err and "unknown_label_ids" in err
    with pytest.raises(ValueError, match="unknown_label_ids"):
        table_from_card({**WOODSCAPE_CLASSES.to_card(), "unknown_label_ids": "sometimes"})


def test_absurd_calibrations_are_named_problems(synth_copy, capsys):
    big = synth_copy / "calibration" / "00000_RV.json"
    cal = json.loads(big.read_text())
    cal["intrinsic"]["k3"] = 10**400
    big.write_text(json.dumps(cal))
    deep = synth_copy / "calibration" / "00001_MVR.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    rep = check_dataset(synth_copy, histogram=False)
    why = dict(rep.problems)
    assert "intrinsic.k3" in why[str(big)] and "nested at most" in why[str(deep)]
    assert main(["data", "check", str(synth_copy), "--no-histogram"]) == 1
    out = capsys.readouterr()
    assert str(big) in out.out and "Traceback" not in out.err


def test_exit_status_is_what_help_says(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["data", "check", "--help"])
    assert "warnings do not count" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
