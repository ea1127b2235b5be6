"""Readers of one sample's files: image, label, depth, calibration, dataset card (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from heal_swin.data.classes import ClassTable
from heal_swin.data.spec import DatasetError, FisheyeDatasetSpec
from heal_swin.geometry.camera import FisheyeCamera

__all__ = ["read_calibration", "read_card", "read_depth", "read_image", "read_label", "read_raw_label"]


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 **RGB** image."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_raw_label(path: str | Path) -> np.ndarray:
    """(H, W) uint8 raw label ids.

    Label PNGs are single-channel ids. A 3-channel file with equal channels uses the first; one with
    different channels is read as CARLA's raw encoding (id in the red channel).
    """
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DatasetError(f"{path}: cannot decode label image (corrupt or not an image)")
    if lab.ndim == 3:
        same = np.array_equal(lab[..., 0], lab[..., 1]) and np.array_equal(lab[..., 0], lab[..., 2])
        lab = np.ascontiguousarray(lab[..., 0] if same else lab[..., 2])
    if lab.dtype != np.uint8:
        if lab.max(initial=0) > 255:
            raise DatasetError(f"{path}: label ids above 255 (dtype {lab.dtype})")
        lab = lab.astype(np.uint8)
    return lab


def read_label(path: str | Path, classes: ClassTable) -> np.ndarray:
    """(H, W) uint8 class ids of ``classes`` (unknown raw ids -> IGNORE_INDEX)."""
    return classes.map_labels(read_raw_label(path))


def read_depth(path: str | Path, spec: FisheyeDatasetSpec) -> np.ndarray:
    """(H, W) float32 metres along the ray; sky / invalid -> ``inf`` (SynWoodScape's 1000 converted)."""
    try:
        d = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: cannot read depth .npy ({e})") from None
    if d.ndim == 3 and d.shape[-1] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise DatasetError(f"{path}: depth must be (H, W), got shape {d.shape}")
    d = d.astype(np.float32, copy=True)
    bad = ~np.isfinite(d) | (d <= 0)
    if spec.depth_sky is not None:
        bad |= d >= spec.depth_sky
    d[bad] = np.inf
    return d


def read_calibration(path: str | Path) -> FisheyeCamera:
    return FisheyeCamera.from_json(path)


def read_card(root: str | Path) -> dict | None:
    p = Path(root) / "dataset_card.json"
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{p}: invalid JSON ({e.msg} at line {e.lineno})") from None
