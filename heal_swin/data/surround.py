"""Surround-view samples: the four cameras of one frame fused on the vehicle sphere.

A *frame* is the set of images of one timestamp (WoodScape, SynWoodScape) or scene (the synthetic
benchmark): the samples ``NNNNN_FV``, ``NNNNN_MVL``, ``NNNNN_MVR``, ``NNNNN_RV`` of the WoodScape
layout share the frame number ``NNNNN`` (:mod:`heal_swin.data.layout`; the seeded split already
keeps a frame's cameras together). Each frame's own calibrations form its rig
(:class:`~heal_swin.geometry.rig.CameraRig`), so per-frame extrinsic jitter is honoured.

Per frame (a dict; ``default_collate`` works):
    ``image``   float32 (3, N) normalised blend on the vehicle sphere (0 where no camera sees)
    ``label``   int64 (N,) class ids from the camera that sees each direction best, IGNORE_INDEX unseen
    ``valid``   bool (N,) directions some camera sees
    ``depth``   float32 (N,) range from the vehicle origin in metres, ``inf`` invalid (datasets with depth)
    ``source``  int64 (N,) index into ``cameras`` of each direction's label camera, -1 unseen
    ``rig``     str: the frame's rig as JSON (``CameraRig.from_dict(json.loads(s))``); ``name`` frame id

Augmentation, rig-consistent by construction:
    ``photometric`` — the flat colour jitter of :class:`~heal_swin.data.transforms.FlatAugment`,
        drawn independently per camera (real cameras expose independently); no per-camera flips.
    ``mirror`` — the horizontal flip of every image with :func:`~heal_swin.data.transforms.flip_camera`
        mirrors the whole rig in the vehicle's x-z plane; on the vehicle sphere that is the exact
        pixel permutation ``y -> -y`` (:func:`vehicle_mirror_index`), applied to every sphere array,
        with MVL and MVR trading places in ``source``.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import healpy as hp
import numpy as np
import torch
from torch.utils.data import Dataset

from heal_swin.data.classes import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
from heal_swin.data.datasets import FisheyeDataset
from heal_swin.data.transforms import FlatAugment
from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.geometry.rig import CameraRig, VehicleSphere, vehicle_grid
from heal_swin.inference.surround import surround_input, surround_labels, vehicle_sphere_for

__all__ = ["SURROUND_CAMERAS", "SurroundDataset", "mirror_sample", "vehicle_mirror_index"]

SURROUND_CAMERAS: tuple[str, ...] = ("FV", "MVL", "MVR", "RV")
_MIRRORED = {"MVL": "MVR", "MVR": "MVL"}
_FRAME_RE = re.compile(r"^(\d+)_([A-Za-z]+)$")
SPHERE_ARRAYS = ("image", "label", "valid", "depth", "source")


@lru_cache(maxsize=16)
def vehicle_mirror_index(grid: HealpixGrid) -> np.ndarray:
    """(N,) gather index of the reflection y -> -y (left <-> right): ``out = values[..., idx]``.

    Exact: HEALPix pixel centres are symmetric under longitude -> -longitude (checked: a bijection).
    """
    v = grid.vectors() * np.array([1.0, -1.0, 1.0])
    idx = grid.local_index(hp.vec2pix(grid.nside, v[:, 0], v[:, 1], v[:, 2], nest=True))
    if np.any(idx < 0) or np.unique(idx).size != idx.size:
        raise ValueError(f"the mirror y -> -y is not a permutation of the grid {grid.key}")
    idx.setflags(write=False)
    return idx


def mirror_sample(sample: dict[str, Any], grid: HealpixGrid, cameras: Sequence[str]) -> dict[str, Any]:
    """The frame of the rig mirrored left <-> right: sphere arrays permuted, MVL/MVR swapped in ``source``."""
    idx = vehicle_mirror_index(grid)
    out = dict(sample)
    for k in SPHERE_ARRAYS:
        if out.get(k) is not None:
            out[k] = np.take(np.asarray(out[k]), idx, axis=-1)
    if out.get("source") is not None:
        names = list(cameras)
        swap = np.array(
            [names.index(_MIRRORED[n]) if _MIRRORED.get(n) in names else i for i, n in enumerate(names)]
            + [-1]
        )
        out["source"] = swap[out["source"]]  # -1 indexes the appended -1
    return out


class SurroundDataset(Dataset):
    """Frames of a WoodScape-layout dataset on the vehicle sphere (module docstring).

    Args:
        root, spec, split, size, strips, validate, seed, cache_dir: as for
            :class:`~heal_swin.data.datasets.FisheyeDataset` (which reads each camera's images).
        nside: vehicle-sphere resolution (all 12 base pixels).
        cameras: the rig's cameras, in ``source`` order; frames missing one are left out and listed
            in ``skipped``.
        radius: registration distance in metres (:mod:`heal_swin.geometry.rig`).
        photometric: colour-jitter strength per camera (0: none); ``mirror``: probability of the rig mirror.
        mean, std: RGB normalisation of pixel values scaled to [0, 1].
    """

    def __init__(
        self,
        root: str | Path,
        spec: str = "auto",
        split: str = "train",
        nside: int = 32,
        cameras: Sequence[str] = SURROUND_CAMERAS,
        size: tuple[int, int] | None = None,
        strips: Literal["keep", "ignore", "crop"] = "keep",
        radius: float = math.inf,
        photometric: float = 0.0,
        mirror: float = 0.0,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        validate: Literal["none", "quick", "full"] = "quick",
        require_labels: bool = True,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.cameras = tuple(c.upper() for c in cameras)
        self.flat = FisheyeDataset(
            root, spec=spec, split=split, view="flat", cameras=self.cameras, size=size, strips=strips,
            transform=FlatAugment(photometric, hflip=0.0) if photometric > 0 else None,
            validate=validate, require_labels=require_labels, seed=seed, cache_dir=cache_dir,
        )  # fmt: skip
        self.spec = self.flat.spec
        self.grid = vehicle_grid(nside)
        self.radius = float(radius)
        self.mirror = float(mirror)
        self.mean = None if mean is None else [float(v) for v in mean]
        self.std = None if std is None else [float(v) for v in std]
        self.frames, self.skipped = _group_frames(self.flat, self.cameras)

    @property
    def num_classes(self) -> int:
        return self.spec.classes.num_classes

    @property
    def classes(self):
        return self.spec.classes

    def __len__(self) -> int:
        return len(self.frames)

    def raw_frame(self, i: int) -> tuple[str, list[dict[str, Any]]]:
        """(frame id, the cameras' raw samples in ``cameras`` order) as numpy (see ``FisheyeDataset.raw``)."""
        frame, idx = self.frames[i]
        return frame, [self.flat.raw(j) for j in idx]

    def rig_of(self, raws: Sequence[dict[str, Any]]) -> CameraRig:
        return CameraRig.from_cameras({name: s["camera"] for name, s in zip(self.cameras, raws)})

    def sphere_of(self, raws: Sequence[dict[str, Any]]) -> VehicleSphere:
        return vehicle_sphere_for(self.rig_of(raws), self.grid, self.radius)

    def fuse(self, raws: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Numpy sphere arrays of one frame's raw samples (before augmentation and tensors)."""
        sphere = self.sphere_of(raws)
        out: dict[str, Any] = {
            "image": surround_input([s["image"] for s in raws], sphere, self.mean, self.std),
            "valid": sphere.valid_mask.copy(),
            "source": sphere.source.astype(np.int64),
        }
        if all(s["label"] is not None for s in raws):
            out["label"] = surround_labels([s["label"] for s in raws], sphere, fill=IGNORE_INDEX).astype(
                np.int64
            )
        if all(s.get("depth") is not None for s in raws):
            out["depth"] = sphere.depth_to_range([s["depth"] for s in raws])
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        frame, raws = self.raw_frame(i)
        sph = self.fuse(raws)
        if self.mirror > 0 and random.random() < self.mirror:
            sph = mirror_sample(sph, self.grid, self.cameras)
        out: dict[str, Any] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sph.items()}
        out["rig"] = json.dumps(self.rig_of(raws).to_dict())
        out["name"] = frame
        return out


def _group_frames(
    flat: FisheyeDataset, cameras: tuple[str, ...]
) -> tuple[list[tuple[str, list[int]]], list[tuple[str, str]]]:
    """Frames with every camera (indices into ``flat`` in ``cameras`` order) and the incomplete ones."""
    by_frame: dict[str, dict[str, int]] = {}
    for j, rec in enumerate(flat.samples):
        m = _FRAME_RE.match(rec.name)
        if m:
            by_frame.setdefault(m.group(1), {})[rec.camera] = j
    frames, skipped = [], list(flat.skipped)
    for frame in sorted(by_frame):
        have = by_frame[frame]
        missing = [c for c in cameras if c not in have]
        if missing:
            skipped.append(
                (
                    frame,
                    f"frame {frame} has no usable {', '.join(missing)} image(s): left out of the surround view",
                )
            )
            continue
        frames.append((frame, [have[c] for c in cameras]))
    return frames, skipped
