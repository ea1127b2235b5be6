"""Pictures of sphere arrays: Mollweide and orthographic views of a grid's NESTED values.

Uses healpy's projection classes for the plane -> sphere mapping, then one ``vec2pix`` and a
gather, so RGB arrays and label colours work as well as scalar maps.
"""

from __future__ import annotations

from typing import Literal

import healpy as hp
import numpy as np

from heal_swin.geometry.healpix import HealpixGrid

__all__ = ["colorize_scalar", "sphere_view"]

Projection = Literal["mollweide", "orthographic"]


def _plane_vectors(projection: Projection, width: int) -> tuple[np.ndarray, np.ndarray]:
    if projection == "mollweide":
        proj = hp.projector.MollweideProj(xsize=width)
    elif projection == "orthographic":
        return _camera_orthographic(width)
    else:
        raise ValueError(f"projection: expected 'mollweide' or 'orthographic', got {projection!r}")
    x, y = proj.ij2xy()
    shape = x.shape
    inside = ~np.ma.getmaskarray(x)
    vx, vy, vz = proj.xy2vec(np.asarray(x.filled(0))[inside], np.asarray(y.filled(0))[inside])
    vec = np.zeros((*shape, 3))
    vec[inside] = np.stack([vx, vy, vz], axis=-1)
    return vec, inside


def _camera_orthographic(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two discs: the hemisphere in front of the camera (z > 0) and the one behind it, both seen
    from the sphere's centre with x to the right and y down, i.e. oriented like the fisheye image."""
    half = width // 2
    a = (np.arange(half) + 0.5) / half * 2 - 1
    x, y = np.meshgrid(a, a[:half])
    r2 = x**2 + y**2
    inside = r2 < 1
    z = np.sqrt(np.clip(1 - r2, 0, None))
    front = np.stack([x, y, z], axis=-1)
    back = np.stack([-x, y, -z], axis=-1)  # seen from the centre looking backwards: x flips
    vec = np.concatenate([front, back], axis=1)
    return vec, np.concatenate([inside, inside], axis=1)


def sphere_view(
    values: np.ndarray,
    grid: HealpixGrid,
    projection: Projection = "mollweide",
    width: int = 800,
    background: float | tuple[float, ...] = 255,
    outside_grid: float | tuple[float, ...] = 64,
) -> np.ndarray:
    """Render sphere values to a flat picture.

    Args:
        values: (N,) or (N, C) in the grid's NESTED order (e.g. uint8 BGR colours).
        projection: ``mollweide`` (healpy's, whole sphere, optical axis = pole at the top) or
            ``orthographic`` (the hemisphere in front of the camera and the one behind it, seen
            from the centre and oriented like the fisheye image).
        width: picture width in pixels (height follows from the projection).
        background: value off the projection's outline; ``outside_grid``: value of sphere
            directions outside the grid's base pixels.

    Returns:
        (H, W) or (H, W, C) array of the values' dtype.
    """
    vals = np.asarray(values)
    if vals.shape[0] != grid.npix:
        raise ValueError(f"values: expected {grid.npix} rows for {grid.key}, got {vals.shape[0]}")
    vec, inside = _plane_vectors(projection, width)
    if projection == "mollweide":
        # healpy's images have row 0 at the bottom; flip so that row 0 is the top of the picture.
        vec, inside = vec[::-1], inside[::-1]
    pix = np.full(inside.shape, -1, dtype=np.int64)
    v = vec[inside]
    pix[inside] = grid.local_index(hp.vec2pix(grid.nside, v[:, 0], v[:, 1], v[:, 2], nest=True))
    out = np.take(vals, np.maximum(pix, 0), axis=0)
    out[~inside] = background
    out[inside & (pix < 0)] = outside_grid
    return out


def colorize_scalar(
    values: np.ndarray, valid: np.ndarray | None = None, lo: float | None = None, hi: float | None = None
) -> np.ndarray:
    """(N,) scalars -> (N, 3) uint8 BGR with OpenCV's TURBO colour map; invalid values black."""
    import cv2

    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v) if valid is None else (np.asarray(valid) & np.isfinite(v))
    if not ok.any():
        return np.zeros((len(v), 3), dtype=np.uint8)
    lo = float(v[ok].min()) if lo is None else lo
    hi = float(v[ok].max()) if hi is None else hi
    scaled = np.clip((np.where(ok, v, lo) - lo) / max(hi - lo, 1e-12), 0, 1)
    colours = cv2.applyColorMap((scaled * 255).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0]
    colours[~ok] = 0
    return colours
