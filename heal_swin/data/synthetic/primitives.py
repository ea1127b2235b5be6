"""Analytic primitives of the scenes and their ray intersections (camera rays, sun shadow rays)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Prim", "blocks", "box", "cyl", "disc", "intersect", "mod", "sphere"]


@dataclass
class Prim:
    kind: str  # box | cyl | sphere | disc
    params: tuple
    label: int
    color: np.ndarray  # (3,) RGB albedo 0..1
    tex: int = 0  # 0 plain noise, 1 stripes, 2 dark lower part (vehicle body), 3 foliage
    bound: tuple = ((0.0, 0.0, 0.0), 1.0)  # bounding sphere (centre, radius)


def box(c, size, yaw, label, color, tex=0) -> Prim:
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


def cyl(x, y, r, z0, z1, label, color, tex=0) -> Prim:
    c = np.array([x, y, (z0 + z1) / 2])
    return Prim("cyl", (float(x), float(y), float(r), float(z0), float(z1)), label, np.asarray(color, np.float32), tex,
                (c, math.hypot(r, (z1 - z0) / 2)))  # fmt: skip


def sphere(c, r, label, color, tex=0) -> Prim:
    c = np.asarray(c, float)
    return Prim("sphere", (c, float(r)), label, np.asarray(color, np.float32), tex, (c, float(r)))


def disc(c, yaw, r, label, color, tex=0) -> Prim:
    c = np.asarray(c, float)
    n = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    return Prim("disc", (c, n, float(r)), label, np.asarray(color, np.float32), tex, (c, float(r)))


def mod(x: np.ndarray, p: float) -> np.ndarray:
    """``np.mod`` for positive ``p`` (several times faster on float32)."""
    return x - np.floor(x * (1.0 / p)) * p


def intersect(p: Prim, o: tuple[float, float, float], d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (inf = miss) and (3, M) unit normal facing the ray origin, for rays o + t d, d (3, M)."""
    if p.kind not in _HIT:
        raise ValueError(p.kind)
    return _HIT[p.kind](p.params, o, d[0], d[1], d[2])


def _hit_box(
    params: tuple, o: tuple[float, float, float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Slabs in the box frame (yawed about z)."""
    eps = 1e-4
    c, half, yaw = params
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


def _hit_cyl(
    params: tuple, o: tuple[float, float, float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vertical cylinder: the side, then the top cap."""
    eps = 1e-4
    m = dx.shape[0]
    cx, cy, r, z0, z1 = params
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


def _hit_sphere(
    params: tuple, o: tuple[float, float, float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sphere: the nearer root."""
    eps = 1e-4
    c, r = params
    ocx, ocy, ocz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
    b = dx * ocx + dy * ocy + dz * ocz
    cc = ocx * ocx + ocy * ocy + ocz * ocz - r * r
    disc = b * b - cc
    t = -b - np.sqrt(np.maximum(disc, 0))
    t = np.where((disc >= 0) & (t > eps), t, np.float32(np.inf)).astype(np.float32, copy=False)
    tz = np.where(np.isfinite(t), t, 0)
    n = np.stack([(ocx + tz * dx) / r, (ocy + tz * dy) / r, (ocz + tz * dz) / r])
    return t, n


def _hit_disc(
    params: tuple, o: tuple[float, float, float], dx: np.ndarray, dy: np.ndarray, dz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vertical disc (its normal horizontal)."""
    eps = 1e-4
    m = dx.shape[0]
    c, nrm, r = params
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


_HIT = {"box": _hit_box, "cyl": _hit_cyl, "sphere": _hit_sphere, "disc": _hit_disc}


def blocks(
    p: Prim, ox: np.ndarray, oy: np.ndarray, oz: np.ndarray, s: tuple[float, float, float]
) -> np.ndarray:
    """Boolean (M,): does primitive ``p`` block the rays from the points (ox, oy, oz) towards ``s`` (unit)?

    Shadow rays: many origins, one direction (the sun). Discs (wheels, round signs) cast no shadow.
    """
    fn = _BLOCKS.get(p.kind)
    return fn(p.params, ox, oy, oz, s) if fn is not None else np.zeros(ox.shape, bool)


def _blocks_box(
    params: tuple, ox: np.ndarray, oy: np.ndarray, oz: np.ndarray, s: tuple[float, float, float]
) -> np.ndarray:
    eps = 1e-3
    sx, sy, sz = s
    c, half, yaw = params
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


def _blocks_cyl(
    params: tuple, ox: np.ndarray, oy: np.ndarray, oz: np.ndarray, s: tuple[float, float, float]
) -> np.ndarray:
    eps = 1e-3
    sx, sy, sz = s
    cx, cy, r, z0, z1 = params
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


def _blocks_sphere(
    params: tuple, ox: np.ndarray, oy: np.ndarray, oz: np.ndarray, s: tuple[float, float, float]
) -> np.ndarray:
    eps = 1e-3
    sx, sy, sz = s
    c, r = params
    qx, qy, qz = ox - c[0], oy - c[1], oz - c[2]
    b = qx * sx + qy * sy + qz * sz
    cc = qx * qx + qy * qy + qz * qz - r * r
    disc = b * b - cc
    return (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0)) > eps)


_BLOCKS = {"box": _blocks_box, "cyl": _blocks_cyl, "sphere": _blocks_sphere}
