"""The cameras of a rig, and one camera described in the vehicle sphere's frame.

:class:`CameraRig` holds named calibrations (camera -> vehicle extrinsics); :class:`VehicleFrameCamera`
is one of them seen from the vehicle sphere, with the registration distance of
:mod:`heal_swin.geometry.rig` (whose docstring states the conventions).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.errors import InputError
from heal_swin.geometry.calibration import parse_calibration_json
from heal_swin.geometry.camera import FisheyeCamera

__all__ = ["CameraRig", "RigError", "VehicleFrameCamera"]


class RigError(InputError):
    """An invalid camera rig (no cameras, duplicate names, a bad registration distance)."""


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
            raise RigError(
                f"radius: expected a registration distance beyond camera {camera.name or camera.source} ({dist:.3f} m from the origin), got {radius}"
            )
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
        text = repr(
            (
                self.camera.intrinsics_key,
                tuple(self.camera.quaternion),
                tuple(self.camera.translation),
                self.radius,
            )
        )
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
            raise RigError(
                f"{source}: field 'cameras': expected an object {{name: calibration}}, got {type(cams).__name__}"
            )
        return cls.from_cameras(
            {str(n): FisheyeCamera.from_dict(c, source=f"{source}: cameras.{n}") for n, c in cams.items()}
        )

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
        parts = [
            (n, c.intrinsics_key, tuple(c.quaternion), tuple(c.translation))
            for n, c in zip(self.names, self.cameras)
        ]
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.cameras)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise RigError(f"camera: expected one of {', '.join(self.names)}, got {name!r}") from None
