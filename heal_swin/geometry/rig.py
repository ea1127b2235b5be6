"""A rig of calibrated cameras fused onto one HEALPix sphere in the vehicle frame.

The *vehicle sphere* is a full HEALPix grid (all 12 base pixels, any nside) whose vectors are
vehicle-frame directions (ISO 8855: x forward, y left, z up), seen from the vehicle origin: the
north pole points up, the equator is the horizon, longitude 0 is straight ahead and 90° is left.

**Registration distance.** Cameras sit up to a few metres from the origin, so a direction from the
origin is a different ray for every camera (parallax). A grid direction ``v`` is registered as the
scene point ``radius * v``: camera ``c`` samples its image at the ray from its centre ``t_c`` to
that point. ``radius = inf`` (the default) means points at infinity, i.e. the cameras' rays are the
rotated direction ``R_c^T v`` and only the extrinsic rotation matters.

Each camera enters through :class:`~heal_swin.geometry.rig_camera.VehicleFrameCamera`, the same lens described in the vehicle
sphere's frame; a :class:`~heal_swin.geometry.projector.SphereProjector` over it gives the
per-camera sampling maps (forward and back-projection, cached in memory and on disk like any
camera's), so every image <-> sphere move goes through the one projector implementation.

**Blending** (:class:`RigMaps`). Camera ``c``'s raw weight at a direction it sees is::

    w_c = (1 - theta_c / theta_rim_c) * min(1, d_c / feather_c)

with ``theta_c`` the ray's incidence angle (from the optical axis), ``theta_rim_c`` the largest
incidence angle the image sees (its corners, ``max_incidence_angle``), ``d_c`` the distance in
pixels from the projected point to the nearest image border and ``feather_c = feather * min(W, H)``.
So the weight is 1 on the optical axis, falls linearly towards the lens's rim and reaches 0 at the
rim and at the image border: a blend that is continuous wherever coverage changes. Images are
blended with ``w_c / sum_c w_c``. Labels (and depth) come from the camera with the largest weight,
the camera that sees the direction best; ``source`` records it per pixel (-1: no camera).

**Depth** is converted to *range*: the distance from the vehicle origin of the point the camera
measured, ``|t_c + d * R_c r_c|`` for depth ``d`` (metres along the camera ray ``r_c``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.geometry.projector import SphereProjector
from heal_swin.geometry.rig_camera import CameraRig, RigError, VehicleFrameCamera

__all__ = [
    "ALL_BASE_PIXELS",
    "CameraRig",
    "RigError",
    "RigMaps",
    "VehicleFrameCamera",
    "VehicleSphere",
    "vehicle_grid",
]

ALL_BASE_PIXELS: tuple[int, ...] = tuple(range(12))
DEFAULT_FEATHER = 0.05  # fraction of the image's shorter side over which weights fall to 0 at a border


def vehicle_grid(nside: int) -> HealpixGrid:
    """The full-sphere grid (all 12 base pixels) of the vehicle sphere."""
    return HealpixGrid(nside, ALL_BASE_PIXELS)


# ----------------------------------------------------------------- rig maps
@dataclass(frozen=True)
class RigMaps:
    """What the fusion needs per grid pixel (all NESTED, N = grid pixels, C = cameras).

    Attributes:
        weights: (C, N) float32 blend weights ``w_c / sum w`` (module docstring); 0 where unseen.
        source: (N,) int8 camera with the largest weight; -1 where no camera sees the direction.
        count: (N,) uint8 number of cameras with a positive weight.
        range_a: (C, N) float64 ``(R_c r_c) . t_c`` and ``range_b`` (C,) ``|t_c|^2``, so that depth
            ``d`` along ray ``r_c`` is at range ``sqrt(d^2 + 2 a d + b)`` from the origin.
    """

    weights: np.ndarray
    source: np.ndarray
    count: np.ndarray
    range_a: np.ndarray
    range_b: np.ndarray

    @property
    def seen(self) -> np.ndarray:
        """(N,) bool: some camera sees the direction."""
        return self.source >= 0


def raw_weights(
    view: VehicleFrameCamera, directions: np.ndarray, feather: float = DEFAULT_FEATHER
) -> np.ndarray:
    """(N,) float64 unnormalised weight of one camera at vehicle directions (module docstring)."""
    cam = view.camera
    rays = view.camera_rays(directions)
    theta = np.arctan2(np.hypot(rays[..., 0], rays[..., 1]), rays[..., 2])
    uv = cam.project(rays)
    # Distance to the image border: the outer edges of the border pixels are at -0.5 and W - 0.5.
    d = np.minimum.reduce(
        [uv[..., 0] + 0.5, cam.width - 0.5 - uv[..., 0], uv[..., 1] + 0.5, cam.height - 0.5 - uv[..., 1]]
    )
    edge = (
        np.clip(d / (feather * min(cam.width, cam.height)), 0.0, 1.0)
        if feather > 0
        else (d > 0).astype(np.float64)
    )
    radial = np.clip(1.0 - theta / cam.max_incidence_angle, 0.0, 1.0)
    return np.where(cam.sees(rays), radial * edge, 0.0)


def compute_rig_maps(
    views: Sequence[VehicleFrameCamera], grid: HealpixGrid, feather: float = DEFAULT_FEATHER
) -> RigMaps:
    """Blend weights, best camera and range coefficients of every grid pixel."""
    vec = grid.vectors()
    w = np.stack([raw_weights(v, vec, feather) for v in views])  # (C, N)
    total = w.sum(axis=0)
    seen = total > 0
    weights = np.where(seen, w / np.where(seen, total, 1.0), 0.0).astype(np.float32)
    source = np.where(seen, np.argmax(w, axis=0), -1).astype(np.int8)
    a = []
    for v in views:
        rays = v.camera_rays(vec)
        rays = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
        a.append(v.camera.to_vehicle(rays, directions=True) @ np.asarray(v.camera.translation))
    b = np.array([float(np.dot(v.camera.translation, v.camera.translation)) for v in views])
    return RigMaps(weights, source, (w > 0).sum(axis=0).astype(np.uint8), np.stack(a), b)


class _LRU:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, RigMaps] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, compute: Any) -> RigMaps:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        for arr in vars(value).values():
            arr.setflags(write=False)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value


_RIG_MAPS = _LRU(16)


# ----------------------------------------------------------------- fusion
class VehicleSphere:
    """Moves the images of a rig onto the vehicle sphere and predictions back to each camera.

    Args:
        rig: the cameras (image sizes must equal each camera's calibration).
        grid: the vehicle-sphere grid (default :func:`vehicle_grid` (32): all 12 base pixels).
        radius: registration distance in metres (module docstring; default ``inf``).
        feather: border feather as a fraction of each image's shorter side.
        cache_dir: on-disk cache of the per-camera maps (as for :class:`SphereProjector`).
    """

    def __init__(
        self,
        rig: CameraRig,
        grid: HealpixGrid | None = None,
        radius: float = math.inf,
        feather: float = DEFAULT_FEATHER,
        cache_dir: str | Path | None = None,
    ) -> None:
        if not feather >= 0:
            raise RigError(f"feather: expected a fraction >= 0 of the image side, got {feather}")
        self.rig = rig
        self.grid = grid if grid is not None else vehicle_grid(32)
        self.radius = float(radius)
        self.feather = float(feather)
        self.views = tuple(VehicleFrameCamera(c, self.radius) for c in rig.cameras)
        self.projectors = tuple(SphereProjector(v, self.grid, cache_dir=cache_dir) for v in self.views)  # type: ignore[arg-type]

    @property
    def maps(self) -> RigMaps:
        key = f"{self.rig.key}|{self.grid.key}|{self.radius!r}|{self.feather!r}"
        return _RIG_MAPS.get(key, lambda: compute_rig_maps(self.views, self.grid, self.feather))

    @property
    def valid_mask(self) -> np.ndarray:
        """(N,) bool: grid pixels that some camera sees."""
        return self.maps.seen

    @property
    def source(self) -> np.ndarray:
        """(N,) int8 index (into ``rig.names``) of the camera each pixel's label comes from; -1 unseen."""
        return self.maps.source

    def _check(self, images: Sequence[np.ndarray], what: str) -> None:
        if len(images) != len(self.rig):
            raise RigError(
                f"{what}: expected {len(self.rig)} images ({', '.join(self.rig.names)}), got {len(images)}"
            )

    def to_sphere(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Blend one image per camera (rig order), each (H, W) or (H, W, C), onto the sphere.

        Returns (N,) or (N, C) float32, the weighted blend of the cameras' bilinear samples; 0 where
        no camera sees the direction.
        """
        self._check(images, "images")
        w = self.maps.weights
        out = None
        for c, (proj, img) in enumerate(zip(self.projectors, images)):
            s = proj.to_sphere(np.asarray(img), mode="bilinear", fill=0).astype(np.float32)
            term = s * (w[c] if s.ndim == 1 else w[c][:, None])
            out = term if out is None else out + term
        return out

    def labels_to_sphere(self, labels: Sequence[np.ndarray], fill: int = 255) -> np.ndarray:
        """(N,) labels taken from the best camera (nearest pixel), ``fill`` where unseen; input dtype."""
        self._check(labels, "labels")
        src = self.maps.source
        out = np.full(self.grid.npix, fill, dtype=np.asarray(labels[0]).dtype)
        for c, (proj, lab) in enumerate(zip(self.projectors, labels)):
            sel = src == c
            out[sel] = proj.to_sphere(np.asarray(lab), mode="nearest", fill=fill)[sel]
        return out

    def depth_to_range(self, depths: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) float32 range from the vehicle origin (metres) from per-camera depth maps (metres along
        each ray) of the best camera; ``inf`` where unseen or the depth is invalid."""
        self._check(depths, "depths")
        m = self.maps
        out = np.full(self.grid.npix, np.inf, dtype=np.float32)
        for c, (proj, dep) in enumerate(zip(self.projectors, depths)):
            sel = m.source == c
            d = proj.to_sphere_depth(np.asarray(dep))[sel].astype(np.float64)
            ok = np.isfinite(d)
            dd = np.where(ok, d, 0.0)
            r = np.sqrt(np.maximum(dd * dd + 2.0 * m.range_a[c, sel] * dd + m.range_b[c], 0.0))
            out[sel] = np.where(ok, r, np.inf)
        return out

    def to_images(self, values: np.ndarray, mode: str = "nearest", fill: float = 0) -> list[np.ndarray]:
        """Back-project sphere values (N,) or (N, C) onto every camera's image (rig order).

        ``nearest`` for class ids and depth, ``bilinear`` for pictures; ``fill`` outside the grid.
        """
        return [proj.to_image(values, mode=mode, fill=fill) for proj in self.projectors]  # type: ignore[arg-type]

    def to_image(self, values: np.ndarray, camera: str, mode: str = "nearest", fill: float = 0) -> np.ndarray:
        """Back-project onto one camera's image, (H, W) or (H, W, C)."""
        return self.projectors[self.rig.index(camera)].to_image(values, mode=mode, fill=fill)  # type: ignore[arg-type]
