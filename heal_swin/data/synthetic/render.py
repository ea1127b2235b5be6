"""Ray casting and shading of one scene through one camera: image, labels, depth."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from heal_swin.data.synthetic.objects import CURB, LANEMARKS, ROAD, VOID
from heal_swin.data.synthetic.primitives import blocks, intersect, mod
from heal_swin.data.synthetic.rays import camera_rays, gather_tiles, intrinsic_only
from heal_swin.data.synthetic.scene import Scene
from heal_swin.geometry.camera import FisheyeCamera

__all__ = ["MAX_DEPTH", "render_scene"]

MAX_DEPTH = 1000.0  # metres; surfaces further away (the ground near the horizon) are rendered as sky


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
_INF = np.float32(np.inf)


class _Frame:
    """The per-pixel state of one camera's frame while it is cast and shaded (tile-sorted order)."""


def render_scene(scene: Scene, camera: FisheyeCamera, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Ray cast one camera. Returns ``image`` (H, W, 3) uint8 BGR, ``label`` (H, W) uint8 WoodScape ids,
    ``depth`` (H, W) float32 metres along the ray (inf = sky)."""
    f = _setup(camera)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        _cast_ground(f, scene)
        _cast_facades(f, scene)
        _cast_prims(f, scene, camera)
    _labels_and_depth(f)
    _albedo(f, scene)
    lam = _sun_shadows(f, scene)
    image = _expose(f, scene, camera, rng, lam)
    h, w = camera.height, camera.width
    return {
        "image": image,
        "label": f.label_sorted[f.rays.iperm].reshape(h, w),
        "depth": f.depth_sorted[f.rays.iperm].reshape(h, w),
    }


def _setup(camera: FisheyeCamera) -> _Frame:
    """Vehicle-frame unit rays of the camera's pixels, empty surface ids and normals."""
    f = _Frame()
    f.rays = camera_rays(intrinsic_only(camera))
    rot = [[float(c) for c in row] for row in camera.rotation]  # python floats keep float32 math
    cxr, cyr, czr = f.rays.dirs
    # vehicle-frame unit rays, tile order; three contiguous rows (a (P,3)@(3,3) matmul is slow here)
    f.dx = (rot[0][0] * cxr + rot[0][1] * cyr + rot[0][2] * czr).astype(np.float32)
    f.dy = (rot[1][0] * cxr + rot[1][1] * cyr + rot[1][2] * czr).astype(np.float32)
    f.dz = (rot[2][0] * cxr + rot[2][1] * cyr + rot[2][2] * czr).astype(np.float32)
    f.ox, f.oy, f.oz = (float(c) for c in camera.translation)
    f.o = (f.ox, f.oy, f.oz)
    f.P = f.dx.shape[0]
    f.sid = np.zeros(f.P, np.int16)  # surface id: static < _N_STATIC, primitives after
    f.nx = np.zeros(f.P, np.float32)
    f.ny = np.zeros(f.P, np.float32)
    f.nz = np.zeros(f.P, np.float32)
    return f


def _cast_ground(f: _Frame, scene: Scene) -> None:
    """Road (z = 0), sidewalks (z = curb_h beyond the edges), curb faces between."""
    down = f.dz < -1e-6
    inv_dz = np.float32(1.0) / f.dz
    t0 = np.where(down, -f.oz * inv_dz, _INF)
    ts = np.where(down, (scene.curb_h - f.oz) * inv_dz, _INF)
    y0 = f.oy + t0 * f.dy
    ysw = f.oy + ts * f.dy
    on_side = down & ((ysw > scene.y_left) | (ysw < scene.y_right))
    on_road = down & ~on_side & (y0 <= scene.y_left) & (y0 >= scene.y_right)
    on_face = down & ~on_side & ~on_road
    left = y0 > 0
    tf = np.where(left, scene.y_left - f.oy, scene.y_right - f.oy) / f.dy
    f.t_best = np.where(on_side, ts, np.where(on_road, t0, np.where(on_face, tf, _INF))).astype(np.float32)
    f.sid[on_road] = _ROADS
    f.sid[on_face] = _CURBF
    f.sid[on_side] = _SIDE
    f.nz[:] = 1.0
    f.nz[on_face] = 0.0
    f.ny[on_face] = np.where(left[on_face], -1.0, 1.0)


def _cast_facades(f: _Frame, scene: Scene) -> None:
    """Vertical planes y = bld_left / bld_right split into buildings."""
    for side, yb, code in (("L", scene.bld_left, _FAC_L), ("R", scene.bld_right, _FAC_R)):
        edges, heights, _, _ = scene.buildings[side]
        cand = np.nonzero((f.dy > 1e-6) if yb > 0 else (f.dy < -1e-6))[0]
        tb = (yb - f.oy) / f.dy[cand]
        zb = f.oz + tb * f.dz[cand]
        pre = np.nonzero((zb < float(heights.max())) & (tb < f.t_best[cand]))[0]  # cheap test first
        cand, tb, zb = cand[pre], tb[pre], zb[pre]
        xb = f.ox + tb * f.dx[cand]
        seg = np.clip(np.searchsorted(edges, xb) - 1, 0, len(heights) - 1)
        hit = (xb > edges[0]) & (xb < edges[-1]) & (zb < heights[seg])
        g = cand[hit]
        f.t_best[g] = tb[hit]
        f.sid[g] = code
        f.nx[g], f.ny[g], f.nz[g] = 0.0, (-1.0 if yb > 0 else 1.0), 0.0


def _cast_prims(f: _Frame, scene: Scene, camera: FisheyeCamera) -> None:
    """The primitives, each against the rays of the tiles whose cone meets its bounding sphere."""
    f.ray_axis = f.rays.tile_dir @ camera.rotation.T  # (T, 3) vehicle frame
    f.labels = list(_STATIC_LABELS)
    f.cand_lists: list[np.ndarray] = []
    for i, p in enumerate(scene.prims):
        c, r = p.bound
        v = np.asarray(c) - np.asarray(f.o)
        dist = float(np.linalg.norm(v))
        if dist <= r:
            sel = np.arange(len(f.rays.tile_start))
        else:
            beta = math.asin(min(1.0, r / dist))
            cosang = np.clip(f.ray_axis @ (v / dist), -1, 1)
            sel = np.nonzero(np.arccos(cosang) <= beta + f.rays.tile_half)[0]
        idx = gather_tiles(f.rays, sel)
        f.labels.append(p.label)
        if idx.size == 0:
            f.cand_lists.append(idx)
            continue
        t, n = intersect(p, f.o, (f.dx[idx], f.dy[idx], f.dz[idx]))
        win = t < f.t_best[idx]
        idx = idx[win]
        f.t_best[idx] = t[win]
        f.sid[idx] = _N_STATIC + i
        f.nx[idx], f.ny[idx], f.nz[idx] = n[0][win], n[1][win], n[2][win]
        f.cand_lists.append(idx)


def _labels_and_depth(f: _Frame) -> None:
    f.label_sorted = np.asarray(f.labels, np.uint8)[f.sid]
    f.sky = ~(f.t_best < MAX_DEPTH)
    f.sid[f.sky] = _SKY
    f.label_sorted[f.sky] = VOID
    f.depth_sorted = np.where(f.sky, _INF, f.t_best)


def _albedo(f: _Frame, scene: Scene) -> None:
    """Albedo per surface (per channel with scalar colours: broadcasting (3, M) selects is several times slower)."""
    f.albedo = np.zeros((3, f.P), np.float32)
    f.th = np.where(f.sky, np.float32(0), f.t_best)
    f.hx, f.hy, f.hz = f.ox + f.th * f.dx, f.oy + f.th * f.dy, f.oz + f.th * f.dz
    _albedo_ground(f, scene)
    _albedo_facades(f, scene)
    _albedo_prims(f, scene)


def _albedo_ground(f: _Frame, scene: Scene) -> None:
    """Road with lane marks (their label too), sidewalks and curbs (label CURB), verges."""
    col, ph = scene.colors, scene.tex_seed
    g = np.nonzero(f.sid == _ROADS)[0]
    if g.size:
        x, y = f.hx[g], f.hy[g]
        mark = _lane_marks(scene, x, y)
        f.label_sorted[g[mark]] = LANEMARKS
        # 2.5 cm asphalt grain, faded out within ~3 m where its cells would span many pixels
        fade = np.minimum(f.th[g] * np.float32(1 / 3.0), 1.0)
        tex = 1 + 0.16 * _waves(x, y, ph[0], 0.35) + (0.14 * fade) * (_grain(x, y, 40) - 0.5)
        for k in range(3):
            f.albedo[k, g] = np.where(mark, col["mark"][k], col["road"][k]) * tex
    g = np.nonzero((f.sid == _SIDE) | (f.sid == _CURBF))[0]
    if g.size:
        x, y = f.hx[g], f.hy[g]
        face = f.sid[g] == _CURBF
        dist_edge = np.where(y > 0, y - scene.y_left, scene.y_right - y)
        curb = face | (dist_edge < scene.curb_w)
        beyond = (y > scene.bld_left) | (y < scene.bld_right)
        f.label_sorted[g[curb]] = CURB
        tile = 0.55 + 0.45 * ((mod(x, 0.5) > 0.03) & (mod(y, 0.5) > 0.03))
        tex = 1 + 0.2 * (_grain(x, y, 2) - 0.5) + 0.1 * _waves(x, y, ph[1], 0.8)
        for k in range(3):
            f.albedo[k, g] = (
                np.where(curb, col["curb"][k], np.where(beyond, col["verge"][k], col["side"][k] * tile)) * tex
            )


def _albedo_facades(f: _Frame, scene: Scene) -> None:
    """Building facades with window grids."""
    ph = scene.tex_seed
    for code, side in ((_FAC_L, "L"), (_FAC_R, "R")):
        g = np.nonzero(f.sid == code)[0]
        if g.size == 0:
            continue
        edges, heights, bcol, win = scene.buildings[side]
        x, z = f.hx[g], f.hz[g]
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
            f.albedo[k, g] = np.where(window, gk + refl, bcol[seg, k] * tex)


def _albedo_prims(f: _Frame, scene: Scene) -> None:
    """Objects: plain, striped (clothes), vehicle body (dark lower part), foliage."""
    ph = scene.tex_seed
    for i, (p, idx) in enumerate(zip(scene.prims, f.cand_lists)):
        if idx.size == 0:
            continue
        idx = idx[f.sid[idx] == _N_STATIC + i]
        if idx.size == 0:
            continue
        x, y, z = f.hx[idx], f.hy[idx], f.hz[idx]
        if p.tex == 1:
            tex = 0.7 + 0.3 * (mod(z * 7, 1.0) > 0.5)
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
            f.albedo[k, idx] = p.color[k] * tex


def _sun_shadows(f: _Frame, scene: Scene) -> np.ndarray:
    """(P,) Lambert sun term, 0 where an object shadows the ground (road, curbs, sidewalks)."""
    sx_, sy_, sz_ = (float(c) for c in scene.sun)
    lam = np.maximum(f.nx * sx_ + f.ny * sy_ + f.nz * sz_, 0)
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
        v = centre - np.asarray(f.o)
        dist = float(np.linalg.norm(v))
        if dist <= rad:
            continue  # the camera is inside the shadow region's bound: rare, skipped for speed
        cosang = np.clip(f.ray_axis @ (v / dist), -1, 1)
        sel = np.nonzero(np.arccos(cosang) <= math.asin(min(1.0, rad / dist)) + f.rays.tile_half)[0]
        idx = gather_tiles(f.rays, sel)
        if idx.size == 0:
            continue
        idx = idx[ground[f.sid[idx]] & (lam[idx] > 0)]
        if idx.size == 0:
            continue
        hit = blocks(p, f.hx[idx], f.hy[idx], f.hz[idx], (sx_, sy_, sz_))
        lam[idx[hit]] = 0.0

    return lam


def _expose(
    f: _Frame, scene: Scene, camera: FisheyeCamera, rng: np.random.Generator, lam: np.ndarray
) -> np.ndarray:
    """Ambient (more from above) + Lambert sun; distance fog; sky gradient and sun glow; noise -> BGR uint8."""
    col = scene.colors
    sx_, sy_, sz_ = (float(c) for c in scene.sun)
    shade = scene.ambient * (0.75 + 0.25 * f.nz) + scene.sun_int * lam
    fog = np.exp(-f.th * np.float32(1.0 / scene.fog))
    fog[f.sky] = 0.0
    tint = 0.6 + 0.4 * col["sun_col"]
    s_idx = np.nonzero(f.sky)[0]
    el = np.clip(f.dz[s_idx], 0, 1)
    glow = np.clip(f.dx[s_idx] * sx_ + f.dy[s_idx] * sy_ + f.dz[s_idx] * sz_, 0, 1)
    for _ in range(5):  # ** 32 by squaring (pow is slow)
        glow *= glow
    gain = (scene.exposure * 255.0) * (1 - scene.vignette * f.rays.vignette)
    h, w = camera.height, camera.width
    # Gaussian sensor noise: random windows of a fixed per-size white-noise field (drawing fresh
    # normals per image costs more than the whole shading), scaled per scene. Pixels are i.i.d., so
    # the tile order of the arrays here does not matter.
    bank = _noise_bank(f.P)
    offs = rng.integers(0, bank.shape[1] - f.P + 1, size=3)
    order = rng.permutation(3)
    sigma = np.float32(scene.noise_sigma * 255.0)
    haze = 1 - fog
    u8 = np.empty((3, f.P), np.uint8)
    for k in range(3):
        v = f.albedo[k] * (shade * tint[k])
        v *= fog
        v += col["sky_hor"][k] * haze
        v[s_idx] = col["sky_hor"][k] * (1 - el) + col["sky_top"][k] * el + 0.5 * col["sun_col"][k] * glow
        v *= gain
        v += bank[order[k], offs[k] : offs[k] + f.P] * sigma
        v += 0.5
        np.clip(v, 0, 255, out=v)
        u8[k] = v
    u8 = u8[:, f.rays.iperm]  # tile order -> image order (uint8: a quarter of the float traffic)
    image = cv2.merge([u8[2].reshape(h, w), u8[1].reshape(h, w), u8[0].reshape(h, w)])  # BGR
    return image


@lru_cache(maxsize=4)
def _noise_bank(n: int) -> np.ndarray:
    """(3, 1.5 n) float32 standard normal values, fixed per image size (deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([0x5E5, n]))
    bank = rng.standard_normal((3, n + n // 2), dtype=np.float32)
    bank.setflags(write=False)
    return bank


def _lane_marks(scene: Scene, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    hw = scene.line_w / 2
    period, length, phase = scene.dash
    dashed = mod(x + phase, period) < length
    mark = np.zeros(x.shape, bool)
    for ly in scene.lanes:
        mark |= (np.abs(y - ly) < hw) & dashed
    if scene.edge_lines:
        mark |= np.abs(y - (scene.y_left - 0.35)) < hw
        mark |= np.abs(y - (scene.y_right + 0.35)) < hw
    if scene.crosswalk is not None:
        x0, x1 = scene.crosswalk
        mark |= (
            (x > x0) & (x < x1) & (mod(y, 1.0) < 0.5) & (y < scene.y_left - 0.3) & (y > scene.y_right + 0.3)
        )
    return mark
