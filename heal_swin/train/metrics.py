"""Evaluation metrics: segmentation IoU from a confusion matrix, depth errors, Chamfer distance.

Accumulators are torchmetrics ``Metric``s (their states sum across DDP processes); the formulas
are plain functions of the accumulated sums so they can be checked by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix

__all__ = [
    "DEPTH_KEYS",
    "ConfusionMatrix",
    "DepthErrors",
    "chamfer_distance",
    "iou_from_confusion",
    "segmentation_summary",
]


class ConfusionMatrix(MulticlassConfusionMatrix):
    """``(K, K)`` counts, rows = target, columns = prediction; ``ignore_index`` pixels skipped.

    ``update(preds, target)`` takes class ids (any shape) or logits ``(B, K, ...)``.
    """

    def __init__(
        self, num_classes: int, ignore_index: int | None = None, sync_on_compute: bool = True
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            ignore_index=ignore_index,
            normalize=None,
            validate_args=False,
            sync_on_compute=sync_on_compute,
        )


def iou_from_confusion(
    confusion: torch.Tensor | np.ndarray, exclude: Sequence[int] = ()
) -> tuple[np.ndarray, float]:
    """Per-class IoU ``TP / (TP + FP + FN)`` and their mean.

    Classes that occur neither in the target nor in the prediction have IoU NaN and are left out
    of the mean; ``exclude`` (e.g. ``(0,)`` for void) is left out of the mean as well, and its
    pixels are not counted as false positives of the other classes.
    """
    cm = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.float64)
    keep = np.ones(len(cm), dtype=bool)
    keep[list(exclude)] = False
    if exclude:
        cm = cm.copy()
        cm[~keep, :] = 0  # pixels whose target is excluded do not count against any class
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(denom > 0, tp / denom, np.nan)
    iou[~keep] = np.nan
    sel = iou[keep]
    miou = float(np.nanmean(sel)) if np.any(~np.isnan(sel)) else float("nan")
    return iou, miou


def segmentation_summary(
    confusion: torch.Tensor | np.ndarray, class_names: Sequence[str], void_class: int | None = 0
) -> dict:
    """mIoU with and without the void class, per-class IoU, pixel accuracy, majority-class baseline."""
    cm = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.float64)
    iou, miou = iou_from_confusion(cm)
    out = {
        "miou": miou,
        "pixel_accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "per_class_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou)},
        "pixels": int(cm.sum()),
    }
    if void_class is not None:
        out["miou_no_void"] = iou_from_confusion(cm, exclude=(void_class,))[1]
    # What predicting the most frequent class everywhere would score: the baseline to beat.
    majority = int(np.argmax(cm.sum(1)))
    base = np.zeros_like(cm)
    base[:, majority] = cm.sum(1)
    out["majority_class"] = class_names[majority]
    out["majority_baseline_miou"] = iou_from_confusion(base)[1]
    if void_class is not None:
        out["majority_baseline_miou_no_void"] = iou_from_confusion(base, exclude=(void_class,))[1]
    return out


DEPTH_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


class DepthErrors(Metric):
    """The standard depth errors over valid pixels (pixel-pooled over batches and DDP processes), metres.

    AbsRel = mean |p - t| / t, SqRel = mean (p - t)^2 / t, RMSE, RMSElog = RMS of log p - log t,
    delta_k = fraction with max(p/t, t/p) < 1.25^k. Invalid: ``~valid``, a non-finite or
    non-positive target, or a non-finite prediction. ``compute()`` returns :data:`DEPTH_KEYS`.
    """

    full_state_update = False

    def __init__(self, sync_on_compute: bool = True) -> None:
        super().__init__(sync_on_compute=sync_on_compute)
        for name in ("n", "abs_rel", "sq_rel", "sq", "sq_log", "d1", "d2", "d3"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        t = target.double()
        p = pred.double()
        ok = torch.isfinite(t) & (t > 0) & torch.isfinite(p)
        if valid is not None:
            ok &= valid.bool()
        t, p = t[ok], p[ok].clamp_min(1e-6)
        ratio = torch.maximum(p / t, t / p)
        self.n += t.numel()
        self.abs_rel += ((p - t).abs() / t).sum()
        self.sq_rel += ((p - t) ** 2 / t).sum()
        self.sq += ((p - t) ** 2).sum()
        self.sq_log += ((p.log() - t.log()) ** 2).sum()
        self.d1 += (ratio < 1.25).sum()
        self.d2 += (ratio < 1.25**2).sum()
        self.d3 += (ratio < 1.25**3).sum()

    def compute(self) -> dict[str, float]:
        n = max(float(self.n), 1.0)
        return {
            "abs_rel": float(self.abs_rel) / n,
            "sq_rel": float(self.sq_rel) / n,
            "rmse": (float(self.sq) / n) ** 0.5,
            "rmse_log": (float(self.sq_log) / n) ** 0.5,
            "delta1": float(self.d1) / n,
            "delta2": float(self.d2) / n,
            "delta3": float(self.d3) / n,
        }


def chamfer_distance(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Symmetric Chamfer distance (metres): mean nearest-neighbour distance a->b plus b->a, halved.

    KD-trees on the CPU (scipy), so it scales to whole images' point clouds.
    """
    from scipy.spatial import cKDTree

    a = np.asarray(points_a, dtype=np.float64).reshape(-1, 3)
    b = np.asarray(points_b, dtype=np.float64).reshape(-1, 3)
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    da, _ = cKDTree(b).query(a, workers=-1)
    db, _ = cKDTree(a).query(b, workers=-1)
    return 0.5 * (float(da.mean()) + float(db.mean()))
