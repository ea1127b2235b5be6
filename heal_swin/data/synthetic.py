"""Synthetic fisheye benchmark: procedural street scenes ray cast through WoodScape-style cameras.

``heal-swin data synth --out data/synthetic --scenes 200 --seed 0`` renders each scene through the
four cameras of one vehicle (FV, RV, MVL, MVR) and writes WoodScape's layout::

    rgb_images/NNNNN_CAM.png                  8-bit BGR photograph (shading, fog, vignetting, noise)
    semantic_annotations/gtLabels/NNNNN_CAM.png   single-channel WoodScape class ids 0..9
    semantic_annotations/rgbLabels/NNNNN_CAM.png  the same in WoodScape's colours
    depth_maps/raw_data/NNNNN_CAM.npy         float32 metres along the ray, ``inf`` = sky (no hit)
    calibration/NNNNN_CAM.json                WoodScape calibration schema (per image)
    train.txt, val.txt, test.txt              sample stems (``NNNNN_CAM``), split by scene
    dataset_card.json                         classes, colours, depth convention, generator settings

Geometry (vehicle frame, ISO 8855: x forward, y left, z up, origin on the ground under the rear
axle): a straight road (z = 0) between raised sidewalks (z = curb height) whose edges are vertical
curb faces, building facades (vertical planes, one per side, cut into buildings of random length,
height and colour, some gaps), and objects as analytic primitives: yawed boxes (vehicles, bicycle
and motorcycle frames, sign plates), vertical cylinders (persons, riders, poles, tree trunks),
spheres (heads, tree crowns) and vertical discs (wheels, round signs). Shading: Lambert sun + sky
ambient, sun shadows of the objects on the ground (one shadow ray per ground pixel near a caster),
distance fog, vignetting, Gaussian sensor noise.

Speed: every intersection is vectorised over rays. Each camera's pixels are grouped into small
tiles with a bounding cone; a primitive is only tested against the rays of tiles whose cone meets
the primitive's bounding sphere. Rays, tiles and cones depend only on the intrinsics and are
cached per camera. Scenes are independent and seeded by ``(seed, scene index)``: the output does
not depend on the number of worker processes, and re-running skips complete scenes.

No torch; numpy + OpenCV only.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from heal_swin.data.classes import WOODSCAPE_CLASSES
from heal_swin.geometry.camera import FisheyeCamera, matrix_to_quaternion
from heal_swin.io import atomic_write_bytes

__all__ = [
    "CAMERA_NAMES",
    "GENERATOR_VERSION",
    "SynthConfig",
    "camera_rotation",
    "generate",
    "render_scene",
    "rig_cameras",
    "scene_complete",
]

GENERATOR_VERSION = 1
CAMERA_NAMES: tuple[str, ...] = ("FV", "RV", "MVL", "MVR")
FULL_SIZE = (1280, 966)
CARD_NAME = "dataset_card.json"
MAX_DEPTH = 1000.0  # metres; surfaces further away (the ground near the horizon) are rendered as sky

# WoodScape ids
VOID, ROAD, LANEMARKS, CURB, PERSON, RIDER, VEHICLES, BICYCLE, MOTORCYCLE, TRAFFIC_SIGN = range(10)

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


# ------------------------------------------------------------- camera rays
@dataclass(frozen=True)
class _Rays:
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
def _camera_rays(camera: FisheyeCamera) -> _Rays:
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
    return _Rays(
        perm,
        iperm,
        np.ascontiguousarray(dirs.T.astype(np.float32)),
        vig.astype(np.float32),
        start,
        count,
        axis,
        half,
    )


def _gather_tiles(rays: _Rays, sel: np.ndarray) -> np.ndarray:
    """Sorted-order pixel positions of the selected tiles (concatenated ranges, vectorised)."""
    starts, lens = rays.tile_start[sel], rays.tile_count[sel]
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return np.arange(total, dtype=np.int64) + offs


# -------------------------------------------------------------- primitives
@dataclass
class Prim:
    kind: str  # box | cyl | sphere | disc
    params: tuple
    label: int
    color: np.ndarray  # (3,) RGB albedo 0..1
    tex: int = 0  # 0 plain noise, 1 stripes, 2 dark lower part (vehicle body), 3 foliage
    bound: tuple = ((0.0, 0.0, 0.0), 1.0)  # bounding sphere (centre, radius)


def _box(c, size, yaw, label, color, tex=0) -> Prim:
    c = np.asarray(c, float)
    half = np.asarray(size, float) / 2
    return Prim(
        "box",
        (c, half, float(yaw)),
        label,
        np.asarray(color, np.float32),
        tex,
        (c, float(np.linalg.norm(half))),
    )


def _cyl(x, y, r, z0, z1, label, color, tex=0) -> Prim:
    c = np.array([x, y, (z0 + z1) / 2])
    return Prim("cyl", (float(x), float(y), float(r), float(z0), float(z1)), label, np.asarray(color, np.float32), tex,
                (c, math.hypot(r, (z1 - z0) / 2)))  # fmt: skip


def _sphere(c, r, label, color, tex=0) -> Prim:
    c = np.asarray(c, float)
    return Prim("sphere", (c, float(r)), label, np.asarray(color, np.float32), tex, (c, float(r)))


def _disc(c, yaw, r, label, color, tex=0) -> Prim:
    c = np.asarray(c, float)
    n = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    return Prim("disc", (c, n, float(r)), label, np.asarray(color, np.float32), tex, (c, float(r)))


def _mod(x: np.ndarray, p: float) -> np.ndarray:
    """``np.mod`` for positive ``p`` (several times faster on float32)."""
    return x - np.floor(x * (1.0 / p)) * p


def _intersect(p: Prim, o: tuple[float, float, float], d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (inf = miss) and (3, M) unit normal facing the ray origin, for rays o + t d, d (3, M)."""
    eps = 1e-4
    dx, dy, dz = d[0], d[1], d[2]
    m = dx.shape[0]
    if p.kind == "box":
        c, half, yaw = p.params
        cs, sn = math.cos(yaw), math.sin(yaw)
        # local frame: rotate by -yaw about z
        px, py, pz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
        lo = (cs * px + sn * py, -sn * px + cs * py, pz)
        dl = (cs * dx + sn * dy, -sn * dx + cs * dy, dz)
        tn, tf = [], []
        for k in range(3):
            dk = np.where(np.abs(dl[k]) < 1e-9, np.float32(1e-9), dl[k])
            inv = 1.0 / dk
            t1 = (-float(half[k]) - lo[k]) * inv
            t2 = (float(half[k]) - lo[k]) * inv
            tn.append(np.minimum(t1, t2))
            tf.append(np.maximum(t1, t2))
        tmin = np.maximum(np.maximum(tn[0], tn[1]), tn[2])
        tmax = np.minimum(np.minimum(tf[0], tf[1]), tf[2])
        hit = (tmax >= tmin) & (tmin > eps)
        t = np.where(hit, tmin, np.float32(np.inf)).astype(np.float32, copy=False)
        axis = np.where(tn[0] >= tmin, 0, np.where(tn[1] >= tmin, 1, 2))
        nlx = np.where(axis == 0, -np.sign(dl[0]), 0).astype(np.float32)
        nly = np.where(axis == 1, -np.sign(dl[1]), 0).astype(np.float32)
        nlz = np.where(axis == 2, -np.sign(dl[2]), 0).astype(np.float32)
        n = np.stack([cs * nlx - sn * nly, sn * nlx + cs * nly, nlz])
        return t, n
    if p.kind == "cyl":
        cx, cy, r, z0, z1 = p.params
        ox, oy, oz = o[0] - cx, o[1] - cy, o[2]
        a = dx * dx + dy * dy
        b = 2 * (ox * dx + oy * dy)
        cc = ox * ox + oy * oy - r * r
        disc = b * b - 4 * a * cc
        ok = (disc >= 0) & (a > 1e-12)
        sq = np.sqrt(np.maximum(disc, 0))
        ts = (-b - sq) / (2 * np.where(a > 1e-12, a, np.float32(1.0)))
        z = oz + ts * dz
        side = ok & (ts > eps) & (z >= z0) & (z <= z1)
        t = np.where(side, ts, np.float32(np.inf))
        tt = (z1 - oz) / dz
        px, py = ox + tt * dx, oy + tt * dy
        top = (tt > eps) & (px * px + py * py <= r * r) & (tt < t)
        t = np.where(top, tt, t).astype(np.float32, copy=False)
        tz = np.where(np.isfinite(t), t, 0)
        n = np.stack([(ox + tz * dx) / r, (oy + tz * dy) / r, np.zeros(m, np.float32)])
        n[:, top] = np.array([[0.0], [0.0], [1.0]], np.float32)
        return t, n
    if p.kind == "sphere":
        c, r = p.params
        ocx, ocy, ocz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
        b = dx * ocx + dy * ocy + dz * ocz
        cc = ocx * ocx + ocy * ocy + ocz * ocz - r * r
        disc = b * b - cc
        t = -b - np.sqrt(np.maximum(disc, 0))
        t = np.where((disc >= 0) & (t > eps), t, np.float32(np.inf)).astype(np.float32, copy=False)
        tz = np.where(np.isfinite(t), t, 0)
        n = np.stack([(ocx + tz * dx) / r, (ocy + tz * dy) / r, (ocz + tz * dz) / r])
        return t, n
    if p.kind == "disc":
        c, nrm, r = p.params
        nx, ny = float(nrm[0]), float(nrm[1])
        dn = dx * nx + dy * ny
        num = (c[0] - o[0]) * nx + (c[1] - o[1]) * ny
        t = num / dn
        tz = np.where(np.isfinite(t), t, 0)
        qx, qy, qz = o[0] - c[0] + tz * dx, o[1] - c[1] + tz * dy, o[2] - c[2] + tz * dz
        hit = np.isfinite(t) & (t > eps) & (qx * qx + qy * qy + qz * qz <= r * r)
        t = np.where(hit, t, np.float32(np.inf)).astype(np.float32, copy=False)
        sgn = np.where(dn > 0, np.float32(-1), np.float32(1))
        n = np.stack([sgn * nx, sgn * ny, np.zeros(m, np.float32)])
        return t, n
    raise ValueError(p.kind)


def _blocks(
    p: Prim, ox: np.ndarray, oy: np.ndarray, oz: np.ndarray, s: tuple[float, float, float]
) -> np.ndarray:
    """Boolean (M,): does primitive ``p`` block the rays from the points (ox, oy, oz) towards ``s`` (unit)?

    Shadow rays: many origins, one direction (the sun). Discs (wheels, round signs) cast no shadow.
    """
    eps = 1e-3
    sx, sy, sz = s
    if p.kind == "box":
        c, half, yaw = p.params
        cs, sn = math.cos(yaw), math.sin(yaw)
        px, py, pz = ox - c[0], oy - c[1], oz - c[2]
        lo = (cs * px + sn * py, -sn * px + cs * py, pz)
        dl = (cs * sx + sn * sy, -sn * sx + cs * sy, sz)
        tmin = np.full(ox.shape, -np.inf, np.float32)
        tmax = np.full(ox.shape, np.inf, np.float32)
        for k in range(3):
            hk = float(half[k])
            if abs(dl[k]) < 1e-9:  # parallel to this slab: inside it or never
                inside = np.abs(lo[k]) <= hk
                tmax = np.where(inside, tmax, -np.inf)
                continue
            t1 = (-hk - lo[k]) / dl[k]
            t2 = (hk - lo[k]) / dl[k]
            tmin = np.maximum(tmin, np.minimum(t1, t2))
            tmax = np.minimum(tmax, np.maximum(t1, t2))
        return (tmax >= tmin) & (tmax > eps)
    if p.kind == "cyl":
        cx, cy, r, z0, z1 = p.params
        qx, qy = ox - cx, oy - cy
        a = sx * sx + sy * sy
        if a < 1e-12:
            return (qx * qx + qy * qy <= r * r) & (oz < z1)
        b = 2 * (qx * sx + qy * sy)
        cc = qx * qx + qy * qy - r * r
        disc = b * b - 4 * a * cc
        sq = np.sqrt(np.maximum(disc, 0))
        t_in, t_out = (-b - sq) / (2 * a), (-b + sq) / (2 * a)
        z_in, z_out = oz + t_in * sz, oz + t_out * sz
        # the vertical segment of the line inside the infinite cylinder must meet [z0, z1]
        return (disc >= 0) & (t_out > eps) & (np.maximum(z_in, z_out) >= z0) & (np.minimum(z_in, z_out) <= z1)
    if p.kind == "sphere":
        c, r = p.params
        qx, qy, qz = ox - c[0], oy - c[1], oz - c[2]
        b = qx * sx + qy * sy + qz * sz
        cc = qx * qx + qy * qy + qz * qz - r * r
        disc = b * b - cc
        return (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0)) > eps)
    return np.zeros(ox.shape, bool)


# ------------------------------------------------------------------ scenes
@dataclass
class Scene:
    """Everything random about one scene (vehicle frame)."""

    y_left: float  # road edges (curb faces), y_left > 0 > y_right
    y_right: float
    curb_h: float
    curb_w: float
    bld_left: float  # facade planes
    bld_right: float
    lanes: np.ndarray  # (L,) y of dashed lane lines
    dash: tuple[float, float, float]  # period, length, phase
    edge_lines: bool
    line_w: float
    crosswalk: tuple[float, float] | None  # x range
    buildings: dict  # side -> (edges (S+1,), heights (S,), colors (S,3), win (S,4))
    prims: list[Prim]
    colors: dict  # road, mark, curb, side, sky_top, sky_hor, sun_col
    sun: np.ndarray
    ambient: float
    sun_int: float
    fog: float
    noise_sigma: float
    vignette: float
    exposure: float
    tex_seed: np.ndarray  # (8, 4) random texture phases/frequencies
    jitter: dict = field(default_factory=dict)  # camera -> (dpitch, droll, dz)


def _hsv(h, s, v) -> np.ndarray:
    c = cv2.cvtColor(np.array([[[h * 179, s * 255, v * 255]]], np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return c.astype(np.float32) / 255.0


def _rand_color(rng, sat=(0.2, 0.9), val=(0.3, 0.95)) -> np.ndarray:
    return _hsv(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val))


class _Placer:
    """Rejects footprints (circles) overlapping each other or the ego vehicle."""

    def __init__(self) -> None:
        self.items: list[tuple[float, float, float]] = []

    def free(self, x, y, r) -> bool:
        if -1.6 - r < x < 4.4 + r and abs(y) < 1.3 + r:
            return False
        return all((x - a) ** 2 + (y - b) ** 2 > (r + c) ** 2 for a, b, c in self.items)

    def add(self, x, y, r) -> None:
        self.items.append((x, y, r))


def make_scene(rng: np.random.Generator, cameras: Sequence[str] = CAMERA_NAMES) -> Scene:
    """Random layout, objects, materials and lighting of one scene."""
    u = rng.uniform
    y_left = u(1.9, 6.0)
    y_right = -u(1.9, 6.0)
    curb_h, curb_w = u(0.08, 0.2), u(0.12, 0.3)
    side_l, side_r = u(1.5, 5.0), u(1.5, 5.0)
    bld_left, bld_right = y_left + side_l + u(0.0, 3.0), y_right - side_r - u(0.0, 3.0)
    lane_w = u(2.7, 3.7)
    nl = int((y_left - y_right) // lane_w)
    lanes = y_right + lane_w * np.arange(1, max(nl, 1))
    lanes = lanes[(lanes > y_right + 1.0) & (lanes < y_left - 1.0)]
    if lanes.size == 0 or rng.uniform() < 0.2:
        lanes = np.array([u(-0.6, 0.6) + (1.5 if rng.uniform() < 0.5 else -1.5)])
    period = u(6, 14)
    dash = (period, period * u(0.3, 0.6), u(0, period))
    crosswalk = None
    if rng.uniform() < 0.5:
        x0 = u(6, 18) * (1 if rng.uniform() < 0.6 else -1)
        crosswalk = (x0, x0 + u(2.5, 4.0))
    buildings = {}
    for side in ("L", "R"):
        edges = [-160.0]
        while edges[-1] < 160:
            edges.append(edges[-1] + u(6, 30))
        edges = np.array(edges, np.float32)
        s = len(edges) - 1
        heights = np.where(rng.uniform(size=s) < 0.12, 0.0, rng.uniform(3, 28, size=s))
        colors = np.stack([_rand_color(rng, (0.05, 0.5), (0.35, 0.9)) for _ in range(s)])
        win = np.stack(
            [
                rng.uniform(2.5, 4.0, s),
                rng.uniform(1.2, 3.5, s),
                rng.uniform(0.3, 0.7, s),
                rng.uniform(0.4, 0.75, s),
            ],
            1,
        )
        buildings[side] = (
            edges,
            heights.astype(np.float32),
            colors.astype(np.float32),
            win.astype(np.float32),
        )
    road = np.full(3, u(0.18, 0.42), np.float32) * _hsv(u(0.55, 0.7), u(0, 0.15), 1.0)
    colors = {
        "road": road,
        "mark": np.array([0.92, 0.92, 0.9], np.float32) * u(0.75, 1.0)
        if rng.uniform() < 0.8
        else np.array([0.95, 0.8, 0.25], np.float32),
        "curb": np.full(3, u(0.5, 0.8), np.float32) * _hsv(u(0, 1), u(0, 0.1), 1.0),
        "side": _rand_color(rng, (0.0, 0.35), (0.4, 0.8)),
        "verge": _hsv(u(0.2, 0.35), u(0.3, 0.7), u(0.25, 0.55)),
        "sky_top": _hsv(u(0.55, 0.65), u(0.3, 0.8), u(0.55, 0.95)),
        "sky_hor": _hsv(u(0.5, 0.65), u(0.0, 0.3), u(0.75, 1.0)),
        "sun_col": _hsv(u(0.05, 0.15), u(0.0, 0.35), 1.0),
    }
    el, az = math.radians(u(12, 70)), u(0, 2 * math.pi)
    sun = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)], np.float32)

    prims: list[Prim] = []
    place = _Placer()

    def near_xy(lo=4.0, hi=14.0):
        """A point around the vehicle at distance lo..hi (any direction; visible by some camera)."""
        a = u(0, 2 * math.pi)
        rr = u(lo, hi)
        return 1.4 + rr * math.cos(a), rr * math.sin(a)

    def on_sidewalk(side=None):
        side = side or ("L" if rng.uniform() < 0.5 else "R")
        if side == "L":
            return u(y_left + 0.4, bld_left - 0.3)
        return u(bld_right + 0.3, y_right - 0.4)

    def add_vehicle(x, y, yaw):
        ln, wd = u(3.6, 5.0), u(1.6, 2.0)
        h0, h1 = u(0.2, 0.35), u(0.85, 1.1)
        col = _rand_color(rng, (0.0, 0.9), (0.15, 0.95))
        prims.append(_box((x, y, (h0 + h1) / 2), (ln, wd, h1 - h0), yaw, VEHICLES, col, 2))
        cl = ln * u(0.45, 0.65)
        hc = u(0.4, 0.65) if rng.uniform() < 0.85 else u(0.9, 1.4)  # cars and vans
        off = u(-0.15, 0.05) * ln
        cx, cy = x + off * math.cos(yaw), y + off * math.sin(yaw)
        prims.append(_box((cx, cy, h1 + hc / 2), (cl, wd * 0.9, hc), yaw, VEHICLES, col * 0.6 + 0.05, 2))
        for sgn in (-1, 1):  # wheels peeking out below the body
            for s2 in (-1, 1):
                wx = x + sgn * ln * 0.32 * math.cos(yaw) - s2 * wd * 0.47 * math.sin(yaw)
                wy = y + sgn * ln * 0.32 * math.sin(yaw) + s2 * wd * 0.47 * math.cos(yaw)
                prims.append(
                    _disc((wx, wy, 0.32), yaw + math.pi / 2, 0.32, VEHICLES, np.full(3, 0.06, np.float32))
                )

    def add_large_vehicle(x, y, yaw):
        """Bus or truck: one tall box (windows band via the vehicle texture) on large wheels."""
        ln, wd, top = u(7.0, 11.5), u(2.3, 2.55), u(2.6, 3.4)
        col = _rand_color(rng, (0.2, 0.9), (0.3, 0.95))
        prims.append(_box((x, y, (0.35 + top) / 2), (ln, wd, top - 0.35), yaw, VEHICLES, col, 2))
        for sgn in (-1, 1):
            for s2 in (-1, 1):
                wx = x + sgn * ln * 0.35 * math.cos(yaw) - s2 * wd * 0.47 * math.sin(yaw)
                wy = y + sgn * ln * 0.35 * math.sin(yaw) + s2 * wd * 0.47 * math.cos(yaw)
                prims.append(
                    _disc((wx, wy, 0.5), yaw + math.pi / 2, 0.5, VEHICLES, np.full(3, 0.06, np.float32))
                )

    def add_person(x, y, label=PERSON, z0=0.0, height=None):
        h = height if height is not None else u(1.45, 1.95)
        r = u(0.17, 0.26)
        hr = u(0.095, 0.125)
        col = _rand_color(rng)
        prims.append(_cyl(x, y, r, z0, z0 + h - 2 * hr, label, col, 1 if rng.uniform() < 0.4 else 0))
        prims.append(_sphere((x, y, z0 + h - hr), hr, label, _hsv(u(0.03, 0.1), u(0.2, 0.6), u(0.3, 0.9))))

    def add_two_wheeler(x, y, yaw, motor, rider):
        label = MOTORCYCLE if motor else BICYCLE
        wr = u(0.3, 0.36)
        base = u(0.5, 0.6) if not motor else u(0.65, 0.8)
        col = _rand_color(rng)
        for s in (-1, 1):
            prims.append(_disc((x + s * base * math.cos(yaw), y + s * base * math.sin(yaw), wr), yaw + math.pi / 2, wr, label,
                               np.full(3, 0.08, np.float32)))  # fmt: skip
        if motor:
            prims.append(_box((x, y, wr + 0.25), (base * 1.6, u(0.35, 0.5), 0.5), yaw, label, col))
        else:
            prims.append(_box((x, y, wr + 0.3), (base * 1.6, 0.06, 0.55), yaw, label, col))
        if rider:
            add_person(
                x - 0.15 * math.cos(yaw), y - 0.15 * math.sin(yaw), RIDER, z0=wr + 0.35, height=u(0.85, 1.05)
            )

    def add_sign(x, y, facing):
        top = u(2.0, 3.0)
        prims.append(_cyl(x, y, u(0.035, 0.06), 0.0, top, VOID, np.full(3, u(0.3, 0.6), np.float32)))
        col = [
            np.array(c, np.float32)
            for c in ((0.8, 0.1, 0.1), (0.1, 0.2, 0.75), (0.95, 0.95, 0.9), (0.95, 0.8, 0.1))
        ][rng.integers(4)]
        yaw = facing + u(-0.4, 0.4)
        px, py = x + 0.08 * math.cos(yaw), y + 0.08 * math.sin(yaw)
        if rng.uniform() < 0.5:
            prims.append(_disc((px, py, top - 0.3), yaw, u(0.3, 0.45), TRAFFIC_SIGN, col))
        else:
            s = u(0.5, 0.8)
            prims.append(_box((px, py, top - s / 2), (0.04, s, s * u(0.7, 1.3)), yaw, TRAFFIC_SIGN, col))

    def try_place(gen, r, tries=30):
        for _ in range(tries):
            x, y = gen()
            if place.free(x, y, r):
                place.add(x, y, r)
                return x, y
        return None

    def lane_y():
        return u(y_right + 1.1, y_left - 1.1)

    # Guaranteed near objects: every class in every scene, at a distance small images still resolve.
    p = try_place(
        lambda: near_xy(4.5, 12.0) if rng.uniform() < 0.5 else (near_xy(4.5, 12.0)[0], lane_y()), 2.6
    )
    if p:
        add_vehicle(p[0], p[1], u(-0.15, 0.15) + (math.pi if rng.uniform() < 0.5 else 0))
    p = try_place(lambda: (near_xy(3.0, 9.0)[0], on_sidewalk()), 0.5)
    if p:
        add_person(*p)
    for motor in (False, True):
        p = try_place(lambda: near_xy(3.5, 10.0), 1.2)
        if p:
            add_two_wheeler(
                p[0],
                p[1],
                u(-0.5, 0.5)
                + (math.pi if rng.uniform() < 0.5 else 0)
                + (math.pi / 2 if rng.uniform() < 0.25 else 0),
                motor,
                True,
            )
    p = try_place(lambda: (near_xy(4.0, 12.0)[0], on_sidewalk()), 0.4)
    if p:
        add_sign(p[0], p[1], 0.0 if p[0] > 1.4 else math.pi)

    # Random extras further away.
    for _ in range(rng.integers(2, 9)):  # parked and moving vehicles
        if rng.uniform() < 0.5:
            side = 1 if rng.uniform() < 0.5 else -1
            gen = lambda side=side: (u(-45, 50), (y_left - 1.1) if side > 0 else (y_right + 1.1))
        else:
            gen = lambda: (u(-50, 60), lane_y())
        p = try_place(gen, 2.6)
        if p:
            add_vehicle(p[0], p[1], u(-0.08, 0.08) + (math.pi if rng.uniform() < 0.5 else 0))
    if rng.uniform() < 0.35:  # a bus or truck further away, in a lane or parked
        p = try_place(lambda: (u(10, 45) * (1 if rng.uniform() < 0.6 else -1), lane_y()), 6.0)
        if p:
            add_large_vehicle(p[0], p[1], u(-0.05, 0.05) + (math.pi if rng.uniform() < 0.5 else 0))
    for _ in range(rng.integers(1, 7)):
        p = try_place(lambda: (u(-30, 40), on_sidewalk() if rng.uniform() < 0.8 else lane_y()), 0.5)
        if p:
            add_person(*p)
    for _ in range(rng.integers(0, 3)):
        p = try_place(lambda: (u(-30, 40), lane_y()), 1.2)
        if p:
            add_two_wheeler(
                p[0],
                p[1],
                u(-0.2, 0.2) + (math.pi if rng.uniform() < 0.5 else 0),
                rng.uniform() < 0.5,
                rng.uniform() < 0.7,
            )
    for _ in range(rng.integers(1, 5)):
        p = try_place(lambda: (u(-40, 50), on_sidewalk()), 0.4)
        if p:
            add_sign(p[0], p[1], 0.0 if rng.uniform() < 0.6 else math.pi)
    for _ in range(rng.integers(1, 6)):  # trees and lamp posts (void)
        p = try_place(lambda: (u(-40, 50), on_sidewalk()), 0.6)
        if p is None:
            continue
        if rng.uniform() < 0.6:
            h = u(2.5, 4.0)
            prims.append(
                _cyl(p[0], p[1], u(0.1, 0.2), 0.0, h, VOID, _hsv(u(0.05, 0.1), u(0.3, 0.6), u(0.2, 0.4)))
            )
            prims.append(
                _sphere(
                    (p[0], p[1], h + u(0.8, 1.5)),
                    u(1.2, 2.2),
                    VOID,
                    _hsv(u(0.2, 0.35), u(0.4, 0.8), u(0.2, 0.5)),
                    3,
                )
            )
        else:
            prims.append(
                _cyl(p[0], p[1], u(0.06, 0.12), 0.0, u(4, 7), VOID, np.full(3, u(0.25, 0.55), np.float32))
            )

    jitter = {c: (u(-0.6, 0.6), u(-0.5, 0.5), u(-0.02, 0.02)) for c in CAMERA_NAMES}
    return Scene(
        y_left, y_right, curb_h, curb_w, bld_left, bld_right, lanes, dash, rng.uniform() < 0.7, u(0.1, 0.2), crosswalk,
        buildings, prims, colors, sun, u(0.3, 0.5), u(0.5, 0.9), u(60, 400), u(0.004, 0.02), u(0.0, 0.35), u(0.85, 1.15),
        rng.uniform(0, 2 * math.pi, size=(8, 4)).astype(np.float32), jitter,
    )  # fmt: skip


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


# ---------------------------------------------------------------- textures
def _waves(x: np.ndarray, y: np.ndarray, ph: np.ndarray, scale: float) -> np.ndarray:
    """Smooth pseudo-random field in [-1, 1] from four oblique sine waves."""
    out = np.zeros_like(x)
    for i in range(3):
        f = scale * (1.0 + 0.9 * i)
        a = float(ph[i])
        out += np.sin((f * math.cos(a)) * x + (f * math.sin(a)) * y + float(ph[(i + 1) % 4]) * 3)
    return out * np.float32(1 / 3)


def _grain(x: np.ndarray, y: np.ndarray, freq: float) -> np.ndarray:
    """Hash noise in [0, 1) on a lattice of 1/freq metres."""
    ix = np.floor(x * freq).astype(np.int32).view(np.uint32)
    iy = np.floor(y * freq).astype(np.int32).view(np.uint32)
    h = (ix * np.uint32(73856093)) ^ (iy * np.uint32(19349663))
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    return ((h >> np.uint32(8)) & np.uint32(0xFFFF)).astype(np.float32) * np.float32(1 / 65536.0)


# ----------------------------------------------------------------- render
_SKY, _ROADS, _MARK, _CURBF, _SIDE, _VERGE, _FAC_L, _FAC_R = range(8)
_N_STATIC = 8
_STATIC_LABELS = (VOID, ROAD, LANEMARKS, CURB, VOID, VOID, VOID, VOID)


def render_scene(scene: Scene, camera: FisheyeCamera, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Ray cast one camera. Returns ``image`` (H, W, 3) uint8 BGR, ``label`` (H, W) uint8 WoodScape ids,
    ``depth`` (H, W) float32 metres along the ray (inf = sky)."""
    rays = _camera_rays(_intrinsic_only(camera))
    rot = [[float(c) for c in row] for row in camera.rotation]  # python floats keep float32 math
    cxr, cyr, czr = rays.dirs
    # vehicle-frame unit rays, tile order; three contiguous rows (a (P,3)@(3,3) matmul is slow here)
    dx = (rot[0][0] * cxr + rot[0][1] * cyr + rot[0][2] * czr).astype(np.float32)
    dy = (rot[1][0] * cxr + rot[1][1] * cyr + rot[1][2] * czr).astype(np.float32)
    dz = (rot[2][0] * cxr + rot[2][1] * cyr + rot[2][2] * czr).astype(np.float32)
    ox, oy, oz = (float(c) for c in camera.translation)
    o = (ox, oy, oz)
    P = dx.shape[0]
    inf32 = np.float32(np.inf)
    sid = np.zeros(P, np.int16)  # surface id: static < _N_STATIC, primitives after
    nx = np.zeros(P, np.float32)
    ny = np.zeros(P, np.float32)
    nz = np.zeros(P, np.float32)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # --- ground: road (z = 0), sidewalks (z = curb_h beyond the edges), curb faces between
        down = dz < -1e-6
        inv_dz = np.float32(1.0) / dz
        t0 = np.where(down, -oz * inv_dz, inf32)
        ts = np.where(down, (scene.curb_h - oz) * inv_dz, inf32)
        y0 = oy + t0 * dy
        ysw = oy + ts * dy
        on_side = down & ((ysw > scene.y_left) | (ysw < scene.y_right))
        on_road = down & ~on_side & (y0 <= scene.y_left) & (y0 >= scene.y_right)
        on_face = down & ~on_side & ~on_road
        left = y0 > 0
        tf = np.where(left, scene.y_left - oy, scene.y_right - oy) / dy
        t_best = np.where(on_side, ts, np.where(on_road, t0, np.where(on_face, tf, inf32))).astype(np.float32)
        sid[on_road] = _ROADS
        sid[on_face] = _CURBF
        sid[on_side] = _SIDE
        nz[:] = 1.0
        nz[on_face] = 0.0
        ny[on_face] = np.where(left[on_face], -1.0, 1.0)
        # --- facades: vertical planes y = bld_left / bld_right split into buildings
        for side, yb, code in (("L", scene.bld_left, _FAC_L), ("R", scene.bld_right, _FAC_R)):
            edges, heights, _, _ = scene.buildings[side]
            cand = np.nonzero((dy > 1e-6) if yb > 0 else (dy < -1e-6))[0]
            tb = (yb - oy) / dy[cand]
            zb = oz + tb * dz[cand]
            pre = np.nonzero((zb < float(heights.max())) & (tb < t_best[cand]))[0]  # cheap test first
            cand, tb, zb = cand[pre], tb[pre], zb[pre]
            xb = ox + tb * dx[cand]
            seg = np.clip(np.searchsorted(edges, xb) - 1, 0, len(heights) - 1)
            hit = (xb > edges[0]) & (xb < edges[-1]) & (zb < heights[seg])
            g = cand[hit]
            t_best[g] = tb[hit]
            sid[g] = code
            nx[g], ny[g], nz[g] = 0.0, (-1.0 if yb > 0 else 1.0), 0.0

        # --- primitives, culled by tile cones
        ray_axis = rays.tile_dir @ camera.rotation.T  # (T, 3) vehicle frame
        labels = list(_STATIC_LABELS)
        cand_lists: list[np.ndarray] = []
        for i, p in enumerate(scene.prims):
            c, r = p.bound
            v = np.asarray(c) - np.asarray(o)
            dist = float(np.linalg.norm(v))
            if dist <= r:
                sel = np.arange(len(rays.tile_start))
            else:
                beta = math.asin(min(1.0, r / dist))
                cosang = np.clip(ray_axis @ (v / dist), -1, 1)
                sel = np.nonzero(np.arccos(cosang) <= beta + rays.tile_half)[0]
            idx = _gather_tiles(rays, sel)
            labels.append(p.label)
            if idx.size == 0:
                cand_lists.append(idx)
                continue
            t, n = _intersect(p, o, (dx[idx], dy[idx], dz[idx]))
            win = t < t_best[idx]
            idx = idx[win]
            t_best[idx] = t[win]
            sid[idx] = _N_STATIC + i
            nx[idx], ny[idx], nz[idx] = n[0][win], n[1][win], n[2][win]
            cand_lists.append(idx)

    # --- labels and depth
    label_sorted = np.asarray(labels, np.uint8)[sid]
    sky = ~(t_best < MAX_DEPTH)
    sid[sky] = _SKY
    label_sorted[sky] = VOID
    depth_sorted = np.where(sky, inf32, t_best)

    # --- albedo per surface
    albedo = np.zeros((3, P), np.float32)
    th = np.where(sky, np.float32(0), t_best)
    hx, hy, hz = ox + th * dx, oy + th * dy, oz + th * dz
    col = scene.colors
    ph = scene.tex_seed

    # (per channel with scalar colours: broadcasting (3, M) selects is several times slower)
    g = np.nonzero(sid == _ROADS)[0]
    if g.size:
        x, y = hx[g], hy[g]
        mark = _lane_marks(scene, x, y)
        label_sorted[g[mark]] = LANEMARKS
        # 2.5 cm asphalt grain, faded out within ~3 m where its cells would span many pixels
        fade = np.minimum(th[g] * np.float32(1 / 3.0), 1.0)
        tex = 1 + 0.16 * _waves(x, y, ph[0], 0.35) + (0.14 * fade) * (_grain(x, y, 40) - 0.5)
        for k in range(3):
            albedo[k, g] = np.where(mark, col["mark"][k], col["road"][k]) * tex
    g = np.nonzero((sid == _SIDE) | (sid == _CURBF))[0]
    if g.size:
        x, y = hx[g], hy[g]
        face = sid[g] == _CURBF
        dist_edge = np.where(y > 0, y - scene.y_left, scene.y_right - y)
        curb = face | (dist_edge < scene.curb_w)
        beyond = (y > scene.bld_left) | (y < scene.bld_right)
        label_sorted[g[curb]] = CURB
        tile = 0.55 + 0.45 * ((_mod(x, 0.5) > 0.03) & (_mod(y, 0.5) > 0.03))
        tex = 1 + 0.2 * (_grain(x, y, 2) - 0.5) + 0.1 * _waves(x, y, ph[1], 0.8)
        for k in range(3):
            albedo[k, g] = (
                np.where(curb, col["curb"][k], np.where(beyond, col["verge"][k], col["side"][k] * tile)) * tex
            )
    for code, side in ((_FAC_L, "L"), (_FAC_R, "R")):
        g = np.nonzero(sid == code)[0]
        if g.size == 0:
            continue
        edges, heights, bcol, win = scene.buildings[side]
        x, z = hx[g], hz[g]
        seg = np.clip(np.searchsorted(edges, x) - 1, 0, len(heights) - 1)
        fh, sx, fw, fz = win[seg].T
        fx = (x - edges[seg]).astype(np.float32) / sx
        fx -= np.floor(fx)
        fzz = z / fh
        fzz -= np.floor(fzz)
        window = (fx < fw) & (fzz > 0.3) & (fzz < 0.3 + fz) & (z > 1.0)
        tex = 1 + 0.12 * _waves(x, z, ph[2], 1.3) + 0.1 * (_grain(x, z, 6) - 0.5)
        refl = 0.2 * z / np.maximum(heights[seg], 1)
        for k, gk in enumerate((0.12, 0.16, 0.22)):
            albedo[k, g] = np.where(window, gk + refl, bcol[seg, k] * tex)
    for i, (p, idx) in enumerate(zip(scene.prims, cand_lists)):
        if idx.size == 0:
            continue
        idx = idx[sid[idx] == _N_STATIC + i]
        if idx.size == 0:
            continue
        x, y, z = hx[idx], hy[idx], hz[idx]
        if p.tex == 1:
            tex = 0.7 + 0.3 * (_mod(z * 7, 1.0) > 0.5)
        elif p.tex == 2:
            tex = np.where(z < p.params[0][2] - p.params[1][2] + 0.15, 0.35, 1.0) + 0.06 * _waves(
                x, z, ph[3], 2.0
            )
        elif p.tex == 3:
            tex = 0.75 + 0.5 * _grain(x + y, z, 5)
        else:
            tex = 1 + 0.1 * _waves(x + y, z, ph[4], 3.0)
        tex = tex.astype(np.float32)
        for k in range(3):
            albedo[k, idx] = p.color[k] * tex

    # --- sun shadows cast by the objects onto the ground (road, curbs, sidewalks)
    sx_, sy_, sz_ = (float(c) for c in scene.sun)
    lam = np.maximum(nx * sx_ + ny * sy_ + nz * sz_, 0)
    ground = np.zeros(_N_STATIC + len(scene.prims), bool)
    ground[[_ROADS, _MARK, _CURBF, _SIDE]] = True
    for p in scene.prims:
        if p.kind == "disc":
            continue
        c, r = p.bound
        # bounding sphere of the shadow: the caster's sphere slid along the sun ray down to the ground
        cz = max(float(c[2]), 0.0)
        centre = np.array([c[0] - sx_ * cz / sz_, c[1] - sy_ * cz / sz_, 0.0])
        rad = r / sz_ + 0.5 * cz * math.hypot(sx_, sy_) / sz_
        v = centre - np.asarray(o)
        dist = float(np.linalg.norm(v))
        if dist <= rad:
            continue  # the camera is inside the shadow region's bound: rare, skipped for speed
        cosang = np.clip(ray_axis @ (v / dist), -1, 1)
        sel = np.nonzero(np.arccos(cosang) <= math.asin(min(1.0, rad / dist)) + rays.tile_half)[0]
        idx = _gather_tiles(rays, sel)
        if idx.size == 0:
            continue
        idx = idx[ground[sid[idx]] & (lam[idx] > 0)]
        if idx.size == 0:
            continue
        hit = _blocks(p, hx[idx], hy[idx], hz[idx], (sx_, sy_, sz_))
        lam[idx[hit]] = 0.0

    # --- lighting: ambient (more from above) + Lambert sun; distance fog; sky gradient and sun glow
    shade = scene.ambient * (0.75 + 0.25 * nz) + scene.sun_int * lam
    fog = np.exp(-th * np.float32(1.0 / scene.fog))
    fog[sky] = 0.0
    tint = 0.6 + 0.4 * col["sun_col"]
    s_idx = np.nonzero(sky)[0]
    el = np.clip(dz[s_idx], 0, 1)
    glow = np.clip(dx[s_idx] * sx_ + dy[s_idx] * sy_ + dz[s_idx] * sz_, 0, 1)
    for _ in range(5):  # ** 32 by squaring (pow is slow)
        glow *= glow
    gain = (scene.exposure * 255.0) * (1 - scene.vignette * rays.vignette)
    h, w = camera.height, camera.width
    # Gaussian sensor noise: random windows of a fixed per-size white-noise field (drawing fresh
    # normals per image costs more than the whole shading), scaled per scene. Pixels are i.i.d., so
    # the tile order of the arrays here does not matter.
    bank = _noise_bank(P)
    offs = rng.integers(0, bank.shape[1] - P + 1, size=3)
    order = rng.permutation(3)
    sigma = np.float32(scene.noise_sigma * 255.0)
    haze = 1 - fog
    u8 = np.empty((3, P), np.uint8)
    for k in range(3):
        v = albedo[k] * (shade * tint[k])
        v *= fog
        v += col["sky_hor"][k] * haze
        v[s_idx] = col["sky_hor"][k] * (1 - el) + col["sky_top"][k] * el + 0.5 * col["sun_col"][k] * glow
        v *= gain
        v += bank[order[k], offs[k] : offs[k] + P] * sigma
        v += 0.5
        np.clip(v, 0, 255, out=v)
        u8[k] = v
    u8 = u8[:, rays.iperm]  # tile order -> image order (uint8: a quarter of the float traffic)
    image = cv2.merge([u8[2].reshape(h, w), u8[1].reshape(h, w), u8[0].reshape(h, w)])  # BGR
    return {
        "image": image,
        "label": label_sorted[rays.iperm].reshape(h, w),
        "depth": depth_sorted[rays.iperm].reshape(h, w),
    }


@lru_cache(maxsize=4)
def _noise_bank(n: int) -> np.ndarray:
    """(3, 1.5 n) float32 standard normal values, fixed per image size (deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([0x5E5, n]))
    bank = rng.standard_normal((3, n + n // 2), dtype=np.float32)
    bank.setflags(write=False)
    return bank


def _intrinsic_only(camera: FisheyeCamera) -> FisheyeCamera:
    """Drop the extrinsics so that the ray cache is keyed by the intrinsics only."""
    return FisheyeCamera(
        camera.k, camera.cx_offset, camera.cy_offset, camera.aspect_ratio, camera.width, camera.height, model=camera.model
    )


def _lane_marks(scene: Scene, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    hw = scene.line_w / 2
    period, length, phase = scene.dash
    dashed = _mod(x + phase, period) < length
    mark = np.zeros(x.shape, bool)
    for ly in scene.lanes:
        mark |= (np.abs(y - ly) < hw) & dashed
    if scene.edge_lines:
        mark |= np.abs(y - (scene.y_left - 0.35)) < hw
        mark |= np.abs(y - (scene.y_right + 0.35)) < hw
    if scene.crosswalk is not None:
        x0, x1 = scene.crosswalk
        mark |= (
            (x > x0) & (x < x1) & (_mod(y, 1.0) < 0.5) & (y < scene.y_left - 0.3) & (y > scene.y_right + 0.3)
        )
    return mark


# ----------------------------------------------------------------- output
@dataclass(frozen=True)
class SynthConfig:
    """Settings of one generated dataset (recorded in its card; a resume must match them)."""

    scenes: int = 200
    seed: int = 0
    width: int = FULL_SIZE[0]
    height: int = FULL_SIZE[1]
    cameras: tuple[str, ...] = CAMERA_NAMES
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    png_compression: int = 1

    def matches(self, card: dict) -> bool:
        g = card.get("generator", {})
        return (
            g.get("version") == GENERATOR_VERSION
            and g.get("seed") == self.seed
            and g.get("width") == self.width
            and g.get("height") == self.height
            and tuple(g.get("cameras", ())) == tuple(self.cameras)
        )


_DIRS = {
    "image": ("rgb_images", ".png"),
    "label": ("semantic_annotations/gtLabels", ".png"),
    "rgb_label": ("semantic_annotations/rgbLabels", ".png"),
    "depth": ("depth_maps/raw_data", ".npy"),
    "calibration": ("calibration", ".json"),  # written last: marks the camera as complete
}


def sample_stem(scene: int, camera: str) -> str:
    return f"{scene:05d}_{camera}"


def _paths(root: Path, stem: str) -> dict[str, Path]:
    return {k: root / sub / f"{stem}{ext}" for k, (sub, ext) in _DIRS.items()}


def scene_complete(root: Path, scene: int, cameras: Sequence[str]) -> bool:
    return all(p.exists() for c in cameras for p in _paths(Path(root), sample_stem(scene, c)).values())


def _png(
    img: np.ndarray, level: int, strategy: int = cv2.IMWRITE_PNG_STRATEGY_DEFAULT, filt: str | None = None
) -> bytes:
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_STRATEGY, strategy]
    if filt is not None and hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10: skip adaptive filtering
        params += [cv2.IMWRITE_PNG_FILTER, getattr(cv2, f"IMWRITE_PNG_FILTER_{filt}")]
    ok, buf = cv2.imencode(".png", img, params)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _npy(arr: np.ndarray) -> bytes:
    import io

    f = io.BytesIO()
    np.save(f, arr, allow_pickle=False)
    return f.getvalue()


def _iter_scene(config: SynthConfig, scene: int):
    """Yield ``(camera name, rendered dict incl. its calibration)`` for every camera of a scene."""
    base = rig_cameras(config.width, config.height, config.cameras)
    layout_ss, noise_ss = np.random.SeedSequence([config.seed, scene]).spawn(2)
    sc = make_scene(np.random.default_rng(layout_ss), config.cameras)
    # one noise stream per camera *name*, so that --cameras subsets render identical images
    noise = {n: np.random.default_rng(s) for n, s in zip(CAMERA_NAMES, noise_ss.spawn(len(CAMERA_NAMES)))}
    for name, cam0 in base.items():
        cam = scene_camera(cam0, sc.jitter[name])
        res = render_scene(sc, cam, noise[name])
        res["camera"] = cam
        yield name, res


def render_scene_index(config: SynthConfig, scene: int) -> dict[str, dict]:
    """Render scene ``scene`` of the dataset for every camera (in memory)."""
    return dict(_iter_scene(config, scene))


def _write_camera(root: Path, config: SynthConfig, stem: str, res: dict) -> None:
    paths = _paths(root, stem)
    # Huffman-only + the "up" filter suits the noisy photographs (2x faster than deflate, about the
    # same size); RLE without filtering suits the piecewise-constant label maps
    atomic_write_bytes(
        paths["image"],
        _png(res["image"], config.png_compression, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY, "UP"),
    )
    atomic_write_bytes(
        paths["label"], _png(res["label"], config.png_compression, cv2.IMWRITE_PNG_STRATEGY_RLE, "NONE")
    )
    rgb_label = WOODSCAPE_CLASSES.colorize(res["label"])
    atomic_write_bytes(
        paths["rgb_label"], _png(rgb_label, config.png_compression, cv2.IMWRITE_PNG_STRATEGY_RLE, "NONE")
    )
    atomic_write_bytes(paths["depth"], _npy(res["depth"]))
    calib = res["camera"].to_dict()
    atomic_write_bytes(
        paths["calibration"], (json.dumps(calib, indent=2) + "\n").encode()
    )  # last: marks completion


_ENCODER: tuple[int, ThreadPoolExecutor] | None = None


def _encoder() -> ThreadPoolExecutor:
    """One encoder thread per process (a forked worker must not reuse its parent's executor)."""
    global _ENCODER
    if _ENCODER is None or _ENCODER[0] != os.getpid():
        _ENCODER = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-encode"))
    return _ENCODER[1]


def write_scene(root: Path, config: SynthConfig, scene: int) -> int:
    """Render and write one scene (all cameras); returns the number of images written.

    PNG encoding and writing of camera i run in a background thread while camera i + 1 is rendered
    (OpenCV and numpy release the GIL), so one process keeps about two cores busy.
    """
    pending = []
    try:
        for name, res in _iter_scene(config, scene):
            pending.append(_encoder().submit(_write_camera, root, config, sample_stem(scene, name), res))
    finally:
        for f in pending:
            f.result()  # re-raises write errors
    return len(pending)


def _worker(args: tuple[str, SynthConfig, int]) -> int:
    root, config, scene = args
    return write_scene(Path(root), config, scene)


def split_scenes(config: SynthConfig) -> dict[str, list[int]]:
    """Scene indices per split: a seeded permutation, fractions ``config.split`` (train, val, test)."""
    perm = np.random.default_rng(np.random.SeedSequence([config.seed, 0x5917])).permutation(config.scenes)
    n_val = round(config.split[1] * config.scenes)
    n_test = round(config.split[2] * config.scenes)
    if config.scenes >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    n_train = config.scenes - n_val - n_test
    return {
        "train": sorted(perm[:n_train].tolist()),
        "val": sorted(perm[n_train : n_train + n_val].tolist()),
        "test": sorted(perm[n_train + n_val :].tolist()),
    }


def dataset_card(config: SynthConfig, splits: dict[str, list[int]]) -> dict:
    return {
        "name": "heal-swin-synthetic",
        "format": "woodscape",
        "description": "Procedural street scenes ray cast through four WoodScape-style fisheye cameras "
        "(heal_swin.data.synthetic). Regenerate with the command below; same seed, same bytes.",
        "command": f"heal-swin data synth --out <ROOT> --scenes {config.scenes} --seed {config.seed} "
        f"--width {config.width} --height {config.height} --cameras {','.join(config.cameras)}",
        "generator": {
            "version": GENERATOR_VERSION,
            "seed": config.seed,
            "scenes": config.scenes,
            "width": config.width,
            "height": config.height,
            "cameras": list(config.cameras),
        },
        "layout": {k: sub for k, (sub, _) in _DIRS.items()},
        "sample_names": "NNNNN_CAM (scene index, camera FV/RV/MVL/MVR)",
        **WOODSCAPE_CLASSES.to_card(),
        "labels": "single-channel PNG of class ids; rgbLabels use the BGR colours above. Sky, buildings, "
        "sidewalks, poles, trees are void (0), as in WoodScape.",
        "depth": {
            "unit": "metre",
            "measured": "along the ray (Euclidean distance from the camera centre)",
            "dtype": "float32",
            "invalid": "inf (sky / no surface / beyond 1000 m)",
        },
        "green_strips": False,
        "splits": {k: len(v) * len(config.cameras) for k, v in splits.items()},
        "split_by": "scene (all cameras of a scene are in the same split)",
    }


def generate(
    out: str | Path,
    config: SynthConfig,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict:
    """Generate (or complete) the dataset under ``out``. Returns a summary dict.

    Re-running with the same settings skips complete scenes; different settings on an existing
    dataset raise ``ValueError`` unless ``overwrite`` (which regenerates every scene).
    """
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    card_path = root / CARD_NAME
    if card_path.exists() and not overwrite:
        try:
            old = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        if old is not None and not config.matches(old):
            raise ValueError(
                f"{card_path}: existing dataset was generated with {old.get('generator')}; "
                f"refusing to mix with seed={config.seed} size={config.width}x{config.height} cameras={list(config.cameras)} "
                "(use another --out or --overwrite)"
            )
    todo = [s for s in range(config.scenes) if overwrite or not scene_complete(root, s, config.cameras)]
    skipped = config.scenes - len(todo)
    if skipped:
        log(f"synth: {skipped} complete scene(s) already in {root}, skipped")
    t0 = time.perf_counter()
    bar = _progress(len(todo) * len(config.cameras), progress)
    n_img = 0
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn" if sys.platform == "darwin" else "fork")
        with ctx.Pool(workers) as pool:
            for n in pool.imap_unordered(_worker, [(str(root), config, s) for s in todo]):
                n_img += n
                bar(n)
    else:
        for s in todo:
            n = write_scene(root, config, s)
            n_img += n
            bar(n)
    bar(None)
    elapsed = time.perf_counter() - t0
    splits = split_scenes(config)
    for name, scenes in splits.items():
        lines = "".join(f"{sample_stem(s, c)}\n" for s in scenes for c in config.cameras)
        atomic_write_bytes(root / f"{name}.txt", lines.encode())
    atomic_write_bytes(card_path, (json.dumps(dataset_card(config, splits), indent=2) + "\n").encode())
    return {
        "root": str(root),
        "scenes": config.scenes,
        "rendered_scenes": len(todo),
        "skipped_scenes": skipped,
        "images": n_img,
        "seconds": elapsed,
        "images_per_second": n_img / elapsed if elapsed > 0 and n_img else None,
    }


def _progress(total: int, enabled: bool) -> Callable[[int | None], None]:
    if not enabled or total == 0:
        return lambda n: None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: a plain counter on stderr
        done = [0]

        def step(n):
            if n is None:
                print(file=sys.stderr)
                return
            done[0] += n
            print(f"\rsynth: {done[0]}/{total} images", end="", file=sys.stderr, flush=True)

        return step
    bar = tqdm(total=total, unit="img", desc="synth")

    def step(n):
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return step


def iter_cameras(cameras: str | Iterable[str]) -> tuple[str, ...]:
    """Parse ``FV,RV`` (or a sequence) into validated camera names."""
    names = tuple(
        c.strip().upper() for c in (cameras.split(",") if isinstance(cameras, str) else cameras) if c.strip()
    )
    bad = [c for c in names if c not in CAMERA_NAMES]
    if bad or not names:
        raise ValueError(
            f"cameras: expected a comma-separated subset of {','.join(CAMERA_NAMES)}, got {cameras!r}"
        )
    return names
