"""The synthetic vehicle: four WoodScape-style fisheye cameras (FV, RV, MVL, MVR) and their mounting."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from heal_swin.geometry.camera import FisheyeCamera, matrix_to_quaternion

__all__ = ["CAMERA_NAMES", "FULL_SIZE", "camera_rotation", "rig_cameras", "scene_camera"]

CAMERA_NAMES: tuple[str, ...] = ("FV", "RV", "MVL", "MVR")
FULL_SIZE = (1280, 966)

# Base intrinsics modelled on the WoodScape front camera; small per-camera variations.
_BASE_K = (339.749, -31.988, 48.275, -7.201)
# name: (translation, yaw deg, pitch-down deg, roll deg, k scale, cx_offset, cy_offset, aspect)
_RIG = {
    "FV": ((3.7484, 0.0, 0.6602), 0.0, 23.4, -0.4, 1.000, 3.942, -3.093, 1.0),
    "RV": ((-1.0075, 0.0, 0.9153), 180.0, 27.0, 0.3, 0.996, -1.814, 2.416, 1.0),
    "MVL": ((2.0560, 0.9960, 0.9904), 90.0, 58.0, 0.8, 1.004, 0.902, -4.255, 1.0),
    "MVR": ((2.0551, -1.0005, 0.9810), -90.0, 60.5, -0.6, 0.998, -2.517, 1.637, 1.0),
}


def camera_rotation(yaw_deg: float, pitch_down_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Camera -> vehicle rotation of a camera whose optical axis has azimuth ``yaw`` (0 = forward,
    90 = left) and points ``pitch_down`` degrees below the horizon, rolled by ``roll`` about the axis."""
    yaw, pitch, roll = (math.radians(a) for a in (yaw_deg, pitch_down_deg, roll_deg))
    z = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch)])
    x = np.array([math.sin(yaw), -math.cos(yaw), 0.0])  # image right
    y = np.cross(z, x)  # image down
    r = np.stack([x, y, z], axis=1)
    c, s = math.cos(roll), math.sin(roll)
    return r @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rig_cameras(
    width: int = FULL_SIZE[0], height: int = FULL_SIZE[1], cameras: Sequence[str] = CAMERA_NAMES
) -> dict[str, FisheyeCamera]:
    """The four cameras of the synthetic vehicle at ``width x height`` (scaled from 1280x966)."""
    out = {}
    for name in cameras:
        if name not in _RIG:
            raise ValueError(f"camera: expected one of {', '.join(CAMERA_NAMES)}, got {name!r}")
        t, yaw, pitch, roll, ks, cx, cy, aspect = _RIG[name]
        cam = FisheyeCamera(
            k=tuple(c * ks for c in _BASE_K),
            cx_offset=cx,
            cy_offset=cy,
            aspect_ratio=aspect,
            width=FULL_SIZE[0],
            height=FULL_SIZE[1],
            quaternion=tuple(matrix_to_quaternion(camera_rotation(yaw, pitch, roll))),
            translation=t,
            name=name,
            source=f"<synthetic {name}>",
        )
        out[name] = cam if (width, height) == FULL_SIZE else cam.scaled(width, height)
    return out


def scene_camera(base: FisheyeCamera, jitter: tuple[float, float, float]) -> FisheyeCamera:
    """``base`` with the scene's small extrinsic perturbation (pitch, roll about the mounting, height)."""
    dp, dr, dz = jitter
    a, b = math.radians(dp), math.radians(dr)
    # pitch about the camera x axis, roll about the optical axis (camera frame), then to the vehicle
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    rz = np.array([[math.cos(b), -math.sin(b), 0], [math.sin(b), math.cos(b), 0], [0, 0, 1]])
    rot = base.rotation @ rx @ rz
    t = np.asarray(base.translation) + [0.0, 0.0, dz]
    return FisheyeCamera(
        k=base.k, cx_offset=base.cx_offset, cy_offset=base.cy_offset, aspect_ratio=base.aspect_ratio,
        width=base.width, height=base.height, quaternion=tuple(matrix_to_quaternion(rot)), translation=tuple(t),
        name=base.name, source=base.source, model=base.model,
    )  # fmt: skip
