"""Camera rays grouped into tiles with bounding cones (the culling structure of the ray caster)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from heal_swin.geometry.camera import FisheyeCamera

__all__ = ["Rays", "camera_rays", "gather_tiles", "intrinsic_only"]


@dataclass(frozen=True)
class Rays:
    """Pixels of one camera grouped by tile (everything in tile-sorted order)."""

    perm: np.ndarray  # (P,) image-order flat index of each sorted position
    iperm: np.ndarray  # (P,) sorted position of each image pixel
    dirs: np.ndarray  # (3, P) float32 unit camera rays (rows contiguous)
    vignette: np.ndarray  # (P,) float32 (theta / theta_max)^2
    tile_start: np.ndarray  # (T,)
    tile_count: np.ndarray  # (T,)
    tile_dir: np.ndarray  # (T, 3) float64 unit camera-frame cone axis
    tile_half: np.ndarray  # (T,) cone half-angle, radians


@lru_cache(maxsize=16)
def camera_rays(camera: FisheyeCamera) -> Rays:
    w, h = camera.width, camera.height
    rays = camera.pixel_rays().reshape(-1, 3)
    rays = np.where(np.isfinite(rays), rays, [0.0, 0.0, 1.0])
    ts = max(4, round(min(w, h) / 60))
    v, u = np.divmod(np.arange(w * h), w)
    ntx = -(-w // ts)
    tile = (v // ts) * ntx + (u // ts)
    perm = np.argsort(tile, kind="stable")
    tile_sorted = tile[perm]
    ntiles = int(tile.max()) + 1
    count = np.bincount(tile_sorted, minlength=ntiles)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    dirs = rays[perm]
    axis = np.add.reduceat(dirs, start, axis=0)
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    cosang = np.clip(np.einsum("pk,pk->p", dirs, np.repeat(axis, count, axis=0)), -1.0, 1.0)
    half = np.maximum.reduceat(np.arccos(cosang), start) + 1e-4
    theta = np.arccos(np.clip(dirs[:, 2], -1, 1))
    vig = (theta / max(theta.max(), 1e-6)) ** 2
    iperm = np.empty_like(perm)
    iperm[perm] = np.arange(perm.size)
    return Rays(
        perm,
        iperm,
        np.ascontiguousarray(dirs.T.astype(np.float32)),
        vig.astype(np.float32),
        start,
        count,
        axis,
        half,
    )


def gather_tiles(rays: Rays, sel: np.ndarray) -> np.ndarray:
    """Sorted-order pixel positions of the selected tiles (concatenated ranges, vectorised)."""
    starts, lens = rays.tile_start[sel], rays.tile_count[sel]
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return np.arange(total, dtype=np.int64) + offs


def intrinsic_only(camera: FisheyeCamera) -> FisheyeCamera:
    """Drop the extrinsics so that the ray cache is keyed by the intrinsics only."""
    return FisheyeCamera(
        camera.k,
        camera.cx_offset,
        camera.cy_offset,
        camera.aspect_ratio,
        camera.width,
        camera.height,
        model=camera.model,
    )
