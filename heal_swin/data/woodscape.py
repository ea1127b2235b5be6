"""WoodScape (valeoai/WoodScape): 10 classes, per-image calibration, 3-pixel green strips.

The layout, split handling and validation live in :mod:`heal_swin.data.layout` (shared with
SynWoodScape and the synthetic benchmark); this module holds what is WoodScape's own:

- classes 0 void, 1 road, 2 lanemarks, 3 curb, 4 person, 5 rider, 6 vehicles, 7 bicycle,
  8 motorcycle, 9 traffic_sign with the official BGR colours (:data:`WOODSCAPE_CLASSES`);
- the green strips: 3 rows at the top and bottom of every image, labelled void. Datasets take
  ``strips="keep" | "ignore" | "crop"`` (see :func:`apply_strips`);
- the official OmniDet ``train.txt`` / ``val.txt`` at the root (or ``ROOT/splits/``) when present,
  otherwise a seeded split by frame number;
- the nested folders of the released zips (``rgb_images/rgb_images``, ...) are found automatically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.data.classes import IGNORE_INDEX, WOODSCAPE_CLASSES
from heal_swin.data.layout import WOODSCAPE, DatasetIndex, scan
from heal_swin.geometry.camera import FisheyeCamera

__all__ = ["STRIP_ROWS", "WOODSCAPE", "WOODSCAPE_CLASSES", "apply_strips", "crop_camera", "scan_woodscape"]

STRIP_ROWS = 3


def crop_camera(camera: FisheyeCamera, rows: int) -> FisheyeCamera:
    """The calibration of the image with ``rows`` rows removed at the top and at the bottom.

    A symmetric crop keeps the image centre, so ``cy_offset`` is unchanged; only the height shrinks.
    """
    d = camera.to_dict()
    d["intrinsic"]["height"] = float(camera.height - 2 * rows)
    out = FisheyeCamera.from_dict(d, source=camera.source)
    return out


def apply_strips(sample: dict[str, Any], mode: str, rows: int = STRIP_ROWS) -> dict[str, Any]:
    """Handle the green strips of a raw sample dict (``image``, ``label``, ``depth``, ``camera``).

    ``keep``: unchanged (labels there are void); ``ignore``: label ``IGNORE_INDEX`` in the strips;
    ``crop``: remove the rows from every array and adjust the calibration (:func:`crop_camera`).
    """
    if mode == "keep" or rows <= 0:
        return sample
    if mode == "ignore":
        if sample.get("label") is not None:
            lab = sample["label"].copy()
            lab[:rows] = IGNORE_INDEX
            lab[-rows:] = IGNORE_INDEX
            sample["label"] = lab
        return sample
    if mode == "crop":
        for k in ("image", "label", "depth"):
            if sample.get(k) is not None:
                sample[k] = np.ascontiguousarray(sample[k][rows:-rows])
        sample["camera"] = crop_camera(sample["camera"], rows)
        return sample
    raise ValueError(f"strips: expected keep, ignore or crop, got {mode!r}")


def scan_woodscape(root: str | Path, split: str = "all", **kwargs: Any) -> DatasetIndex:
    """Index a WoodScape root (see :func:`heal_swin.data.layout.scan` for the arguments)."""
    return scan(root, WOODSCAPE, split=split, **kwargs)
