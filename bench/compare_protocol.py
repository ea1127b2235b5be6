"""The comparison protocol of bench/compare_models.py: what is held equal and how each run is set up.

Model shapes per block family, parameter matching (S2CNN's widths), the flat image size that matches
the sphere's input information, the run plan with its recipe overrides, run names, and the lr pick on
validation. No training here: compare_models.py trains, compare_report.py reports.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

# The shared transformer shape (HEAL-SWIN's tiny recipe, 3 levels) and the per-family block switches.
SHAPE = {"embed_dim": 32, "depths": [2, 2, 2], "num_heads": [2, 4, 8], "mlp_ratio": 4.0}
FAMILIES = {"v1": {"cosine_attn": False, "post_norm": False}, "v2": {"cosine_attn": True, "post_norm": True}}
SEG_KEYS, DEPTH_KEYS = ("miou", "miou_no_void"), ("abs_rel", "delta1")


def heal_swin_options(family: str) -> dict[str, Any]:
    return {**SHAPE, "window_size": 16, "patch_size": 4, **FAMILIES[family]}


def swin_unet_options(family: str, img_size: tuple[int, int]) -> dict[str, Any]:
    return {
        **SHAPE,
        "window_size": 4,
        "shift_size": 2,
        "patch_size": 2,
        "img_size": list(img_size),
        "v2": family == "v2",
    }


def count_params(name: str, **options: Any) -> int:
    from heal_swin.models import create_model

    return sum(p.numel() for p in create_model(name, **options).parameters())


def s2cnn_options(target: int, base: dict[str, Any], tol: float = 0.05) -> dict[str, Any]:
    """S2CNN tiny with its feature widths scaled until its parameters are within ``tol`` of ``target``."""
    from heal_swin.models import model_config

    feats = np.asarray(model_config("s2cnn_seg_tiny")["features"], dtype=np.float64)

    def build(scale: float) -> tuple[int, dict[str, Any]]:
        opts = {**base, "features": [max(1, round(f * scale)) for f in feats]}
        return count_params("s2cnn_seg_tiny", **opts), opts

    # The count grows with the width: bisect the scale, keep the closest count seen.
    lo, hi, best = 0.1, 64.0, None
    for _ in range(24):
        mid = float(np.sqrt(lo * hi))
        n, opts = build(mid)
        if best is None or abs(n - target) < abs(best[0] - target):
            best = (n, opts)
        lo, hi = (mid, hi) if n < target else (lo, mid)
        if abs(n - target) <= 0.01 * target or hi / lo < 1.001:
            break
    assert best is not None
    if abs(best[0] - target) > tol * target:
        raise SystemExit(
            f"S2CNN: no feature width within {tol:.0%} of {target:,} parameters (closest {best[0]:,})"
        )
    return best[1]


def flat_size(
    valid_sphere_px: int, footprint_fraction: float, aspect: float, step: int, ratio: float = 1.25
) -> tuple[int, int]:
    """``(H, W)`` multiples of ``step`` whose footprint pixels are closest to ``ratio`` x the sphere's."""
    want = ratio * valid_sphere_px / footprint_fraction
    best = None
    for h in range(step, 4096, step):
        w = max(step, step * round(h * aspect / step))
        err = abs(np.log(h * w / want)) + 0.5 * abs(np.log((w / h) / aspect))
        if best is None or err < best[0]:
            best = (err, (h, w))
        if h * w > 4 * want:
            break
    assert best is not None
    return best[1]


def input_geometry(data: Path, nside: int) -> dict[str, Any]:
    """Valid sphere pixels and the grid's footprint on the images of ``data`` (its first calibration)."""
    from heal_swin.geometry import FisheyeCamera, HealpixGrid, SphereProjector

    calib = min((data / "calibration").glob("*.json"))
    cam = FisheyeCamera.from_json(calib)
    proj = SphereProjector(cam, HealpixGrid(nside, tuple(range(8))))
    return {
        "valid": int(proj.valid_mask.sum()),
        "footprint": float(proj.footprint().mean()),
        "aspect": cam.width / cam.height,
        "image": [cam.width, cam.height],
    }


def val_curve(run: Path, key: str) -> list[float]:
    """Validation ``key`` per epoch, from the run's CSV logs (all versions: a resumed run keeps its history)."""
    per_epoch: dict[int, float] = {}
    for f in sorted((run / "logs" / "csv").glob("version_*/metrics.csv")):
        with open(f, newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            if row.get(f"val/{key}"):
                per_epoch[int(row["epoch"])] = float(row[f"val/{key}"])
    return [per_epoch[e] for e in sorted(per_epoch)]


def flattened(curve: list[float], higher_is_better: bool) -> bool:
    if len(curve) < 3:
        return False
    c = np.asarray(curve) if higher_is_better else -np.asarray(curve)
    cut = len(c) - max(1, len(c) // 3)
    before, after = c[:cut].max(), c.max()
    return bool(after - before <= 0.02 * abs(before))


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (task, nside, family, model, seed) run with its recipe overrides."""
    resample = getattr(args, "resample", "bilinear")  # image -> grid for the sphere models
    runs = []
    for task in args.tasks:
        for nside in args.nsides:
            geo = input_geometry(args.data, nside)
            hw = flat_size(
                geo["valid"], geo["footprint"], geo["aspect"], step=2 * 2 ** (len(SHAPE["depths"]) - 1)
            )
            for family in args.families:
                heal = heal_swin_options(family)
                n_heal = count_params("heal_swin_tiny", nside=nside, task=task, **heal)
                flat = swin_unet_options(family, hw)
                models = {
                    "heal_swin": ("heal_swin_tiny", "sphere", heal),
                    "swin_unet": ("swin_unet_tiny", "flat", flat),
                }
                if family == args.families[0] and "s2cnn" in args.models:
                    models["s2cnn"] = (
                        "s2cnn_seg_tiny",
                        "sphere",
                        s2cnn_options(n_heal, {"nside": nside, "task": task}),
                    )
                for key, (name, view, opts) in models.items():
                    if key not in args.models:
                        continue
                    n = count_params(
                        name,
                        **({"nside": nside} if view == "sphere" else {}),
                        task=task,
                        **{k: v for k, v in opts.items() if k not in ("nside", "task")},
                    )
                    if abs(n - n_heal) > 0.05 * n_heal:
                        raise SystemExit(
                            f"{name}: {n:,} parameters, not within 5 % of HEAL-SWIN's {n_heal:,}"
                        )
                    for seed in args.seeds:
                        runs.append(
                            {
                                "task": task,
                                "nside": nside,
                                "family": family if key != "s2cnn" else "-",
                                "model": key
                                + variant_suffix(
                                    args.augment, args.epochs, resample if view == "sphere" else "bilinear"
                                ),
                                "augment": args.augment,
                                "resample": resample if view == "sphere" else None,
                                "registry": name,
                                "view": view,
                                "options": opts,
                                "params": n,
                                "seed": seed,
                                "flat_hw": list(hw) if view == "flat" else None,
                                "sphere_valid_px": geo["valid"],
                                "flat_footprint_px": int(hw[0] * hw[1] * geo["footprint"])
                                if view == "flat"
                                else None,
                            }
                        )
    return runs


def overrides(r: dict[str, Any], args: argparse.Namespace) -> list[str]:
    opts = {k: v for k, v in r["options"].items() if k not in ("nside", "task")}
    out = [
        f"data.root={args.data}",
        f"data.task={r['task']}",
        f"data.view={r['view']}",
        f"data.nside={r['nside']}",
        f"data.batch_size={args.batch_size}",
        "data.num_workers=1",
        f"model.name={r['registry']}",
        f"model.options={json.dumps(opts)}",
        f"optim.lr={r.get('lr', DEFAULT_LR)}",
        f"optim.weight_decay={args.weight_decay}",
        "optim.optimizer=adamw",
        "optim.schedule=cosine",
        f"optim.warmup_steps={args.warmup}",
        f"trainer.max_epochs={args.epochs}",
        f"trainer.seed={r['seed']}",
        f"trainer.out_dir={args.out}",
        f"trainer.name={run_name(r)}",
        "trainer.progress_bar=false",
        f"trainer.precision={args.precision}",
    ]
    if r["view"] == "flat":
        out.append(f"data.image_size=[{r['flat_hw'][1]}, {r['flat_hw'][0]}]")
    if r.get("resample") == "area":
        out.append("data.resample=area")
    if r.get("augment", "flip") == "rot":
        out.append("data.rot180=true" if r["view"] == "flat" else "data.rot90=true")
    return out


DEFAULT_LR = 2e-3
BASE_EPOCHS = 12  # the protocol's schedule; runs trained longer are reported as their own rows


def variant_suffix(augment: str, epochs: int, resample: str = "bilinear") -> str:
    """What a run changes from the base protocol, as a model-name suffix: ``_rot``, ``_e36``, ``_area``.

    Part of the model's name, so such runs get their own folders and their own table rows.
    """
    return (
        ("_rot" if augment == "rot" else "")
        + (f"_e{epochs}" if epochs != BASE_EPOCHS else "")
        + ("_area" if resample == "area" else "")
    )


def run_name(r: dict[str, Any]) -> str:
    """Unique per run; the lr appears only when it is not the default (older runs keep their names)."""
    lr = r.get("lr", DEFAULT_LR)
    tail = "" if lr == DEFAULT_LR else f"_lr{lr:g}"
    return f"{r['task'][:3]}_n{r['nside']}_{r['family'].replace('-', 'x')}_{r['model']}_s{r['seed']}{tail}"


def group_key(r: dict[str, Any]) -> tuple:
    return (r["task"], r["nside"], r["family"], r["model"])


def merge_runs(previous: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier rows plus this invocation's: a new row replaces only the earlier row of the same run
    (``run_name``), so seeds scored at different times add up to one group."""
    names = {run_name(r) for r in new}
    return [r for r in previous if run_name(r) not in names] + new


def best_val(r: dict[str, Any]) -> float:
    """The run's best validation score, oriented so that higher is better."""
    curve = np.asarray(r["curve"], dtype=np.float64)
    if curve.size == 0:
        return -np.inf
    return float(curve.max() if r["task"] == "segmentation" else -curve.min())


def pick_lr(sweep: list[dict[str, Any]]) -> float:
    """The lr of the sweep run with the best validation score (ties: the larger lr, listed first)."""
    return max(sorted(sweep, key=lambda r: -r["lr"]), key=best_val)["lr"]


def min_seed(rows: list[dict[str, Any]], g: tuple) -> int:
    return min(r["seed"] for r in rows if group_key(r) == g)


def picked_lrs(rows: list[dict[str, Any]]) -> dict[tuple, float]:
    """Per (task, nside, family, model): the lr its first seed's runs pick on validation."""
    out = {}
    for g in dict.fromkeys(group_key(r) for r in rows):
        seed = min_seed(rows, g)
        out[g] = pick_lr(
            [{**r, "lr": r.get("lr", DEFAULT_LR)} for r in rows if group_key(r) == g and r["seed"] == seed]
        )
    return out
