from __future__ import annotations

import argparse
import json

from heal_swin.data.cli import add_data_commands, main, run_data_command


def _parse(argv):
    p = argparse.ArgumentParser()
    add_data_commands(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def test_synth_then_check(tmp_path, capsys):
    out = tmp_path / "syn"
    args = _parse(["data", "synth", "--out", str(out), "--scenes", "2", "--width", "96", "--height", "72",
                   "--cameras", "FV,MVR", "--workers", "1", "--no-progress"])  # fmt: skip
    assert run_data_command(args) == 0
    assert "wrote 4 images" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "rgb_images").iterdir()) == [
        "00000_FV.png",
        "00000_MVR.png",
        "00001_FV.png",
        "00001_MVR.png",
    ]
    assert run_data_command(args) == 0  # idempotent: nothing to do
    assert "wrote 0 images" in capsys.readouterr().out
    assert main(["data", "check", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["usable"] == 4 and rep["per_camera"] == {"FV": 2, "MVR": 2}


def test_bad_arguments(tmp_path, capsys):
    assert run_data_command(_parse(["data", "synth", "--out", str(tmp_path), "--cameras", "XX"])) == 2
    assert "cameras" in capsys.readouterr().err
    assert run_data_command(_parse(["data", "check", str(tmp_path / "missing")])) == 2
    assert "not a directory" in capsys.readouterr().err
