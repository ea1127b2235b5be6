"""One vehicle-sphere model vs four per-camera models of the same size, on the same synthetic frames.

    nice -n 10 python bench/compare_surround.py --data data/synthetic --nside 32 --epochs 12 [--families heal_swin s2cnn]

For each model family (HEAL-SWIN tiny, S2CNN tiny) it trains, with the same recipe settings, epochs
and batch size:

- *surround*: one model on the vehicle sphere (``train/synthetic_surround_<family>.yaml``: the four
  cameras of a frame fused, 12 base pixels), one sample per training frame;
- *per-camera*: four models of the same architecture and size, one per camera (FV, MVL, MVR, RV),
  each on its camera's images of the same training frames (8 base pixels, the camera's sphere), so
  every model takes one step per training frame and batch.

Evaluation on the test frames (``heal_swin.inference.surround`` and the per-camera ``Predictor``,
the same paths predict/serve use):

- ``sphere``: mIoU on the vehicle sphere against the fused labels (best camera). The per-camera
  models enter through their back-projected masks, sampled onto the vehicle sphere from the
  camera that sees each direction best.
- ``per camera``: mIoU on each fisheye image after back-projection (all four images pooled), on the
  pixels where both approaches predict (the per-camera grid covers ~93% of an image).
- ``overlap``: directions two or more cameras see; for every pair of cameras, each camera's mask
  is sampled onto the vehicle sphere and the two are compared: how often they disagree (per-camera
  models vs the surround model's back-projected masks, and the ground-truth labels of the two
  images as the floor set by parallax and resampling), and the accuracy of each in the overlap.

Prints a table, writes ``bench/results/compare_surround.json`` (with the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {"heal_swin": "HEAL-SWIN tiny", "s2cnn": "S2CNN tiny"}


def confusion(pred: np.ndarray, target: np.ndarray, k: int, keep: np.ndarray) -> np.ndarray:
    """(k, k) counts of (target, pred) over ``keep``."""
    t, p = target[keep].astype(np.int64), pred[keep].astype(np.int64)
    ok = (t < k) & (p < k)
    return np.bincount(t[ok] * k + p[ok], minlength=k * k).reshape(k, k)


def on_sphere(images: dict[str, np.ndarray], sphere: Any, cameras: tuple[str, ...]) -> np.ndarray:
    """(C, N) each camera's image sampled (nearest) at the vehicle-sphere directions; 255 where it does not see."""
    return np.stack(
        [proj.to_sphere(images[c], mode="nearest", fill=255) for c, proj in zip(cameras, sphere.projectors)]
    )


def train_run(recipe: Path, name: str, args: argparse.Namespace, extra: list[str]) -> tuple[Path, float]:
    from heal_swin.train.config import load_config
    from heal_swin.train.pipeline import train

    over = [f"data.root={args.data}", f"data.nside={args.nside}", f"trainer.max_epochs={args.epochs}",
            f"data.batch_size={args.batch_size}", f"trainer.out_dir={args.out}", f"trainer.name={name}",
            "trainer.progress_bar=false", "data.num_workers=0", *extra]  # fmt: skip
    cfg = load_config(recipe, over)
    if (cfg.run_dir / "model.safetensors").exists():
        print(f"{name}: reusing {cfg.run_dir}", flush=True)
        return cfg.run_dir, float(
            json.loads((cfg.run_dir / "metrics.json").read_text()).get("train_seconds", float("nan"))
        )
    print(f"{name}: training", flush=True)
    summary = train(cfg, resume=(cfg.run_dir / "checkpoints" / "last.ckpt").exists())
    return cfg.run_dir, float(summary["train_seconds"])


def evaluate_family(family: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from heal_swin.data.surround import SURROUND_CAMERAS, SurroundDataset
    from heal_swin.inference.processing import NO_CLASS
    from heal_swin.inference.surround import surround_classes, surround_masks
    from heal_swin.models.checkpoint import load_model
    from heal_swin.train.inference import Predictor
    from heal_swin.train.metrics import segmentation_summary

    recipe = ROOT / "train" / f"synthetic_surround_{family}.yaml"
    run, t_sur = train_run(recipe, f"cmp_surround_{family}", args, [])
    per_cam: dict[str, Path] = {}
    t_cam = 0.0
    for cam in SURROUND_CAMERAS:
        per_cam[cam], t = train_run(
            recipe,
            f"cmp_{family}_{cam}",
            args,
            ["data.surround=false", "data.base_pixels=[0,1,2,3,4,5,6,7]", f"data.cameras=[{cam}]"],
        )
        t_cam += t

    model, _ = load_model(run / "model.safetensors")
    model.eval()
    predictors = {cam: Predictor(per_cam[cam] / "model.safetensors") for cam in SURROUND_CAMERAS}
    ds = SurroundDataset(args.data, spec="synthetic", split="test", nside=args.nside)
    names = list(ds.classes.names)
    k = len(names)

    def run_model(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    cm = {
        key: np.zeros((k, k), np.int64)
        for key in ("sphere_surround", "sphere_percam", "image_surround", "image_percam")
    }
    pairs = {
        "pairs": 0,
        "percam": 0,
        "surround": 0,
        "labels": 0,
        "acc_percam": 0,
        "acc_surround": 0,
        "directions": 0,
    }
    t0 = time.perf_counter()
    for i in range(len(ds)):
        _, raws = ds.raw_frame(i)
        sphere = ds.sphere_of(raws)
        fused = ds.fuse(raws)
        label, seen, src = fused["label"], fused["valid"], fused["source"]
        # surround model: the one inference path, then a mask per camera by back-projection
        classes = surround_classes([s["image"] for s in raws], sphere, run_model, ds.mean, ds.std)
        masks_sur = surround_masks(classes, sphere)
        # per-camera models: each camera's own prediction on its image
        masks_cam = {}
        for cam, s in zip(ds.cameras, raws):
            p = predictors[cam](s["image"], s["camera"])
            masks_cam[cam] = np.where(p.flat_valid, p.flat, NO_CLASS).astype(np.uint8)
        # every camera's masks (and labels) sampled onto the vehicle sphere, nearest
        sph_cam = on_sphere(masks_cam, sphere, ds.cameras)
        sph_sur = on_sphere(masks_sur, sphere, ds.cameras)
        sph_lab = on_sphere({c: s["label"] for c, s in zip(ds.cameras, raws)}, sphere, ds.cameras)
        best_cam = np.take_along_axis(sph_cam, np.maximum(src, 0)[None], 0)[0]
        both = seen & (best_cam != NO_CLASS) & (classes != NO_CLASS)
        cm["sphere_surround"] += confusion(classes, label, k, both)
        cm["sphere_percam"] += confusion(best_cam, label, k, both)
        for cam, s in zip(ds.cameras, raws):
            keep = (masks_cam[cam] != NO_CLASS) & (masks_sur[cam] != NO_CLASS)
            cm["image_surround"] += confusion(masks_sur[cam], s["label"], k, keep)
            cm["image_percam"] += confusion(masks_cam[cam], s["label"], k, keep)
        # overlaps: every pair of cameras with a positive blend weight at a direction
        w = sphere.maps.weights > 0
        multi = seen & (w.sum(0) >= 2)
        pairs["directions"] += int(multi.sum())
        for a in range(len(ds.cameras)):
            for b in range(a + 1, len(ds.cameras)):
                sel = (
                    multi
                    & w[a]
                    & w[b]
                    & (sph_cam[a] != NO_CLASS)
                    & (sph_cam[b] != NO_CLASS)
                    & (sph_lab[a] < k)
                    & (sph_lab[b] < k)
                )
                pairs["pairs"] += int(sel.sum())
                pairs["percam"] += int((sph_cam[a][sel] != sph_cam[b][sel]).sum())
                pairs["surround"] += int((sph_sur[a][sel] != sph_sur[b][sel]).sum())
                pairs["labels"] += int((sph_lab[a][sel] != sph_lab[b][sel]).sum())
                pairs["acc_percam"] += int(
                    (sph_cam[a][sel] == label[sel]).sum() + (sph_cam[b][sel] == label[sel]).sum()
                )
                pairs["acc_surround"] += int(2 * (classes[sel] == label[sel]).sum())
    eval_s = time.perf_counter() - t0
    summ = {key: segmentation_summary(c, names) for key, c in cm.items()}
    n = max(pairs["pairs"], 1)
    return {
        "family": FAMILIES[family],
        "params_surround": sum(p.numel() for p in model.parameters()),
        "params_per_camera": sum(p.numel() for p in predictors["FV"].model.parameters()),
        "test_frames": len(ds),
        "train_s_surround": t_sur,
        "train_s_per_camera_total": t_cam,
        "eval_s": eval_s,
        "miou": {key: s["miou"] for key, s in summ.items()},
        "miou_no_void": {key: s.get("miou_no_void") for key, s in summ.items()},
        "pixel_accuracy": {key: s["pixel_accuracy"] for key, s in summ.items()},
        "overlap": {
            "directions": pairs["directions"],
            "camera_pairs": pairs["pairs"],
            "disagree_per_camera": pairs["percam"] / n,
            "disagree_surround": pairs["surround"] / n,
            "disagree_labels": pairs["labels"] / n,
            "accuracy_per_camera": pairs["acc_percam"] / (2 * n),
            "accuracy_surround": pairs["acc_surround"] / (2 * n),
        },
        "per_class_iou_sphere": {
            key: summ[key]["per_class_iou"] for key in ("sphere_surround", "sphere_percam")
        },
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| family | model | params | sphere mIoU | per-camera mIoU (fisheye) | overlap: pairs disagreeing | overlap accuracy | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o = r["overlap"]
        lines.append(
            f"| {r['family']} | surround (1 model, vehicle sphere) | {r['params_surround']:,} | {r['miou']['sphere_surround']:.3f} | "
            f"{r['miou']['image_surround']:.3f} | {o['disagree_surround']:.3f} | {o['accuracy_surround']:.3f} | {r['train_s_surround']:.0f} |"
        )
        lines.append(
            f"| {r['family']} | per-camera (4 models) | 4 x {r['params_per_camera']:,} | {r['miou']['sphere_percam']:.3f} | "
            f"{r['miou']['image_percam']:.3f} | {o['disagree_per_camera']:.3f} | {o['accuracy_per_camera']:.3f} | {r['train_s_per_camera_total']:.0f} |"
        )
        lines.append(
            f"| {r['family']} | ground-truth labels of the two images | | | | {o['disagree_labels']:.3f} | | |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "synthetic")
    ap.add_argument("--nside", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "compare_surround")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "compare_surround.json")
    args = ap.parse_args()
    if not (args.data / "dataset_card.json").exists():
        raise SystemExit(
            f"{args.data}: no synthetic dataset; run: heal-swin data synth --out {args.data} --scenes 60 --width 320 --height 242"
        )
    load_start = os.getloadavg()
    rows = [evaluate_family(f, args) for f in args.families]
    result = {
        "command": "python bench/compare_surround.py "
        + " ".join(
            [
                f"--data {args.data}",
                f"--nside {args.nside}",
                f"--epochs {args.epochs}",
                f"--batch-size {args.batch_size}",
                "--families",
                *args.families,
            ]
        ),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    from heal_swin.io import save_json

    # families may be run by separate processes: keep the other families' rows of an earlier run
    if args.results.exists():
        old = json.loads(args.results.read_text())
        done = {r["family"] for r in rows}
        kept = [r for r in old.get("rows", []) if r["family"] not in done]
        if kept:
            result["rows"] = kept + rows
            result["earlier_runs"] = [
                {k: old[k] for k in ("command", "load_start", "load_end") if k in old}
            ] + old.get("earlier_runs", [])
    save_json(args.results, result)
    print(table(result["rows"]))
    print(f"load average start {load_start}, end {result['load_end']}; results: {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
