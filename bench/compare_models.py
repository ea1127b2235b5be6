"""Sphere vs plane, fairly: HEAL-SWIN, the flat Swin-UNet and S2CNN under one protocol.

    python bench/compare_models.py --data data/synthetic                       # the full protocol
    python bench/compare_models.py --data data/synthetic --nsides 32 --seeds 0 1 2 --tasks segmentation \\
        --families v1 --epochs 12                                                # one slice of it

What is held equal (and how), per (task, nside, block family):
- **Blocks**: the transformers use the same family, v1 (softmax attention, pre-norm) or v2 (cosine
  attention, post-norm); S2CNN has no attention and is run once per (task, nside).
- **Size**: the flat Swin-UNet has HEAL-SWIN's embedding, depths, heads and MLP ratio, a 2x2 patch (=
  HEAL-SWIN's 4 NESTED children) and a 4x4 window (= its 16-pixel windows); S2CNN's feature widths are
  scaled until its parameter count is within 5 % of HEAL-SWIN's. Every count is printed; a miss is an error.
- **Input information**: as the paper sized its flat images, the flat model sees ~1.25x as many image
  pixels inside the grid's footprint as the sphere has valid pixels (same field of view: the
  footprint), at the fisheye image's aspect ratio, rounded to what the Swin-UNet accepts.
- **Training**: same data and split, augmentation, loss and class weights, optimizer, weight
  decay, warm-up + cosine schedule, batch size and epochs; every seed trains every model. The lr is
  either shared (``--lr 2e-3``) or swept (``--lr 2e-3 1e-3 5e-4``): each model then trains its first
  seed at every lr, keeps the lr with the best *validation* score and trains its other seeds at that
  lr, so no model is judged at an lr that suits another (the test split never picks anything).
- **Augmentation**: photometric jitter and the mirror for every model; ``--augment rot`` adds the exact
  turns each domain has (quarter turns about the optical axis on the sphere, ``data.rot90``; the half turn
  of the flat image, ``data.rot180``) and names the runs ``<model>_rot`` (issue 14 item 6's members).
- **Schedule**: 12 epochs; ``--epochs 36`` trains the same protocol longer and names the runs
  ``<model>_e36`` (does a model that had not flattened move?).
- **Scoring** on the test split by ``heal_swin.train.evaluate``: on the sphere, on the fisheye image
  (inside the grid's footprint) and per incidence-angle bin; mean +- std over seeds. The validation
  curves are plotted, and a run counts as flattened when its last third of epochs improved the best
  validation score by < 2 % (relative).

Writes bench/results/compare.json, bench/results/compare_curves.png, compare_incidence.png and the
"Model comparison" section of BENCHMARKS.md (unless --no-markdown). Runs already in compare.json that
this invocation does not plan are kept (``--fresh`` drops them), so slices run at different times add
up to one report.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"
RESULTS = ROOT / "bench" / "results"
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
                                "model": key + variant_suffix(args.augment, args.epochs),
                                "augment": args.augment,
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
    if r.get("augment", "flip") == "rot":
        out.append("data.rot180=true" if r["view"] == "flat" else "data.rot90=true")
    return out


DEFAULT_LR = 2e-3
BASE_EPOCHS = 12  # the protocol's schedule; runs trained longer are reported as their own rows


def variant_suffix(augment: str, epochs: int) -> str:
    """What a run changes from the base protocol, as a model-name suffix: ``_rot``, ``_e36``.

    Part of the model's name, so such runs get their own folders and their own table rows.
    """
    return ("_rot" if augment == "rot" else "") + (f"_e{epochs}" if epochs != BASE_EPOCHS else "")


def run_name(r: dict[str, Any]) -> str:
    """Unique per run; the lr appears only when it is not the default (older runs keep their names)."""
    lr = r.get("lr", DEFAULT_LR)
    tail = "" if lr == DEFAULT_LR else f"_lr{lr:g}"
    return f"{r['task'][:3]}_n{r['nside']}_{r['family'].replace('-', 'x')}_{r['model']}_s{r['seed']}{tail}"


def group_key(r: dict[str, Any]) -> tuple:
    return (r["task"], r["nside"], r["family"], r["model"])


def best_val(r: dict[str, Any]) -> float:
    """The run's best validation score, oriented so that higher is better."""
    curve = np.asarray(r["curve"], dtype=np.float64)
    if curve.size == 0:
        return -np.inf
    return float(curve.max() if r["task"] == "segmentation" else -curve.min())


def pick_lr(sweep: list[dict[str, Any]]) -> float:
    """The lr of the sweep run with the best validation score (ties: the larger lr, listed first)."""
    return max(sorted(sweep, key=lambda r: -r["lr"]), key=best_val)["lr"]


def train_and_score(r: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from heal_swin.io import save_json
    from heal_swin.train.config import load_config
    from heal_swin.train.evaluate import evaluate
    from heal_swin.train.inference import Predictor
    from heal_swin.train.pipeline import build_dataset, train

    recipe = (
        ROOT
        / "train"
        / ("quickstart.yaml" if r["task"] == "segmentation" else "synthetic_depth_heal_swin.yaml")
    )
    cfg = load_config(recipe, overrides(r, args))
    run = cfg.run_dir
    t0 = time.perf_counter()
    if not (run / "model.safetensors").exists():
        train(cfg, resume=(run / "checkpoints" / "last.ckpt").exists())
    train_s = time.perf_counter() - t0
    # Scores are kept next to the model, keyed on the model file and the data: a rerun that adds
    # seeds or models scores only the new runs.
    stamp = {"model_mtime_ns": (run / "model.safetensors").stat().st_mtime_ns, "data": str(args.data)}
    cache = run / "compare_score.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("stamp") == stamp:
            return {**r, **cached["score"]}
    predictor = Predictor(run / "model.safetensors")
    result = evaluate(predictor, build_dataset(cfg, "test", view="flat"), progress=False)
    seg = r["task"] == "segmentation"
    keys = SEG_KEYS if seg else DEPTH_KEYS
    score = {f"sphere_{k}": result["sphere"][k] for k in keys} | {
        f"fisheye_{k}": result["flat"][k] for k in keys
    }
    if seg:
        score["per_class_iou_sphere"] = result["sphere"]["per_class_iou"]
    else:
        score["chamfer_m"] = result["chamfer_m"]
    main_key = "miou" if seg else "abs_rel"
    score["sphere_by_incidence"] = [
        {"bin": b["bin"], "pixels": b["pixels"], main_key: b.get(main_key)}
        for b in result["sphere_by_incidence"]
    ]
    score["fisheye_by_incidence"] = [
        {"bin": b["bin"], "pixels": b["pixels"], main_key: b.get(main_key)}
        for b in result["flat_by_incidence"]
    ]
    curve = val_curve(run, main_key)
    score |= {"curve": curve, "flattened": flattened(curve, seg), "train_s": train_s}
    save_json(cache, {"stamp": stamp, "score": score})
    return {**r, **score}


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds per (task, nside, family, model)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((*group_key(r), r.get("lr", DEFAULT_LR)), []).append(r)
    out = []
    for (task, nside, family, model, lr), rs in groups.items():
        keys = [
            k
            for k in rs[0]
            if k.startswith(("sphere_", "fisheye_", "chamfer"))
            and not k.endswith("incidence")
            and not k.startswith("per_class")
        ]
        agg = {
            "task": task,
            "nside": nside,
            "family": family,
            "model": model,
            "lr": lr,
            "params": rs[0]["params"],
            "seeds": len(rs),
            "flattened": f"{sum(r['flattened'] for r in rs)}/{len(rs)}",
            "flat_hw": rs[0]["flat_hw"],
        }
        for k in keys:
            v = np.array([r[k] for r in rs], dtype=np.float64)
            agg[k] = [float(np.nanmean(v)), float(np.nanstd(v))]
        for dom in ("sphere", "fisheye"):
            main_key = "miou" if task == "segmentation" else "abs_rel"
            bins = [b["bin"] for b in rs[0][f"{dom}_by_incidence"]]
            vals = np.array(
                [
                    [b[main_key] if b[main_key] is not None else np.nan for b in r[f"{dom}_by_incidence"]]
                    for r in rs
                ]
            )
            agg[f"{dom}_by_incidence"] = {
                b: [float(np.nanmean(vals[:, i])), float(np.nanstd(vals[:, i]))] for i, b in enumerate(bins)
            }
        out.append(agg)
    # Table order: nside, block family (S2CNN's "-" last), model, then its variants (_rot, _e36)
    return sorted(
        out,
        key=lambda a: (a["task"] != "segmentation", a["nside"], a["family"] == "-", a["family"], a["model"]),
    )


def sweep_table(rows: list[dict[str, Any]], picked: dict[tuple, float]) -> str:
    """Per swept model: every lr's first-seed run, its best validation score and test score."""
    lines = []
    swept = [
        g
        for g in picked
        if len({r["lr"] for r in rows if group_key(r) == g and r["seed"] == min_seed(rows, g)}) > 1
    ]
    if not swept:
        return ""
    lines += [
        "lr sweep (first seed; the lr with the best validation score trains the other seeds):",
        "",
        "| task | nside | blocks | model | lr | best val | test (sphere) | picked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in swept:
        seed = min_seed(rows, g)
        for r in sorted((r for r in rows if group_key(r) == g and r["seed"] == seed), key=lambda r: -r["lr"]):
            seg = r["task"] == "segmentation"
            test = r["sphere_miou"] if seg else r["sphere_abs_rel"]
            lines.append(
                f"| {r['task']} | {r['nside']} | {r['family']} | {r['model']} | {r['lr']:g} | "
                f"{abs(best_val(r)):.3f} ({'mIoU' if seg else 'AbsRel'}) | {test:.3f} | "
                f"{'yes' if r['lr'] == picked[g] else ''} |"
            )
    return "\n".join(lines + [""])


def min_seed(rows: list[dict[str, Any]], g: tuple) -> int:
    return min(r["seed"] for r in rows if group_key(r) == g)


def table(agg: list[dict[str, Any]]) -> str:
    lines = []
    for task in dict.fromkeys(a["task"] for a in agg):
        seg = task == "segmentation"
        keys = (
            ["sphere_miou", "fisheye_miou", "sphere_miou_no_void"]
            if seg
            else ["sphere_abs_rel", "sphere_delta1", "fisheye_abs_rel", "chamfer_m"]
        )
        lines += [
            f"**{task}**",
            "",
            "| nside | blocks | model | lr | params | input | seeds | " + " | ".join(keys) + " | flattened |",
            "|---" * (8 + len(keys)) + "|",
        ]
        for a in (a for a in agg if a["task"] == task):
            inp = (
                f"flat {a['flat_hw'][1]}x{a['flat_hw'][0]}" if a["flat_hw"] else f"sphere nside {a['nside']}"
            )
            cells = [f"{a[k][0]:.3f} ± {a[k][1]:.3f}" for k in keys]
            lines.append(
                f"| {a['nside']} | {a['family']} | {a['model']} | {a['lr']:g} | {a['params']:,} | {inp} | {a['seeds']} | "
                + " | ".join(cells)
                + f" | {a['flattened']} |"
            )
        main_key = "miou" if seg else "abs_rel"
        lines += ["", f"{task}, {main_key} by incidence angle (sphere / fisheye):", ""]
        bins = list(agg[0]["sphere_by_incidence"])
        lines += ["| nside | blocks | model | " + " | ".join(bins) + " |", "|---" * (3 + len(bins)) + "|"]
        for a in (a for a in agg if a["task"] == task):
            cells = [
                f"{a['sphere_by_incidence'][b][0]:.3f} / {a['fisheye_by_incidence'][b][0]:.3f}" for b in bins
            ]
            lines.append(f"| {a['nside']} | {a['family']} | {a['model']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plots(rows: list[dict[str, Any]], agg: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # One panel per (task, nside); per model the mean validation curve over seeds, min-max shaded.
    panels = list(dict.fromkeys((r["task"], r["nside"]) for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (task, nside) in zip(axes[0], panels):
        groups: dict[tuple, list[list[float]]] = {}
        for r in rows:
            if (r["task"], r["nside"]) == (task, nside) and r["curve"]:
                groups.setdefault((r["family"], r["model"]), []).append(r["curve"])
        for (family, model), curves in groups.items():
            n = min(len(c) for c in curves)
            c = np.array([c[:n] for c in curves])
            epochs = np.arange(1, n + 1)
            (line,) = ax.plot(epochs, c.mean(0), label=f"{family} {model} ({len(curves)})")
            ax.fill_between(epochs, c.min(0), c.max(0), color=line.get_color(), alpha=0.15)
        ax.set_title(f"{task}, nside {nside}", fontsize=9)
        ax.set_xlabel("epoch"), ax.set_ylabel("val mIoU" if task == "segmentation" else "val AbsRel")
        ax.legend(fontsize=6)
    fig.tight_layout(), fig.savefig(RESULTS / "compare_curves.png", dpi=110), plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    for a in agg:
        bins = list(a["sphere_by_incidence"])
        ax.errorbar(
            range(len(bins)),
            [a["sphere_by_incidence"][b][0] for b in bins],
            [a["sphere_by_incidence"][b][1] for b in bins],
            label=f"{a['task'][:3]} n{a['nside']} {a['family']} {a['model']}",
            capsize=3,
            marker="o",
        )
        ax.set_xticks(range(len(bins)), bins)
    ax.set_xlabel("incidence angle"), ax.set_ylabel("sphere score"), ax.legend(fontsize=6)
    fig.tight_layout(), fig.savefig(RESULTS / "compare_incidence.png", dpi=110), plt.close(fig)


def picked_lrs(rows: list[dict[str, Any]]) -> dict[tuple, float]:
    """Per (task, nside, family, model): the lr its first seed's runs pick on validation."""
    out = {}
    for g in dict.fromkeys(group_key(r) for r in rows):
        seed = min_seed(rows, g)
        out[g] = pick_lr(
            [{**r, "lr": r.get("lr", DEFAULT_LR)} for r in rows if group_key(r) == g and r["seed"] == seed]
        )
    return out


def previous_rows(fresh: bool) -> list[dict[str, Any]]:
    """The runs of the last compare.json (older files: lr = the default, command = the file's)."""
    f = RESULTS / "compare.json"
    if fresh or not f.is_file():
        return []
    old = json.loads(f.read_text())
    return [{"lr": DEFAULT_LR, "command": old.get("command", "?"), **r} for r in old.get("runs", [])]


def save_json_atomic(path: Path, obj: Any) -> None:
    from heal_swin.io import atomic_open

    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "synthetic")
    ap.add_argument(
        "--tasks", nargs="+", default=["segmentation", "depth"], choices=["segmentation", "depth"]
    )
    ap.add_argument("--nsides", nargs="+", type=int, default=[32, 64])
    ap.add_argument("--families", nargs="+", default=["v1", "v2"], choices=list(FAMILIES))
    ap.add_argument(
        "--models",
        nargs="+",
        default=["heal_swin", "swin_unet", "s2cnn"],
        choices=["heal_swin", "swin_unet", "s2cnn"],
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument(
        "--epochs",
        type=int,
        default=BASE_EPOCHS,
        help=f"other than {BASE_EPOCHS}: the runs are named <model>_e<epochs> and reported as their own rows",
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--lr",
        type=float,
        nargs="+",
        default=[DEFAULT_LR],
        help="one lr for every model, or several: each model's first seed sweeps them, validation picks",
    )
    ap.add_argument(
        "--augment",
        choices=["flip", "rot"],
        default="flip",
        help="rot: also the exact turns of each model's domain (sphere: 90°, flat image: 180°); runs named <model>_rot",
    )
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument(
        "--precision", default="32-true", help="trainer.precision for every run (bf16-mixed: ~2x faster here)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "compare")
    ap.add_argument("--plan", action="store_true", help="print the runs (sizes, parameter counts) and stop")
    ap.add_argument("--no-markdown", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--fresh", action="store_true", help="drop the runs already in compare.json")
    ap.add_argument(
        "--trained-only",
        action="store_true",
        help="train nothing: report the planned runs that have a model (e.g. fewer seeds for one task)",
    )
    args = ap.parse_args()
    args.data = args.data.resolve()
    if not any((args.data / "calibration").glob("*.json")):
        print(
            f"compare_models: --data {args.data}: no calibration/*.json there; render the benchmark first "
            "(heal-swin data synth --out DIR ...) or point --data at a WoodScape-layout folder",
            file=sys.stderr,
        )
        return 2

    base = plan(args)  # every (task, nside, family, model, seed), no lr yet
    first = min(args.seeds)
    sweep = [{**r, "lr": lr} for r in base if r["seed"] == first for lr in args.lr]
    rest = [r for r in base if r["seed"] != first]
    for r in sweep:
        print(
            f"{run_name(r):48s} {r['registry']:16s} {r['params']:>9,} params  "
            + (
                f"flat {r['flat_hw'][1]}x{r['flat_hw'][0]} ({r['flat_footprint_px']} px in footprint)"
                if r["view"] == "flat"
                else f"sphere nside {r['nside']} ({r['sphere_valid_px']} valid px)"
            )
        )
    if rest:
        lr_note = "the lr picked on validation" if len(args.lr) > 1 else f"lr {args.lr[0]:g}"
        print(f"then seeds {sorted({r['seed'] for r in rest})} of every model at {lr_note}")
    if args.plan:
        return 0

    def wanted(r: dict[str, Any]) -> bool:
        return not args.trained_only or (args.out / run_name(r) / "model.safetensors").is_file()

    load = [os.getloadavg()]
    rows = [train_and_score(r, args) for r in sweep if wanted(r)]
    picked = picked_lrs(rows)
    later = [{**r, "lr": picked[group_key(r)]} for r in rest if group_key(r) in picked]
    rows += [train_and_score(r, args) for r in later if wanted(r)]
    if not rows:
        raise SystemExit(f"--trained-only: no trained run of the plan under {args.out}")
    load.append(os.getloadavg())
    cmd = " ".join(["python", "bench/compare_models.py", *sys.argv[1:]])
    for r in rows:
        r["command"] = cmd
    # Slices run at different times add up: keep earlier rows of every group this run did not plan.
    planned = {group_key(r) for r in base}
    rows = [r for r in previous_rows(args.fresh) if group_key(r) not in planned] + rows
    picked = picked_lrs(rows)
    agg = [a for a in aggregate(rows) if a["lr"] == picked[group_key(a)]]
    text = table(agg)
    sweep_text = sweep_table(rows, picked)
    print(text + ("\n" + sweep_text if sweep_text else ""))
    RESULTS.mkdir(parents=True, exist_ok=True)
    plots([r for r in rows if r.get("lr", DEFAULT_LR) == picked[group_key(r)]], agg)
    save_json_atomic(
        RESULTS / "compare.json",
        {"command": cmd, "machine": platform.platform(), "loadavg": load, "runs": rows, "aggregate": agg},
    )
    if not args.no_markdown:
        md = ROOT / "BENCHMARKS.md"
        body = md.read_text()
        commands = "\n".join(f"`{c}`  " for c in dict.fromkeys(r["command"] for r in rows))
        section = (
            f"{BEGIN}\n{commands}\n\n{BASE_EPOCHS} epochs (a model named _e<n>: n), batch {args.batch_size}, AdamW (lr per row: the "
            f"table's lr column; swept rows below), weight decay "
            f"{args.weight_decay}, {args.warmup} warm-up steps + cosine, precision {args.precision}, on `{args.data.name}`; "
            f"test split; mean ± std over seeds {sorted({r['seed'] for r in rows})} (the table's seeds column: how many each row has). Curves: bench/results/compare_curves.png; by incidence: "
            f"bench/results/compare_incidence.png.\n\n{text}\n{sweep_text}{END}"
        )
        if BEGIN in body and END in body:
            body = body[: body.index(BEGIN)] + section + body[body.index(END) + len(END) :]
        else:
            body += f"\n## Model comparison (synthetic benchmark)\n\n{section}\n"
        md.write_text(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
