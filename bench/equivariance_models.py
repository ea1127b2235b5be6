"""Equivariance of trained models and deep ensembles under exact rotations about the optical axis.

For each family/augmentation found under ``--runs`` (folders ``{family}_{aug}_s{seed}`` with a
``model.safetensors``, as ``bench/equivariance_train.sh`` writes them, or links to
``bench/compare_models.py`` runs; ``aug`` is ``flip`` or ``rot``/``rot90``/``rot180`` for rotation-augmented members), measures on validation
images the error of f(R x) vs R f(x) (:mod:`heal_swin.train.equivariance`; sphere: k x 90°,
k = 1, 2, 3, averaged; flat: 180°), for every single member (mean ± std) and for the ensembles of
the first 1..N members, plus the mIoU of each on the same images (on the model's domain: the sphere
grid, or the flat model's input image). Prints a table, writes
``bench/results/equivariance_models.json`` and a plot.

    nice -n 10 python bench/equivariance_models.py --runs /work/equiv_runs --data-root /work/data/synth400
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from heal_swin.data.classes import IGNORE_INDEX
from heal_swin.data.datasets import FisheyeDataset
from heal_swin.inference import processing as contract
from heal_swin.io import save_json
from heal_swin.train.equivariance import ensemble_forward, equivariance_error, rotation_of, rotations_for
from heal_swin.train.inference import Predictor
from heal_swin.train.metrics import ConfusionMatrix, segmentation_summary

RUN = re.compile(r"^(?P<family>.+)_(?P<aug>flip|rot\d*)_s(?P<seed>\d+)$")  # rot: the domain's own turns


def _members(runs: Path) -> dict[tuple[str, str], list[Path]]:
    found: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for d in sorted(runs.iterdir()):
        m = RUN.match(d.name)
        if m and (d / "model.safetensors").is_file():
            found.setdefault((m["family"], m["aug"]), []).append((int(m["seed"]), d / "model.safetensors"))
    return {k: [p for _, p in sorted(v)] for k, v in sorted(found.items())}


def _inputs(p: Predictor, samples: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Model inputs (B, 3, N) or (B, 3, h, w), valid masks and labels on the model's own domain.

    Sphere: grid pixels that see the image, labels sampled onto the grid. Flat: every pixel of the
    model's input image (the 180° turn permutes all of them), labels resized (nearest).
    """
    xs, valid, labels = [], [], []
    for s in samples:
        x, proj = p.model_input(s["image"], s["camera"])
        xs.append(torch.from_numpy(x))
        if p.kind == "flat":
            h, w = x.shape[1:]
            valid.append(torch.ones((h, w), dtype=torch.bool))
            lab = contract.resize_nearest(s["label"], (w, h))
        else:
            valid.append(torch.from_numpy(proj.valid_mask.copy()))
            lab = contract.labels_to_sphere(s["label"], proj, IGNORE_INDEX)
        labels.append(torch.from_numpy(lab.astype(np.int64)))
    return torch.stack(xs), torch.stack(valid), torch.stack(labels)


def _measure(preds: list[Predictor], x: torch.Tensor, valid: torch.Tensor, labels: torch.Tensor) -> dict:
    first = preds[0]
    f = ensemble_forward([p.model for p in preds], first.task)
    ks = rotations_for(first.kind)
    per_k = {
        k: equivariance_error(f, x, rotation_of(first.kind, k, first.grid), first.task, valid) for k in ks
    }
    out = {key: float(np.mean([e[key] for e in per_k.values()])) for key in per_k[ks[0]]}
    out["per_k"] = {str(k): e for k, e in per_k.items()}
    probs = f(x)
    cm = ConfusionMatrix(len(first.class_names), IGNORE_INDEX, sync_on_compute=False)
    cm.update(probs.argmax(1)[valid], labels[valid])
    out["sphere_miou"] = segmentation_summary(cm.compute(), first.class_names)["miou"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--images", type=int, default=16, help="evenly spaced images of the split")
    ap.add_argument("--out", type=Path, default=Path("bench/results/equivariance_models.json"))
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    load = Path("/proc/loadavg").read_text().split()[:3]
    ds = FisheyeDataset(args.data_root, spec="synthetic", split=args.split, view="flat", mean=None, std=None)
    picks = np.linspace(0, len(ds) - 1, min(args.images, len(ds))).round().astype(int)
    samples = [ds.raw(int(i)) for i in picks]
    rows = []
    t0 = time.time()
    for (family, aug), paths in _members(args.runs).items():
        preds = [Predictor(p) for p in paths]
        if preds[0].task != "segmentation":
            raise SystemExit(f"{paths[0]}: this benchmark measures segmentation models, got {preds[0].task}")
        x, valid, labels = _inputs(preds[0], samples)  # members of one recipe share the preprocessing
        singles = [_measure([p], x, valid, labels) for p in preds]
        for key in ("argmax_changed", "prob_tv", "sphere_miou"):
            vals = [s[key] for s in singles]
            rows.append(
                {"family": family, "aug": aug, "members": "single", "metric": key, "mean": float(np.mean(vals)), "std": float(np.std(vals)), "n": len(vals)}
            )  # fmt: skip
        for n in range(1, len(preds) + 1):
            e = _measure(preds[:n], x, valid, labels)
            rows.append({"family": family, "aug": aug, "members": n, **e})
    header = f"{'model':10s} {'aug':6s} {'members':>8s} {'argmax changed':>15s} {'prob TV':>9s} {'mIoU':>12s}"
    print(
        f"equivariance under exact turns (sphere: k x 90°, flat: 180°), {len(samples)} {args.split} images; load average {' '.join(load)}"
    )
    print(header)
    for r in rows:
        if r["members"] == "single":
            continue
        print(f"{r['family']:10s} {r['aug']:6s} {r['members']:>8} {r['argmax_changed']:15.4f} {r['prob_tv']:9.4f} {r['sphere_miou']:12.4f}")  # fmt: skip
    for r in rows:
        if r["members"] == "single":
            print(
                f"{r['family']:10s} {r['aug']:6s} single x{r['n']} {r['metric']:>15s} {r['mean']:.4f} ± {r['std']:.4f}"
            )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    ).stdout.strip()
    save_json(
        args.out,
        {"images": len(samples), "split": args.split, "data_root": str(args.data_root), "runs": str(args.runs),
         "load_average": load, "commit": commit, "seconds": round(time.time() - t0, 1), "rows": rows},
    )  # fmt: skip
    _plot(rows, args.out.with_suffix(".png"))
    print(f"-> {args.out}")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for family, aug in sorted({(r["family"], r["aug"]) for r in rows}):
        rs = [r for r in rows if r["family"] == family and r["aug"] == aug and r["members"] != "single"]
        n = [r["members"] for r in rs]
        for ax, key in zip(axes, ("argmax_changed", "prob_tv")):
            ax.plot(n, [r[key] for r in rs], "s--" if aug == "flip" else "o-", label=f"{family} {aug}")
            ax.set_xlabel("ensemble members")
            ax.set_ylabel(key.replace("_", " "))
    most = max(r["members"] for r in rows if r["members"] != "single")
    for ax in axes:
        ax.set_xticks(range(1, most + 1))
        # the flat model's errors are 10-100x HEAL-SWIN's and S2CNN's are 0: log scale, linear near 0
        ax.set_yscale("symlog", linthresh=1e-4)
    axes[0].legend(fontsize=8)
    fig.suptitle("f(Rx) vs R f(x), R an exact turn about the optical axis (sphere: k x 90°, flat: 180°)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
