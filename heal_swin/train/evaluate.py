"""Evaluation of a model file on a dataset split, on the sphere and on the fisheye image.

Segmentation: sphere mIoU over valid grid pixels (with and without void), per-class IoU, and flat
mIoU on the fisheye image restricted to the grid's footprint (the paper's protocol): sphere
models are back-projected, flat models are projected to the sphere. Depth: AbsRel, SqRel, RMSE,
RMSElog, delta < 1.25^k on both domains, and the Chamfer distance between the predicted and true
point clouds of the sphere pixels. Every metric is also reported per incidence-angle bin
(``*_by_incidence``: lens centre to rim, :mod:`heal_swin.train.incidence`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from heal_swin.data.classes import IGNORE_INDEX
from heal_swin.data.datasets import FisheyeDataset
from heal_swin.geometry import SphereProjector
from heal_swin.geometry.views import colorize_scalar, sphere_view
from heal_swin.inference import processing as contract
from heal_swin.io import save_image, save_json
from heal_swin.train.incidence import BinnedConfusion, BinnedDepthErrors, incidence_deg
from heal_swin.train.inference import Predictor
from heal_swin.train.metrics import ConfusionMatrix, DepthErrors, chamfer_distance, segmentation_summary

__all__ = ["evaluate", "write_report"]


def evaluate(
    predictor: Predictor,
    dataset: FisheyeDataset,
    limit: int | None = None,
    samples_for_report: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics of ``predictor`` on a flat-view ``dataset``; also returns a few samples for the report."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    seg = predictor.task == "segmentation"
    k = len(predictor.class_names)
    # One process evaluates everything: never wait for other (e.g. finished DDP) processes.
    sphere_cm = ConfusionMatrix(k, IGNORE_INDEX, sync_on_compute=False) if seg else None
    flat_cm = ConfusionMatrix(k, IGNORE_INDEX, sync_on_compute=False) if seg else None
    sphere_err, flat_err = (
        (DepthErrors(sync_on_compute=False), DepthErrors(sync_on_compute=False)) if not seg else (None, None)
    )
    chamfers: list[float] = []
    binned_sphere = BinnedConfusion(k, IGNORE_INDEX) if seg else BinnedDepthErrors()
    binned_flat = BinnedConfusion(k, IGNORE_INDEX) if seg else BinnedDepthErrors()
    sphere_angle = incidence_deg(predictor.grid.vectors())
    kept: list[dict[str, Any]] = []
    uncertainty = None  # an ensemble's disagreement map (heal_swin.train.ensemble), summarised on the sphere
    if getattr(predictor, "members", None):
        from heal_swin.train.ensemble import UncertaintySummary

        uncertainty = UncertaintySummary(predictor.task, IGNORE_INDEX)
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="evaluate", unit="img")
    for i in it:
        s = dataset.raw(i)
        cam = s["camera"]
        pred = predictor(s["image"], cam)
        proj = SphereProjector(cam, predictor.grid)
        flat_angle = incidence_deg(cam.pixel_rays())
        if seg:
            lab = s["label"]
            sph_lab = contract.labels_to_sphere(lab, proj, IGNORE_INDEX)
            sphere_cm.update(
                torch.from_numpy(pred.sphere.astype(np.int64)), torch.from_numpy(sph_lab.astype(np.int64))
            )
            flat_lab = np.where(pred.flat_valid, lab, IGNORE_INDEX).astype(np.int64)
            flat_cm.update(torch.from_numpy(pred.flat.astype(np.int64)), torch.from_numpy(flat_lab))
            binned_sphere.update(pred.sphere, sph_lab, sphere_angle)
            binned_flat.update(pred.flat, flat_lab, flat_angle)
            if uncertainty is not None:
                uncertainty.update(pred.sphere, sph_lab, pred.uncertainty_sphere)
        else:
            depth = s["depth"]
            sph_depth = contract.depth_to_sphere(depth, proj)
            sphere_err.update(
                torch.from_numpy(pred.sphere),
                torch.from_numpy(sph_depth),
                torch.from_numpy(proj.valid_mask.copy()),
            )
            flat_err.update(
                torch.from_numpy(pred.flat), torch.from_numpy(depth), torch.from_numpy(pred.flat_valid)
            )
            binned_sphere.update(pred.sphere, sph_depth, proj.valid_mask, sphere_angle)
            binned_flat.update(pred.flat, depth, pred.flat_valid, flat_angle)
            if uncertainty is not None:
                uncertainty.update(pred.sphere, sph_depth, pred.uncertainty_sphere)
            ok = np.isfinite(sph_depth) & np.isfinite(pred.sphere)
            rays = predictor.grid.vectors()[ok]
            chamfers.append(chamfer_distance(rays * pred.sphere[ok, None], rays * sph_depth[ok, None]))
        if len(kept) < samples_for_report:
            kept.append(
                {
                    "name": s["name"],
                    "image": s["image"],
                    "pred": pred,
                    "target": s["label"] if seg else s["depth"],
                }
            )
    if seg:
        result = {
            "task": "segmentation",
            "samples": n,
            "sphere": segmentation_summary(sphere_cm.compute(), predictor.class_names),
            "flat": segmentation_summary(flat_cm.compute(), predictor.class_names),
            "confusion_sphere": sphere_cm.compute().tolist(),
            "sphere_by_incidence": binned_sphere.summary(predictor.class_names),
            "flat_by_incidence": binned_flat.summary(predictor.class_names),
        }
    else:
        result = {
            "task": "depth",
            "samples": n,
            "sphere": sphere_err.compute(),
            "flat": flat_err.compute(),
            "chamfer_m": float(np.nanmean(chamfers)) if chamfers else float("nan"),
            "sphere_by_incidence": binned_sphere.summary(),
            "flat_by_incidence": binned_flat.summary(),
        }
    result["model"] = predictor.info()
    if uncertainty is not None:
        result["uncertainty"] = uncertainty.summary()
    result["_samples"] = kept
    return result


def write_report(result: dict[str, Any], predictor: Predictor, out: str | Path) -> Path:
    """metrics.json, summary.md, IoU bar chart, confusion matrix, overlays, Mollweide predictions."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = result.pop("_samples", [])
    save_json(out / "metrics.json", result)
    lines = [
        f"# Evaluation: {predictor.info()['model']} ({result['task']})",
        "",
        f"Samples: {result['samples']}",
        "",
    ]
    if result["task"] == "segmentation":
        sph, flat = result["sphere"], result["flat"]
        lines += ["| metric | sphere | fisheye (grid footprint) |", "|---|---|---|"]
        for key in ("miou", "miou_no_void", "pixel_accuracy", "majority_baseline_miou"):
            lines.append(f"| {key} | {sph[key]:.4f} | {flat[key]:.4f} |")
        lines += ["", "| class | IoU sphere | IoU fisheye |", "|---|---|---|"]
        for name in predictor.class_names:
            a, b = sph["per_class_iou"][name], flat["per_class_iou"][name]
            lines.append(
                f"| {name} | {'-' if a is None else f'{a:.4f}'} | {'-' if b is None else f'{b:.4f}'} |"
            )
        names = predictor.class_names
        vals = [sph["per_class_iou"][c] or 0.0 for c in names]
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.bar(
            names,
            vals,
            color=[tuple(np.array(c[::-1]) / 255) for c in predictor.class_colours],
            edgecolor="k",
        )
        ax.set_ylabel("IoU (sphere)")
        ax.set_ylim(0, 1)
        ax.set_title(f"mIoU {sph['miou']:.3f} (majority baseline {sph['majority_baseline_miou']:.3f})")
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
        fig.tight_layout()
        fig.savefig(out / "per_class_iou.png", dpi=100)
        plt.close(fig)
        cm = np.asarray(result["confusion_sphere"], dtype=np.float64)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(6, 5))
        im = ax.imshow(norm, cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        fig.colorbar(im)
        fig.tight_layout()
        fig.savefig(out / "confusion_matrix.png", dpi=100)
        plt.close(fig)
    else:
        lines += ["| metric | sphere | fisheye |", "|---|---|---|"]
        for key in result["sphere"]:
            lines.append(f"| {key} | {result['sphere'][key]:.4f} | {result['flat'][key]:.4f} |")
        lines += ["", f"Chamfer distance (sphere point clouds): {result['chamfer_m']:.3f} m"]
    key = "miou" if result["task"] == "segmentation" else "abs_rel"
    lines += [
        "",
        f"By incidence angle (lens centre to rim), {key}:",
        "",
        "| incidence | sphere | px | fisheye | px |",
        "|---|---|---|---|---|",
    ]
    for sb, fb in zip(result["sphere_by_incidence"], result["flat_by_incidence"]):
        lines.append(
            f"| {sb['bin']} | {sb.get(key, float('nan')):.3f} | {sb['pixels']} | {fb.get(key, float('nan')):.3f} | {fb['pixels']} |"
        )
    for s in samples:
        bgr = cv2.cvtColor(s["image"], cv2.COLOR_RGB2BGR)
        pred = s["pred"]
        if result["task"] == "segmentation":
            colour = predictor.colourise(pred.flat)
            overlay = np.where(pred.flat_valid[..., None], (0.5 * bgr + 0.5 * colour).astype(np.uint8), bgr)
            sphere_pic = sphere_view(
                predictor.colourise(np.where(pred.sphere_valid, pred.sphere, IGNORE_INDEX)),
                predictor.grid,
                "mollweide",
                width=800,
            )
        else:
            colour = colorize_scalar(np.log(pred.flat.reshape(-1)), pred.flat_valid.reshape(-1)).reshape(
                *pred.flat.shape, 3
            )
            overlay = np.concatenate([bgr, colour], axis=1)
            sphere_pic = sphere_view(
                colorize_scalar(np.log(pred.sphere), pred.sphere_valid),
                predictor.grid,
                "mollweide",
                width=800,
            )
        save_image(out / f"overlay_{s['name']}.png", overlay)
        save_image(out / f"sphere_{s['name']}.png", sphere_pic)
    lines += [
        "",
        "Files: metrics.json, per-class IoU bar chart, confusion matrix, overlays, Mollweide views of the sphere predictions.",
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return out
