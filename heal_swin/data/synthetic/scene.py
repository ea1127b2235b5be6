"""One random street scene: layout, buildings, objects, materials, lighting (vehicle frame)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from heal_swin.data.synthetic.objects import hsv, place_objects, rand_color
from heal_swin.data.synthetic.primitives import Prim
from heal_swin.data.synthetic.rig import CAMERA_NAMES

__all__ = ["Scene", "make_scene"]


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


def make_scene(rng: np.random.Generator, cameras: Sequence[str] = CAMERA_NAMES) -> Scene:
    """Random layout, objects, materials and lighting of one scene (draws from ``rng`` in a fixed order)."""
    u = rng.uniform
    y_left, y_right, curb_h, curb_w, bld_left, bld_right, lanes, dash, crosswalk = _street(rng)
    buildings = {side: _buildings(rng) for side in ("L", "R")}
    colors = _colours(rng)
    el, az = math.radians(u(12, 70)), u(0, 2 * math.pi)
    sun = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)], np.float32)
    prims = place_objects(rng, y_left, y_right, bld_left, bld_right)
    jitter = {c: (u(-0.6, 0.6), u(-0.5, 0.5), u(-0.02, 0.02)) for c in CAMERA_NAMES}
    return Scene(
        y_left, y_right, curb_h, curb_w, bld_left, bld_right, lanes, dash, rng.uniform() < 0.7, u(0.1, 0.2), crosswalk,
        buildings, prims, colors, sun, u(0.3, 0.5), u(0.5, 0.9), u(60, 400), u(0.004, 0.02), u(0.0, 0.35), u(0.85, 1.15),
        rng.uniform(0, 2 * math.pi, size=(8, 4)).astype(np.float32), jitter,
    )  # fmt: skip


def _street(rng: np.random.Generator) -> tuple:
    """Road edges, curb, facade planes, lane lines, dashes and an optional crosswalk."""
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
    return y_left, y_right, curb_h, curb_w, bld_left, bld_right, lanes, dash, crosswalk


def _buildings(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One side's buildings: edges (S+1,), heights (S,) (0 = gap), colours (S, 3), windows (S, 4)."""
    u = rng.uniform
    edges = [-160.0]
    while edges[-1] < 160:
        edges.append(edges[-1] + u(6, 30))
    edges = np.array(edges, np.float32)
    s = len(edges) - 1
    heights = np.where(rng.uniform(size=s) < 0.12, 0.0, rng.uniform(3, 28, size=s))
    colors = np.stack([rand_color(rng, (0.05, 0.5), (0.35, 0.9)) for _ in range(s)])
    win = np.stack(
        [
            rng.uniform(2.5, 4.0, s),
            rng.uniform(1.2, 3.5, s),
            rng.uniform(0.3, 0.7, s),
            rng.uniform(0.4, 0.75, s),
        ],
        1,
    )
    return (
        edges,
        heights.astype(np.float32),
        colors.astype(np.float32),
        win.astype(np.float32),
    )


def _colours(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Materials (RGB 0..1): road, marks, curb, sidewalk, verge, sky gradient, sun."""
    u = rng.uniform
    road = np.full(3, u(0.18, 0.42), np.float32) * hsv(u(0.55, 0.7), u(0, 0.15), 1.0)
    return {
        "road": road,
        "mark": np.array([0.92, 0.92, 0.9], np.float32) * u(0.75, 1.0)
        if rng.uniform() < 0.8
        else np.array([0.95, 0.8, 0.25], np.float32),
        "curb": np.full(3, u(0.5, 0.8), np.float32) * hsv(u(0, 1), u(0, 0.1), 1.0),
        "side": rand_color(rng, (0.0, 0.35), (0.4, 0.8)),
        "verge": hsv(u(0.2, 0.35), u(0.3, 0.7), u(0.25, 0.55)),
        "sky_top": hsv(u(0.55, 0.65), u(0.3, 0.8), u(0.55, 0.95)),
        "sky_hor": hsv(u(0.5, 0.65), u(0.0, 0.3), u(0.75, 1.0)),
        "sun_col": hsv(u(0.05, 0.15), u(0.0, 0.35), 1.0),
    }
