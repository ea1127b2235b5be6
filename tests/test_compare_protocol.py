"""bench/compare_models.py's lr sweep: validation picks each model's lr, the test split never does."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_models", ROOT / "bench" / "compare_models.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(task: str, model: str, lr: float, seed: int, curve: list[float], test: float) -> dict:
    key = "sphere_miou" if task == "segmentation" else "sphere_abs_rel"
    return {"task": task, "nside": 32, "family": "v1", "model": model, "lr": lr, "seed": seed,
            "curve": curve, key: test}  # fmt: skip


def test_depth_picks_lowest_validation_abs_rel_not_test(cm: ModuleType) -> None:
    rows = [
        _row("depth", "heal_swin", 2e-3, 0, [0.5, 0.9, 0.45], test=0.30),  # best test, worse val
        _row("depth", "heal_swin", 5e-4, 0, [0.6, 0.40, 0.41], test=0.35),
    ]
    assert cm.picked_lrs(rows) == {("depth", 32, "v1", "heal_swin"): 5e-4}


def test_segmentation_picks_highest_validation_miou_per_model(cm: ModuleType) -> None:
    rows = [
        _row("segmentation", "heal_swin", 2e-3, 0, [0.1, 0.25], test=0.2),
        _row("segmentation", "heal_swin", 5e-4, 0, [0.1, 0.20], test=0.3),
        _row("segmentation", "swin_unet", 2e-3, 0, [0.1, 0.20], test=0.2),
        _row("segmentation", "swin_unet", 5e-4, 0, [0.1, 0.22], test=0.2),
        # later seeds at one lr must not outvote the first seed's sweep
        _row("segmentation", "swin_unet", 2e-3, 1, [0.9], test=0.2),
    ]
    assert cm.picked_lrs(rows) == {
        ("segmentation", 32, "v1", "heal_swin"): 2e-3,
        ("segmentation", 32, "v1", "swin_unet"): 5e-4,
    }


def test_run_names_keep_the_default_lr_name_and_differ_otherwise(cm: ModuleType) -> None:
    base = {"task": "depth", "nside": 32, "family": "-", "model": "s2cnn", "seed": 1}
    assert cm.run_name({**base, "lr": cm.DEFAULT_LR}) == "dep_n32_x_s2cnn_s1"
    assert cm.run_name(base) == "dep_n32_x_s2cnn_s1"
    assert cm.run_name({**base, "lr": 5e-4}) == "dep_n32_x_s2cnn_s1_lr0.0005"


def test_sweep_table_marks_the_pick(cm: ModuleType) -> None:
    rows = [
        _row("depth", "heal_swin", 2e-3, 0, [0.5], test=0.5),
        _row("depth", "heal_swin", 5e-4, 0, [0.4], test=0.4),
    ]
    text = cm.sweep_table(rows, cm.picked_lrs(rows))
    picked = [line for line in text.splitlines() if line.endswith("| yes |")]
    assert len(picked) == 1 and "| 0.0005 |" in picked[0]
