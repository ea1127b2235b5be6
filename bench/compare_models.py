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
  footprint), at the fisheye image's aspect ratio, rounded to what the Swin-UNet accepts. The flat
  image is downsized with INTER_AREA (each pixel the mean of its area); the sphere models sample the
  image bilinearly at each grid pixel's centre (aliased where the grid is coarser than the image), or,
  with ``--resample area``, take the mean over each grid pixel's footprint as well (runs named
  ``<model>_area``; the flat runs are the same either way).
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
this invocation does not score again are kept (``--fresh`` drops them), so slices run at different times add
up to one report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the protocol and report modules beside this file
from compare_protocol import (
    BASE_EPOCHS,
    DEFAULT_LR,
    DEPTH_KEYS,
    FAMILIES,
    SEG_KEYS,
    flattened,
    group_key,
    merge_runs,
    overrides,
    picked_lrs,
    plan,
    run_name,
    val_curve,
)
from compare_report import RESULTS, aggregate, plots, sweep_table, table, write_markdown

ROOT = Path(__file__).resolve().parents[1]


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
    ap.add_argument(
        "--resample",
        choices=["bilinear", "area"],
        default="bilinear",
        help="image -> grid for the sphere models (area: footprint means, like the flat image's INTER_AREA); "
        "area runs are named <model>_area",
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
    rows = merge_runs(previous_rows(args.fresh), rows)  # slices run at different times add up
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
        write_markdown(rows, args, text, sweep_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
