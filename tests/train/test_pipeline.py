"""Tiny end-to-end runs on generated data: learning, checkpoints, exact resume, DDP, reports."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from heal_swin.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "train" / "quickstart.yaml"


def _overrides(data: Path, out: Path, name: str, *extra: str) -> list[str]:
    return [
        f"data.root={data}",
        "data.nside=8",
        "data.batch_size=4",
        "data.num_workers=0",
        f"trainer.out_dir={out}",
        f"trainer.name={name}",
        "trainer.progress_bar=false",
        "trainer.checkpoint_every_n_steps=2",
        "model.options={window_size: 4, embed_dim: 8}",
        *extra,
    ]


def _train_losses(run: Path) -> list[float]:
    with open(run / "logs" / "csv" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


def test_train_learns_checkpoints_and_reloads(tiny_data, tmp_path, capsys, monkeypatch):
    from heal_swin.train import pipeline

    retained = []  # training keeps freed heap memory (tests/test_allocator.py checks what that does)
    monkeypatch.setattr(pipeline, "retain_freed_memory", lambda: retained.append(True))
    args = [
        "train",
        "--config",
        str(QUICKSTART),
        *_overrides(
            tiny_data,
            tmp_path,
            "fit",
            "trainer.max_epochs=10",
            "optim.schedule=none",
            "trainer.log_every_n_steps=1",
            "optim.lr=1.0e-2",
            "optim.warmup_steps=0",
            "data.augment=false",
        ),
    ]
    assert main(args) == 0
    assert retained == [True]
    run = tmp_path / "fit"
    losses = _train_losses(run)
    assert np.mean(losses[-4:]) < 0.85 * np.mean(losses[:4]), losses  # it learns (ln 10 = 2.30 at the start)
    # Lightning checkpoint: loads without unpickling arbitrary objects.
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 40 and "ResumeState" in str(list(ckpt["callbacks"]))
    # One last checkpoint, written by both the step and the epoch checkpointing (no last-v1.ckpt).
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    from heal_swin.models.checkpoint import load_model

    model, meta = load_model(run / "model.safetensors")
    assert meta["task"] == "segmentation" and len(meta["class_names"]) == 10 and meta["nside"] == 8
    assert model(torch.zeros(1, 3, model.grid.npix)).shape == (1, 10, model.grid.npix)
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"miou", "miou_no_void", "majority_baseline_miou", "per_class_iou"} <= set(metrics)
    report = run / "report"
    for name in ("metrics.json", "summary.md", "per_class_iou.png", "confusion_matrix.png"):
        assert (report / name).is_file(), name
    assert list(report.glob("overlay_*.png")) and list(report.glob("sphere_*.png"))
    out = capsys.readouterr().out
    assert "majority-class baseline" in out and "fisheye" in out


def test_rerun_without_resume_refuses(tiny_data, tmp_path, capsys):
    args = [
        "train",
        "--config",
        str(QUICKSTART),
        "--no-eval",
        *_overrides(tiny_data, tmp_path, "r", "trainer.max_epochs=1"),
    ]
    assert main(args) == 0
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err


_DRIVER = """
import os, sys
import lightning as L
from heal_swin.train import pipeline
from heal_swin.train.config import load_config

crash_at = int(os.environ.get("CRASH_AT", "0"))

class Crash(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if crash_at and trainer.global_step == crash_at:
            os._exit(137)  # what kill -9 leaves behind: no cleanup, no final checkpoint

original = pipeline._callbacks
pipeline._callbacks = lambda cfg, sampler=None: original(cfg, sampler) + [Crash()]
pipeline.train(load_config(None, sys.argv[2:]), resume=sys.argv[1] == "resume")
"""


def _csv_losses(run: Path) -> list[dict[int, float]]:
    """{step: train loss} of each CSV log version of a run, in order."""
    out = []
    for version in sorted((run / "logs" / "csv").glob("version_*"), key=lambda p: int(p.name.split("_")[1])):
        with open(version / "metrics.csv") as f:
            out.append(
                {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")}
            )
    return out


def test_resume_after_kill_matches_uninterrupted_run(tiny_data, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    # Dropout, drop-path, photometric augmentation and a data worker: every source of randomness.
    extra = (
        "trainer.max_epochs=3",
        "data.num_workers=1",
        "trainer.log_every_n_steps=1",
        "model.options={window_size: 4, embed_dim: 8, drop_rate: 0.1, drop_path_rate: 0.2}",
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(mode: str, name: str, crash_at: int = 0, *more: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(driver), mode, *_overrides(tiny_data, tmp_path, name, *extra, *more)],
            env=dict(env, CRASH_AT=str(crash_at)),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    full = run("fresh", "full")
    assert full.returncode == 0, full.stderr[-2000:]
    from safetensors.torch import load_file

    a = load_file(tmp_path / "full" / "model.safetensors")
    ma = json.loads((tmp_path / "full" / "metrics.json").read_text())
    (full_losses,) = _csv_losses(tmp_path / "full")
    assert sorted(full_losses) == list(range(12))
    # Killed mid-epoch 2 (4 steps per epoch) with the last checkpoint at step 6 (every 2 steps), and
    # killed at step 5 with checkpoints every 3 steps: the last one is then epoch 1's end (step 4).
    for name, crash_at, more in (
        ("killed", 7, ()),
        ("killed_after_epoch", 5, ("trainer.checkpoint_every_n_steps=3",)),
    ):
        killed = run("fresh", name, crash_at, *more)
        assert killed.returncode == 137
        assert not (tmp_path / name / "model.safetensors").exists()
        resumed = run("resume", name, 0, *more)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert "not resumable" not in resumed.stderr  # no false alarm from Lightning on resume
        b = load_file(tmp_path / name / "model.safetensors")
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{name}: {k}")
        mb = json.loads((tmp_path / name / "metrics.json").read_text())
        assert ma["miou"] == mb["miou"] and ma["per_class_iou"] == mb["per_class_iou"]
        assert sorted(p.name for p in (tmp_path / name / "checkpoints").iterdir()) == ["last.ckpt"]
        # The CSV history survives the resume: the killed start's log, then the resumed one's, and
        # together they cover every step with the uninterrupted run's losses.
        before, after = _csv_losses(tmp_path / name)
        assert min(before) == 0 and max(before) >= crash_at - 2 and max(after) == 11, (
            before,
            after,
        )  # crashed in step crash_at - 1
        assert {**before, **after}.keys() == full_losses.keys()
        for step, loss in {**before, **after}.items():
            assert loss == full_losses[step], (name, step)


def test_ddp_two_cpu_processes(tiny_data, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "heal_swin.cli",
        "train",
        "--config",
        str(QUICKSTART),
        "--no-eval",
        *_overrides(tiny_data, tmp_path, "ddp", "trainer.max_epochs=1"),
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
    ]
    proc = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "ddp" / "model.safetensors").is_file()
    # 16 training samples, batch 4, two processes: 2 steps each.
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["steps"] == 2


def test_predict_and_evaluate_cli(tiny_data, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--config",
                str(QUICKSTART),
                "--no-eval",
                *_overrides(tiny_data, tmp_path, "p", "trainer.max_epochs=1"),
            ]
        )
        == 0
    )
    run = tmp_path / "p"
    out = tmp_path / "pred"
    image = tiny_data / "rgb_images" / "00000_FV.png"
    calib = tiny_data / "calibration" / "00000_FV.json"
    assert (
        main(["predict", "--checkpoint", str(run), str(image), "--calib", str(calib), "--out", str(out)]) == 0
    )
    import cv2

    mask = cv2.imread(str(out / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (121, 160) and set(np.unique(mask)) <= set(range(10)) | {255}
    assert (out / "overlay.png").is_file() and (out / "sphere_mollweide.png").is_file()
    assert np.load(out / "sphere.npy").shape == (8 * 64,)
    assert (
        main(["evaluate", "--checkpoint", str(run), "--split", "val", "--report", str(tmp_path / "rep")]) == 0
    )
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["samples"] == 4
    # The incidence-angle bins partition the scored pixels, on the sphere and on the fisheye image.
    for domain in ("sphere", "flat"):
        assert sum(b["pixels"] for b in metrics[f"{domain}_by_incidence"]) == metrics[domain]["pixels"]
    # A calibration whose size does not match the image: one-line error, exit 2.
    data = json.loads(calib.read_text())
    data["intrinsic"]["width"] = 320.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    capsys.readouterr()
    assert (
        main(["predict", "--checkpoint", str(run), str(image), "--calib", str(bad), "--out", str(out)]) == 2
    )
    assert "does not match" in capsys.readouterr().err


def test_config_errors_via_cli(tmp_path, capsys):
    assert main(["train", "--config", str(QUICKSTART), "trainer.max_epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'trainer.max_epoch'" in err and len(err.strip().splitlines()) == 1
    assert (
        main(
            [
                "train",
                "--config",
                str(QUICKSTART),
                f"data.root={tmp_path / 'none'}",
                f"trainer.out_dir={tmp_path}",
            ]
        )
        == 2
    )
    assert "heal-swin data synth" in capsys.readouterr().err


def test_rot180_turns_flat_training_samples_and_only_flat_ones(tiny_data):
    import random

    from heal_swin.train.config import ConfigError, load_config
    from heal_swin.train.pipeline import build_dataset

    over = [f"data.root={tiny_data}", "data.view=flat", "data.image_size=[64, 48]", "data.rot180=true"]
    cfg = load_config(ROOT / "train" / "synthetic_swin_unet.yaml", over)
    plain, turned = build_dataset(cfg, "train"), build_dataset(cfg, "train", train=True)
    random.seed(0)
    kinds = []
    for i in range(len(plain)):
        lab, aug = plain[i]["label"], turned[i]["label"]
        same = [torch.equal(aug, t) for t in (lab, lab.flip(1), lab.flip(0, 1), lab.flip(0))]
        assert any(same), i  # identity, mirror, half turn or both: nothing else
        kinds.append(same.index(True))
    assert {2, 3} & set(kinds) and {0, 1} & set(kinds), kinds  # p = 0.5: some turned, some not
    sphere = load_config(QUICKSTART, [f"data.root={tiny_data}", "data.rot180=true"])
    with pytest.raises(ConfigError, match="data.rot180.*flat view.*data.rot90"):
        build_dataset(sphere, "train", train=True)


@pytest.mark.parametrize(
    "recipe, extra",
    [
        (
            "synthetic_swin_unet.yaml",
            ("data.image_size=[64, 48]", "model.options={img_size: [48, 64], window_size: 2}"),
        ),
        ("synthetic_depth_heal_swin.yaml", ("model.options={window_size: 4, embed_dim: 8}",)),
        ("synthetic_s2cnn.yaml", ("model.options={b_in: 4, bandwidths: [4, 2, 4], features: [4, 4, 4]}",)),
    ],
)
def test_flat_depth_and_s2cnn_recipes_run_end_to_end(tiny_data, tmp_path, recipe, extra):
    name = recipe.removesuffix(".yaml")
    over = [
        f"data.root={tiny_data}",
        "data.nside=8",
        "data.batch_size=4",
        "data.num_workers=0",
        f"trainer.out_dir={tmp_path}",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        *extra,
    ]
    assert main(["train", "--config", str(ROOT / "train" / recipe), *over]) == 0
    run = tmp_path / name
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    if "depth" in recipe:
        assert (
            metrics["task"] == "depth"
            and np.isfinite(metrics["sphere"]["abs_rel"])
            and metrics["chamfer_m"] > 0
        )
    else:
        assert 0 <= metrics["sphere"]["miou"] <= 1 and 0 <= metrics["flat"]["miou"] <= 1


def test_bf16_mixed_training_with_gradient_clipping_runs(tiny_data, tmp_path):
    """bf16-mixed + the default grad_clip: Lightning refuses to clip a fused optimizer's gradients
    under mixed precision, so this combination must take the unfused step (and still learn)."""
    from heal_swin.train import acceleration

    args = [
        "train",
        "--config",
        str(QUICKSTART),
        *_overrides(
            tiny_data,
            tmp_path,
            "bf16",
            "trainer.max_epochs=6",
            "optim.schedule=none",
            "trainer.log_every_n_steps=1",
            "optim.lr=1.0e-2",
            "optim.warmup_steps=0",
            "data.augment=false",
            "trainer.precision=bf16-mixed",
            "optim.grad_clip=1.0",
            "trainer.accelerator=cpu",
        ),
    ]
    if not acceleration.bf16_supported():  # then the recipe check refuses it, in one line
        assert main(args) == 2
        return
    assert main(args) == 0
    losses = _train_losses(tmp_path / "bf16")
    assert np.mean(losses[-4:]) < 0.9 * np.mean(losses[:4]), losses
