"""Torch datasets over the WoodScape layout (WoodScape, SynWoodScape, the synthetic benchmark).

One class, :class:`FisheyeDataset`, two views:

``view="flat"`` — per sample a dict (``default_collate`` works):
    ``image``        float32 (3, H, W), RGB normalised with ``mean``/``std`` (ImageNet by default)
    ``label``        int64 (H, W) class ids, ``IGNORE_INDEX`` (255) for unknown ids / ignored strips
    ``depth``        float32 (H, W) metres along the ray, ``inf`` = invalid (only if the dataset has depth)
    ``calibration``  str: the sample's calibration as JSON (``FisheyeCamera.from_json(json.loads(s))``)
    ``camera``       str camera name (FV, RV, MVL, MVR); ``name`` str sample id (``NNNNN_CAM``)

``view="sphere"`` — projected on the fly onto ``grid`` with the cached sampling maps
(image bilinear or area, see ``resample``; label and depth nearest):
    ``image``  float32 (3, N), normalised, 0 outside the image
    ``label``  int64 (N,), ``IGNORE_INDEX`` outside the image (``valid`` False)
    ``valid``  bool (N,) grid pixels that see the image
    ``depth``  float32 (N,), ``inf`` invalid (only with depth)
    ``calibration``, ``camera``, ``name`` as above

Order of work per sample: read -> green strips (WoodScape) -> optional resize (calibration scaled)
-> ``transform`` (flat, raw numpy dict incl. ``camera``) -> [sphere: project] -> ``sphere_transform``
-> tensors (image normalisation, projection and resizing through :mod:`heal_swin.inference.processing`,
the same code the exported models are served with). Workers: the dataset holds only paths, specs and picklable transforms; projection
maps are cached per process (in-memory LRU keyed by intrinsics, plus the optional disk cache).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from heal_swin.data.classes import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
from heal_swin.data.layout import (
    DatasetIndex,
    FisheyeDatasetSpec,
    read_calibration,
    read_depth,
    read_image,
    read_label,
    scan,
)
from heal_swin.data.woodscape import apply_strips
from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.geometry.projector import SphereProjector
from heal_swin.inference import processing as contract

__all__ = ["IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "FisheyeDataset", "load_raw_sample"]

View = Literal["flat", "sphere"]


def load_raw_sample(index: DatasetIndex, i: int) -> dict[str, Any]:
    """Sample ``i`` as numpy: image (H, W, 3) uint8 RGB, label (H, W) uint8 class ids or None,
    depth (H, W) float32 or None, camera FisheyeCamera, name, camera_name."""
    rec = index.samples[i]
    spec = index.spec
    return {
        "image": read_image(rec.image),
        "label": read_label(rec.label, spec.classes) if rec.label else None,
        "depth": read_depth(rec.depth, spec) if (spec.depth and rec.depth) else None,
        "camera": read_calibration(rec.calibration),
        "name": rec.name,
        "camera_name": rec.camera,
    }


class FisheyeDataset(Dataset):
    """Samples of a WoodScape-layout dataset, flat or on a HEALPix grid.

    Args:
        root: dataset root.
        spec: ``"auto"`` (detect), a name (``woodscape``, ``synthetic``, ``synwoodscape``,
            ``synwoodscape-large``, ``synwoodscape-large_plus_AD``) or a FisheyeDatasetSpec.
        split: ``train``, ``val``, ``test`` or ``all`` (split files when present, else seeded).
        view: ``flat`` or ``sphere``.
        grid: HEALPix grid for the sphere view (default nside 64, base pixels 0-7).
        resample: how the image goes onto the grid: ``bilinear`` (point sampling at pixel centres)
            or ``area`` (footprint mean, anti-aliased for grids coarser than the image). Labels
            and depth are always nearest (class ids and depth edges must not be mixed).
        cameras: keep only these cameras.
        size: optional (width, height) to resize flat samples to (calibration scaled).
        strips: WoodScape green strips: ``keep`` (void), ``ignore`` (IGNORE_INDEX), ``crop``.
        transform: flat-view augmentation on the raw dict (see :mod:`heal_swin.data.transforms`).
        sphere_transform: sphere-view augmentation (index gathers) on the projected numpy dict.
        mean, std: RGB normalisation of images scaled to [0, 1]; ``None`` keeps [0, 1].
        validate, on_error, require_labels: see :func:`heal_swin.data.layout.scan`. Skipped files
            are listed in ``self.skipped`` and announced with a warning. With ``require_labels=False``
            (e.g. WoodScape's unlabelled test images) samples have no ``label`` key.
        cache_dir: on-disk cache of the projection maps (default: env ``HEAL_SWIN_CACHE_DIR``).
    """

    def __init__(
        self,
        root: str | Path,
        spec: str | FisheyeDatasetSpec = "auto",
        split: str = "train",
        view: View = "flat",
        grid: HealpixGrid | None = None,
        resample: Literal["bilinear", "area"] = "bilinear",
        cameras: Sequence[str] | None = None,
        size: tuple[int, int] | None = None,
        strips: Literal["keep", "ignore", "crop"] = "keep",
        transform: Callable[[dict], dict] | None = None,
        sphere_transform: Callable[[dict], dict] | None = None,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        validate: Literal["none", "quick", "full"] = "quick",
        on_error: Literal["skip", "raise"] = "skip",
        require_labels: bool = True,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        if view not in ("flat", "sphere"):
            raise ValueError(f"view: expected 'flat' or 'sphere', got {view!r}")
        self.index = scan(
            root, spec, split=split, cameras=cameras, seed=seed, validate=validate, on_error=on_error,
            require_labels=require_labels,
        )  # fmt: skip
        self.spec = self.index.spec
        self.view = view
        self.grid = grid if grid is not None else HealpixGrid(64)
        if resample not in contract.RESAMPLE:
            raise ValueError(f"resample: expected one of {', '.join(contract.RESAMPLE)}, got {resample!r}")
        self.resample = resample
        self.size = tuple(size) if size is not None else None
        self.strips = strips
        self.transform = transform
        self.sphere_transform = sphere_transform
        self.mean = None if mean is None else [float(v) for v in mean]
        self.std = None if std is None else [float(v) for v in std]
        self.cache_dir = cache_dir
        if self.index.skipped:
            warnings.warn(
                f"{root}: skipped {len(self.index.skipped)} bad file(s) (see dataset.skipped):\n"
                + self.index.format_skipped(),
                stacklevel=2,
            )

    # --------------------------------------------------------------- basics
    @property
    def samples(self):
        return self.index.samples

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every file left out at construction."""
        return self.index.skipped

    @property
    def classes(self):
        return self.spec.classes

    @property
    def num_classes(self) -> int:
        return self.spec.classes.num_classes

    def __len__(self) -> int:
        return len(self.index.samples)

    # ---------------------------------------------------------------- items
    def raw(self, i: int) -> dict[str, Any]:
        """Numpy sample after strips/resize/transform, before projection and tensors."""
        s = load_raw_sample(self.index, i)
        if self.spec.green_strips:
            s = apply_strips(s, self.strips, self.spec.green_strips)
        if self.size is not None and (s["image"].shape[1], s["image"].shape[0]) != self.size:
            s = _resize(s, self.size)
        if self.transform is not None:
            s = self.transform(s)
        return s

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.raw(i)
        cam: FisheyeCamera = s["camera"]
        out: dict[str, Any] = {
            "calibration": json.dumps(cam.to_dict()),
            "camera": s["camera_name"],
            "name": s["name"],
        }
        if self.view == "flat":
            out["image"] = torch.from_numpy(contract.normalise_pixels(s["image"], self.mean, self.std))
            if s["label"] is not None:
                out["label"] = torch.from_numpy(s["label"].astype(np.int64))
            if s["depth"] is not None:
                out["depth"] = torch.from_numpy(np.ascontiguousarray(s["depth"], dtype=np.float32))
            return out
        proj = SphereProjector(cam, self.grid, cache_dir=self.cache_dir)
        valid = proj.valid_mask
        sph: dict[str, Any] = {"valid": valid.copy()}
        sph["image"] = contract.sphere_input(
            s["image"], proj, self.mean, self.std, resample=self.resample
        )  # (3, N)
        if s["label"] is not None:
            sph["label"] = contract.labels_to_sphere(s["label"], proj, IGNORE_INDEX).astype(np.int64)
        if s["depth"] is not None:
            sph["depth"] = contract.depth_to_sphere(s["depth"], proj)
        if self.sphere_transform is not None:
            sph = self.sphere_transform(sph)
        for k, v in sph.items():
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        return out


def _resize(s: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    w, h = size
    s = dict(s)
    s["image"] = contract.resize_image(s["image"], (w, h))
    if s.get("label") is not None:
        s["label"] = contract.resize_nearest(s["label"], (w, h))
    if s.get("depth") is not None:
        s["depth"] = contract.resize_nearest(s["depth"], (w, h))
    s["camera"] = s["camera"].scaled(w, h)
    return s
