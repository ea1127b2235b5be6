"""Metrics binned by incidence angle: lens centre vs rim, where a fisheye lens distorts most.

The incidence angle of a direction is its angle to the optical axis, in degrees: for a sphere pixel
``arccos(z)`` of its HEALPix vector (the camera sphere's pole is the optical axis), for a fisheye
pixel the same of its unprojected ray. Bins are half-open ``[lo, hi)`` over ``INCIDENCE_EDGES_DEG``;
a 190° lens reaches ~95°, so the last bin holds the rim beyond 90°.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from heal_swin.train.metrics import DepthErrors, segmentation_summary

__all__ = ["INCIDENCE_EDGES_DEG", "BinnedConfusion", "BinnedDepthErrors", "incidence_deg"]

INCIDENCE_EDGES_DEG: tuple[float, ...] = (0.0, 30.0, 60.0, 75.0, 90.0, 180.0)


def incidence_deg(rays: np.ndarray) -> np.ndarray:
    """Angle (degrees) between rays ``(..., 3)`` (any length) and the optical axis +z."""
    rays = np.asarray(rays, dtype=np.float64)
    z = rays[..., 2] / np.maximum(np.linalg.norm(rays, axis=-1), 1e-300)
    return np.degrees(np.arccos(np.clip(z, -1.0, 1.0)))


def _bins(angle_deg: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index per angle, ``-1`` outside ``[edges[0], edges[-1])``.

    Angles are rounded to 1e-9° first: whole HEALPix rings lie exactly on an edge (at nside 32 the
    ring with z = 0.5, i.e. 60°), and without it the last bit of arccos, which differs between CPUs,
    decided their bin.
    """
    b = np.digitize(np.round(angle_deg, 9), edges) - 1
    return np.where((b >= 0) & (b < len(edges) - 1), b, -1)


def _label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}°" if hi < 180 else f">={lo:g}°"


class BinnedConfusion:
    """One ``(K, K)`` confusion matrix (rows target, columns prediction) per incidence bin."""

    def __init__(
        self, num_classes: int, ignore_index: int, edges: Sequence[float] = INCIDENCE_EDGES_DEG
    ) -> None:
        self.k, self.ignore, self.edges = num_classes, ignore_index, tuple(edges)
        self.counts = np.zeros((len(self.edges) - 1, num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray, angle_deg: np.ndarray) -> None:
        """``pred``, ``target`` class ids and ``angle_deg`` of the same shape."""
        pred, target = np.asarray(pred).ravel().astype(np.int64), np.asarray(target).ravel().astype(np.int64)
        b = _bins(np.asarray(angle_deg).ravel(), self.edges)
        ok = (
            (b >= 0)
            & (target != self.ignore)
            & (target >= 0)
            & (target < self.k)
            & (pred >= 0)
            & (pred < self.k)
        )
        flat = (b[ok] * self.k + target[ok]) * self.k + pred[ok]
        self.counts += np.bincount(flat, minlength=self.counts.size).reshape(self.counts.shape)

    def summary(self, class_names: Sequence[str]) -> list[dict]:
        """Per bin: its range, pixel count, mIoU (with and without void) and per-class IoU."""
        out = []
        for i in range(len(self.edges) - 1):
            s = segmentation_summary(self.counts[i], class_names)
            out.append(
                {
                    "bin": _label(self.edges[i], self.edges[i + 1]),
                    "lo_deg": self.edges[i],
                    "hi_deg": self.edges[i + 1],
                    "pixels": s["pixels"],
                    "miou": s["miou"],
                    "miou_no_void": s.get("miou_no_void"),
                    "per_class_iou": s["per_class_iou"],
                }
            )
        return out


class BinnedDepthErrors:
    """``DepthErrors`` per incidence bin."""

    def __init__(self, edges: Sequence[float] = INCIDENCE_EDGES_DEG) -> None:
        self.edges = tuple(edges)
        self.errors = [DepthErrors(sync_on_compute=False) for _ in range(len(self.edges) - 1)]
        self.pixels = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray, valid: np.ndarray, angle_deg: np.ndarray) -> None:
        """Metres ``pred``, ``target`` and a boolean ``valid`` mask, all of the angles' shape."""
        b = _bins(np.asarray(angle_deg).ravel(), self.edges)
        p, t = np.asarray(pred, np.float32).ravel(), np.asarray(target, np.float32).ravel()
        v = np.asarray(valid, bool).ravel() & np.isfinite(t) & (t > 0)
        for i, err in enumerate(self.errors):
            sel = v & (b == i)
            if sel.any():
                err.update(
                    torch.from_numpy(p[sel]),
                    torch.from_numpy(t[sel]),
                    torch.ones(int(sel.sum()), dtype=torch.bool),
                )
                self.pixels[i] += int(sel.sum())

    def summary(self) -> list[dict]:
        out = []
        for i, err in enumerate(self.errors):
            row = {
                "bin": _label(self.edges[i], self.edges[i + 1]),
                "lo_deg": self.edges[i],
                "hi_deg": self.edges[i + 1],
                "pixels": int(self.pixels[i]),
            }
            row.update(err.compute() if self.pixels[i] else {})
            out.append(row)
        return out
