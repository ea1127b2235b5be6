"""The model folder of ``heal-swin export``: swapped in atomically over an existing one (never a
moment without a model), other files kept, and a one-line error for an unwritable ``--out``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from heal_swin.cli import main
from heal_swin.export.exporter import _exchange, commit_folder


def _folder(path: Path, tag: str) -> Path:
    (path / "1").mkdir(parents=True)
    for name in ("1/model.onnx", "model.json", "config.pbtxt"):
        (path / name).write_text(f"{tag} {name}")
    return path


def test_commit_replaces_the_folder_and_keeps_other_files(tmp_path):
    out = _folder(tmp_path / "repo" / "seg", "old")
    (out / "2").mkdir()
    (out / "2" / "model.onnx").write_text("old int8")  # a model version the new export does not have
    (out / "model.int8.onnx").write_text("old layout")  # files of the layout before versions go too
    (out / "NOTES.md").write_text("keep me")
    (out / "extra").mkdir()
    (out / "extra" / "a.txt").write_text("a")
    os.chmod(out, 0o750)
    commit_folder(_folder(tmp_path / "repo" / ".seg.export-x", "new"), out)
    assert (out / "model.json").read_text() == "new model.json" and not (out / "2").exists()
    assert not (out / "model.int8.onnx").exists()
    assert (out / "NOTES.md").read_text() == "keep me" and (out / "extra" / "a.txt").read_text() == "a"
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["seg"]  # no staging or old folder left
    assert out.stat().st_mode & 0o777 == 0o750
    fresh = tmp_path / "repo" / "depth"
    commit_folder(_folder(tmp_path / "repo" / ".depth.export-y", "new"), fresh)
    assert (fresh / "1" / "model.onnx").is_file() and fresh.stat().st_mode & 0o077  # not mkdtemp's 0700


def test_swap_never_leaves_the_folder_missing(tmp_path):
    out = _folder(tmp_path / "repo" / "seg", "v0")
    probe_a, probe_b = tmp_path / "a", tmp_path / "b"
    probe_a.mkdir(), probe_b.mkdir()
    if not _exchange(probe_a, probe_b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here: the documented two-rename fallback is used")
    missing, stop = [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            if not (out / "model.json").is_file():
                missing.append(1)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(200):
            commit_folder(_folder(tmp_path / "repo" / f".seg.export-{i}", f"v{i + 1}"), out)
    finally:
        stop.set()
        t.join()
    assert not missing and (out / "model.json").read_text() == "v200 model.json"
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["seg"]


def _read_only_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        os.chmod(ro, 0o555)
        return ro
    ro = Path("/sys/heal-swin-export-test")  # root ignores permissions; sysfs refuses new folders
    try:
        ro.mkdir()
    except OSError:
        return ro
    ro.rmdir()
    pytest.skip("no read-only place for root on this machine")


def test_out_on_a_read_only_place_is_one_line_exit_2(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from heal_swin.models.checkpoint import save_model
    from heal_swin.models.registry import create_model

    torch.manual_seed(0)
    ckpt = tmp_path / "m.safetensors"
    save_model(ckpt, create_model("heal_swin_tiny", nside=8), {"task": "segmentation"})
    out = _read_only_dir(tmp_path) / "models" / "seg"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and err.startswith("heal-swin export: error: --out ")
        and "cannot write there" in err
    ), err
    assert not out.exists()
    (tmp_path / "file").write_text("")
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "file")]) == 2
    assert "expected a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_export_over_an_existing_folder(tmp_path):
    torch = pytest.importorskip("torch")
    from heal_swin.export.manifest import load_manifest, sha256_file
    from heal_swin.models.checkpoint import save_model
    from heal_swin.models.registry import create_model

    out = tmp_path / "repo" / "seg"
    shas = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        ckpt = tmp_path / f"m{seed}.safetensors"
        save_model(ckpt, create_model("heal_swin_tiny", nside=8), {"task": "segmentation"})
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
        (out / "NOTES.md").write_text("deployment notes")
        m = load_manifest(out)
        assert sha256_file(out / "1" / "model.onnx") == m.onnx_sha256
        shas.append(m.onnx_sha256)
    assert shas[0] != shas[1] and (out / "NOTES.md").read_text() == "deployment notes"
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["seg"]
    assert sorted(p.name for p in out.iterdir()) == ["1", "NOTES.md", "config.pbtxt", "model.json"]
