"""A rig of calibrated cameras fused onto one HEALPix sphere in the vehicle frame.

The *vehicle sphere* is a full HEALPix grid (all 12 base pixels, any nside) whose vectors are
vehicle-frame directions (ISO 8855: x forward, y left, z up), seen from the vehicle origin: the
north pole points up, the equator is the horizon, longitude 0 is straight ahead and 90° is left.

**Registration distance.** Cameras sit up to a few metres from the origin, so a direction from the
origin is a different ray for every camera (parallax). A grid direction ``v`` is registered as the
scene point ``radius * v``: camera ``c`` samples its image at the ray from its centre ``t_c`` to
that point. ``radius = inf`` (the default) means points at infinity, i.e. the cameras' rays are the
rotated direction ``R_c^T v`` and only the extrinsic rotation matters.

Each camera enters through :class:`VehicleFrameCamera`, the same lens described in the vehicle
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

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.errors import InputError
from heal_swin.geometry.calibration import parse_calibration_json
from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.geometry.projector import SphereProjector

__all__ = ["ALL_BASE_PIXELS", "CameraRig", "RigError", "RigMaps", "VehicleFrameCamera", "VehicleSphere", "vehicle_grid"]

ALL_BASE_PIXELS: tuple[int, ...] = tuple(range(12))
DEFAULT_FEATHER = 0.05  # fraction of the image's shorter side over which weights fall to 0 at a border


class RigError(InputError):
    """An invalid camera rig (no cameras, duplicate names, a bad registration distance)."""


def vehicle_grid(nside: int) -> HealpixGrid:
    """The full-sphere grid (all 12 base pixels) of the vehicle sphere."""
    return HealpixGrid(nside, ALL_BASE_PIXELS)


# ----------------------------------------------------------------- one camera
class VehicleFrameCamera:
    """One camera of a rig described in the vehicle sphere's frame.

    Its "rays" are vehicle-sphere directions: ``project`` takes vehicle directions (..., 3) to this
    camera's pixels and ``pixel_rays``/``unproject`` give, per pixel, the vehicle-sphere direction
    of the point the pixel sees at the registration distance (module docstring). It offers what
    :class:`SphereProjector` needs of a camera, so the projector's maps and caches apply unchanged.

    Args:
        camera: the calibration (intrinsics + camera -> vehicle extrinsics).
        radius: registration distance in metres (``inf``: directions at infinity). Must exceed the
            camera's distance from the origin.
    """

    def __init__(self, camera: FisheyeCamera, radius: float = math.inf) -> None:
        radius = float(radius)
        dist = float(np.linalg.norm(camera.translation))
        if not radius > dist:
            raise RigError(f"radius: expected a registration distance beyond camera {camera.name or camera.source} ({dist:.3f} m from the origin), got {radius}")
        self.camera = camera
        self.radius = radius
        self._r = camera.rotation
        self._t = np.asarray(camera.translation, dtype=np.float64)

    # The projector's view of a camera: size, a cache key, and rays <-> pixels.
    @property
    def width(self) -> int:
        return self.camera.width

    @property
    def height(self) -> int:
        return self.camera.height

    @property
    def image_size(self) -> tuple[int, int]:
        return self.camera.image_size

    @property
    def name(self) -> str:
        return self.camera.name

    @property
    def source(self) -> str:
        return self.camera.source

    @property
    def intrinsics_key(self) -> str:
        """sha256 (16 hex) of the intrinsics, the extrinsics and the registration distance."""
        text = repr((self.camera.intrinsics_key, tuple(self.camera.quaternion), tuple(self.camera.translation), self.radius))
        return hashlib.sha256(f"vehicle|{text}".encode()).hexdigest()[:16]

    def camera_rays(self, directions: np.ndarray) -> np.ndarray:
        """Camera-frame rays (..., 3) (not normalised) towards the registered points of vehicle directions."""
        v = np.asarray(directions, dtype=np.float64)
        if math.isinf(self.radius):
            return v @ self._r  # R^T v: rotation only
        norm = np.linalg.norm(v, axis=-1, keepdims=True)
        return (self.radius * v / norm - self._t) @ self._r

    def project(self, directions: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) of vehicle-sphere directions (..., 3)."""
        return self.camera.project(self.camera_rays(directions))

    def sees(self, directions: np.ndarray) -> np.ndarray:
        """(...) bool: the direction's registered point lands inside this camera's image."""
        return self.camera.sees(self.camera_rays(directions))

    def to_sphere_directions(self, camera_rays: np.ndarray) -> np.ndarray:
        """Unit vehicle-sphere directions (..., 3) of camera-frame unit rays: where each ray meets
        the registration sphere, seen from the origin (NaN rays stay NaN)."""
        d = np.asarray(camera_rays, dtype=np.float64) @ self._r.T
        if math.isinf(self.radius):
            return d
        # |t + s d| = radius, s > 0 (one root: the camera is inside the sphere)
        td = d @ self._t
        s = -td + np.sqrt(td * td - float(self._t @ self._t) + self.radius**2)
        p = self._t + s[..., None] * d
        return p / np.linalg.norm(p, axis=-1, keepdims=True)

    def unproject(self, pixels: np.ndarray) -> np.ndarray:
        """Vehicle-sphere directions (..., 3) of pixels (..., 2); NaN beyond the lens model."""
        return self.to_sphere_directions(self.camera.unproject(pixels))

    def pixel_rays(self) -> np.ndarray:
        """(H, W, 3) vehicle-sphere directions of every pixel centre."""
        return self.to_sphere_directions(self.camera.pixel_rays())

    def scaled(self, width: int, height: int) -> VehicleFrameCamera:
        """The same camera for the image resized to ``width x height``."""
        return VehicleFrameCamera(self.camera.scaled(width, height), self.radius)


# ----------------------------------------------------------------- the rig
@dataclass(frozen=True)
class CameraRig:
    """Named cameras of one vehicle, each with its camera -> vehicle extrinsics.

    Attributes:
        cameras: the calibrations, in the rig's order (the order of ``source`` indices).
        names: one unique name per camera (default: each camera's ``name``).
    """

    cameras: tuple[FisheyeCamera, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.cameras:
            raise RigError("cameras: expected at least one camera, got none")
        if len(self.names) != len(self.cameras):
            raise RigError(f"names: expected {len(self.cameras)} names, got {len(self.names)}")
        if len(set(self.names)) != len(self.names):
            raise RigError(f"names: expected unique camera names, got {list(self.names)}")
        if len(self.cameras) > 127:
            raise RigError(f"cameras: expected at most 127 cameras, got {len(self.cameras)}")

    @classmethod
    def from_cameras(cls, cameras: Mapping[str, FisheyeCamera] | Sequence[FisheyeCamera]) -> CameraRig:
        """From ``{name: camera}`` or a sequence of cameras (named by their ``name``, else ``cam<i>``)."""
        if isinstance(cameras, Mapping):
            return cls(tuple(cameras.values()), tuple(str(k) for k in cameras))
        cams = tuple(cameras)
        return cls(cams, tuple(c.name or f"cam{i}" for i, c in enumerate(cams)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<rig>") -> CameraRig:
        """From ``{"cameras": {name: <WoodScape calibration>, ...}}`` (what ``to_dict`` writes)."""
        cams = data.get("cameras") if isinstance(data, Mapping) else None
        if not isinstance(cams, Mapping) or not cams:
            raise RigError(f"{source}: field 'cameras': expected an object {{name: calibration}}, got {type(cams).__name__}")
        return cls.from_cameras({str(n): FisheyeCamera.from_dict(c, source=f"{source}: cameras.{n}") for n, c in cams.items()})

    @classmethod
    def from_json_text(cls, data: str | bytes, source: str = "<rig>") -> CameraRig:
        """Parse rig JSON (a file's or an upload's bytes) within the calibration reader's size and depth limits."""
        return cls.from_dict(parse_calibration_json(data, source), source=source)

    @classmethod
    def from_json(cls, path: str | Path) -> CameraRig:
        """Read a rig JSON file (``to_dict``'s schema)."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise RigError(f"{path}: cannot read the rig file ({e.strerror or type(e).__name__})") from None
        return cls.from_json_text(data, source=str(path))

    @classmethod
    def from_files(cls, files: Mapping[str, str | Path]) -> CameraRig:
        """From ``{name: calibration JSON path}`` (e.g. the four files of one WoodScape frame)."""
        return cls.from_cameras({n: FisheyeCamera.from_json(p) for n, p in files.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"cameras": {n: c.to_dict() for n, c in zip(self.names, self.cameras)}}

    @property
    def key(self) -> str:
        """sha256 (16 hex) of every camera's intrinsics and extrinsics, in order."""
        parts = [(n, c.intrinsics_key, tuple(c.quaternion), tuple(c.translation)) for n, c in zip(self.names, self.cameras)]
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.cameras)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise RigError(f"camera: expected one of {', '.join(self.names)}, got {name!r}") from None


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


def raw_weights(view: VehicleFrameCamera, directions: np.ndarray, feather: float = DEFAULT_FEATHER) -> np.ndarray:
    """(N,) float64 unnormalised weight of one camera at vehicle directions (module docstring)."""
    cam = view.camera
    rays = view.camera_rays(directions)
    theta = np.arctan2(np.hypot(rays[..., 0], rays[..., 1]), rays[..., 2])
    uv = cam.project(rays)
    # Distance to the image border: the outer edges of the border pixels are at -0.5 and W - 0.5.
    d = np.minimum.reduce([uv[..., 0] + 0.5, cam.width - 0.5 - uv[..., 0], uv[..., 1] + 0.5, cam.height - 0.5 - uv[..., 1]])
    edge = np.clip(d / (feather * min(cam.width, cam.height)), 0.0, 1.0) if feather > 0 else (d > 0).astype(np.float64)
    radial = np.clip(1.0 - theta / cam.max_incidence_angle, 0.0, 1.0)
    return np.where(cam.sees(rays), radial * edge, 0.0)


def compute_rig_maps(views: Sequence[VehicleFrameCamera], grid: HealpixGrid, feather: float = DEFAULT_FEATHER) -> RigMaps:
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
        a.append((rays @ v._r.T) @ v._t)
    b = np.array([float(v._t @ v._t) for v in views])
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
            raise RigError(f"{what}: expected {len(self.rig)} images ({', '.join(self.rig.names)}), got {len(images)}")

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
