"""bench/compare_models.py's lr sweep: validation picks each model's lr, the test split never does."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cm() -> ModuleType:
    """The protocol module of bench/compare_models.py, plus the report's sweep table.

    Loads the script itself first: that checks it imports, and it puts bench/ on the path."""
    spec = importlib.util.spec_from_file_location("compare_models", ROOT / "bench" / "compare_models.py")
    assert spec and spec.loader
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    import compare_protocol
    import compare_report

    mod = ModuleType("compare")
    mod.__dict__.update(vars(compare_protocol), sweep_table=compare_report.sweep_table)
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


def test_rotation_augmented_runs_get_their_domains_turns_and_own_names(
    cm: ModuleType, tmp_path: Path
) -> None:
    from argparse import Namespace

    from heal_swin.train.config import load_config

    args = Namespace(data=tmp_path, batch_size=8, weight_decay=0.05, warmup=100, epochs=2, out=tmp_path,
                     precision="32-true")  # fmt: skip
    base = {"task": "segmentation", "nside": 32, "family": "v1", "seed": 0, "options": {}}
    sphere = {
        **base,
        "model": "heal_swin_rot",
        "augment": "rot",
        "registry": "heal_swin_tiny",
        "view": "sphere",
    }
    flat = {**base, "model": "swin_unet_rot", "augment": "rot", "registry": "swin_unet_tiny", "view": "flat",
            "flat_hw": [80, 104]}  # fmt: skip
    plain = {**sphere, "model": "heal_swin", "augment": "flip"}
    recipe = ROOT / "train" / "quickstart.yaml"
    got = {
        k: load_config(recipe, cm.overrides(r, args)).data
        for k, r in [("s", sphere), ("f", flat), ("p", plain)]
    }
    assert (got["s"].rot90, got["s"].rot180) == (True, False)
    assert (got["f"].rot90, got["f"].rot180, got["f"].view) == (False, True, "flat")
    assert (got["p"].rot90, got["p"].rot180) == (False, False)
    assert cm.run_name(sphere) == "seg_n32_v1_heal_swin_rot_s0" != cm.run_name(plain)
    assert cm.group_key(sphere) != cm.group_key(plain)


def test_longer_schedules_and_rotation_runs_are_named_apart_from_the_base_protocol(cm: ModuleType) -> None:
    assert cm.variant_suffix("flip", cm.BASE_EPOCHS) == ""  # the base runs keep their names
    assert cm.variant_suffix("rot", cm.BASE_EPOCHS) == "_rot"
    assert cm.variant_suffix("flip", 36) == "_e36" and cm.variant_suffix("rot", 36) == "_rot_e36"


def test_area_resampling_runs_only_change_the_sphere_models(
    cm: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argparse import Namespace

    import compare_protocol

    from heal_swin.train.config import load_config

    geo = {"valid": 6154, "footprint": 0.5, "aspect": 320 / 242, "image": [320, 242]}
    monkeypatch.setattr(compare_protocol, "input_geometry", lambda data, nside: geo)
    args = Namespace(data=tmp_path, batch_size=8, weight_decay=0.05, warmup=100, epochs=cm.BASE_EPOCHS,
                     out=tmp_path, precision="32-true", tasks=["segmentation"], nsides=[32], families=["v1"],
                     models=["heal_swin", "swin_unet"], seeds=[0], augment="flip")  # fmt: skip
    plain = {r["model"]: r for r in cm.plan(args)}
    area = {r["model"]: r for r in cm.plan(Namespace(**vars(args), resample="area"))}
    assert set(plain) == {"heal_swin", "swin_unet"} and set(area) == {"heal_swin_area", "swin_unet"}
    assert area["swin_unet"] == plain["swin_unet"]  # the flat run is shared: same name, same settings
    recipe = ROOT / "train" / "quickstart.yaml"
    data = {k: load_config(recipe, cm.overrides(r, args)).data for k, r in {**plain, **area}.items()}
    assert data["heal_swin"].resample == "bilinear" and data["heal_swin_area"].resample == "area"
    assert (
        cm.run_name(area["heal_swin_area"])
        == "seg_n32_v1_heal_swin_area_s0"
        != cm.run_name(plain["heal_swin"])
    )


def test_a_new_seed_adds_to_its_group_and_a_rescored_run_replaces_its_row(cm: ModuleType) -> None:
    def row(seed: int, score: float, model: str = "heal_swin_e72") -> dict:
        return {"task": "segmentation", "nside": 32, "family": "v1", "model": model, "seed": seed,
                "lr": 2e-3, "sphere_miou": score}  # fmt: skip

    previous = [row(0, 0.30), row(1, 0.25), row(0, 0.40, "swin_unet_e72")]
    merged = cm.merge_runs(previous, [row(1, 0.28), row(2, 0.31)])
    got = sorted((r["model"], r["seed"], r["sphere_miou"]) for r in merged)
    assert got == [("heal_swin_e72", 0, 0.30), ("heal_swin_e72", 1, 0.28), ("heal_swin_e72", 2, 0.31),
                   ("swin_unet_e72", 0, 0.40)]  # fmt: skip
