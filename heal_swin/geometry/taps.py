"""Forward resampling (image -> HEALPix grid) as sampling taps: one gather plus a weighted sum.

Every forward resampling of the suite is a :class:`SamplingTaps`: for each of the N grid pixels,
K indices into the image flattened row-major (``v * W + u``, i.e. an ``(H*W, C)`` view) and K
float32 weights that sum to 1 where the pixel is valid (0 elsewhere). The numpy path
(:meth:`SamplingTaps.apply`) and the ONNX graph of an exported model (a Gather and a weighted
sum) use the same arrays, so the two cannot drift.

- ``nearest``  K = 1: the image pixel under the projected pixel centre (labels, depth).
- ``bilinear`` K = 4: bilinear interpolation at the projected pixel centre (point sampling).
- ``area``     the mean of the bilinearly interpolated image over the pixel's footprint on the
  sphere, by *supersampling*: the pixel's 4**L NESTED descendants (equal-area sub-pixels that
  tile it exactly) are projected and sampled bilinearly, their taps merged per image pixel.
  L is the smallest level whose sub-pixels are at most one image pixel apart anywhere in the
  image, so the sub-pixel spacing is below the image's own resolution. Supersampling rather than
  an image-space prefilter because a fisheye's resolution (pixels per degree) and the footprints'
  shapes change across the image: one blur kernel cannot match every pixel's footprint, while the
  sub-pixels follow it exactly. For a grid finer than the image L = 0 and ``area`` is ``bilinear``.
  Sub-pixels that fall outside the image are left out and the weights renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import healpy as hp
import numpy as np
from scipy import sparse

from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.healpix import HealpixGrid

__all__ = ["MAX_AREA_LEVEL", "SamplingTaps", "area_level", "area_taps", "bilinear_taps", "nearest_taps"]

MAX_AREA_LEVEL = 5  # at most 1024 sub-pixels per grid pixel (a 32x coarser grid than the image)
_CHUNK = 1 << 22  # sub-pixel taps handled at once while merging (bounds the temporary memory)


@dataclass(frozen=True)
class SamplingTaps:
    """Sampling of an (H, W[, C]) image at every pixel of a HEALPix grid.

    Attributes:
        index: (N, K) int32 positions in the image flattened to ``(H*W, C)`` (row-major ``v*W+u``);
            0 in unused slots.
        weight: (N, K) float32; rows sum to 1 where ``valid``, are 0 elsewhere; 0 in unused slots.
        valid: (N,) bool, the grid pixel's centre sees the image (the grid's ``valid_mask``).
    """

    index: np.ndarray
    weight: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        # The same taps as a sparse (N, P) matrix over the P image pixels they use (zero weights --
        # padding, invalid rows -- left out): apply gathers those P pixels and runs one sparse
        # product, much faster than K numpy gather passes (bench/bench_geometry.py).
        keep = self.weight > 0
        used, cols = np.unique(self.index[keep], return_inverse=True)
        rows = np.nonzero(keep)[0]
        matrix = sparse.csr_matrix(
            (self.weight[keep], (rows, cols.reshape(-1))), shape=(len(self.valid), len(used))
        )
        object.__setattr__(self, "_used", used)
        object.__setattr__(self, "_matrix", matrix)

    @property
    def taps(self) -> int:
        """K, the number of taps per grid pixel."""
        return int(self.index.shape[1])

    def apply(self, image: np.ndarray, fill: float = 0) -> np.ndarray:
        """(H, W) or (H, W, C) image -> (N,) or (N, C): ``sum_k weight[:, k] * image_flat[index[:, k]]``.

        Sums in float32 (float64 for float64 images); uint8/uint16/int16 images are rounded and
        clipped back to their dtype (what ``cv2.remap`` returns), other dtypes give float32.
        ``fill`` where not valid.
        """
        img = np.asarray(image)
        flat = img.reshape(img.shape[0] * img.shape[1], -1)
        dtype = np.float64 if img.dtype == np.float64 else np.float32
        pixels = np.take(flat, self._used, axis=0).astype(dtype, copy=False)
        out = np.asarray(self._matrix @ pixels, dtype=dtype)
        if img.dtype.type in (np.uint8, np.uint16, np.int16):
            info = np.iinfo(img.dtype)
            out = np.clip(np.rint(out), info.min, info.max).astype(img.dtype)
        out[~self.valid] = fill
        return out.reshape(-1, *img.shape[2:])


def _bilinear(uv: np.ndarray, sees: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, 2) pixel coordinates -> (M, 4) flat indices and weights (0 where not ``sees``)."""
    u = np.clip(uv[:, 0], 0, width - 1)
    v = np.clip(uv[:, 1], 0, height - 1)
    x0, y0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fx, fy = (u - x0).astype(np.float32), (v - y0).astype(np.float32)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    index = np.stack([y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1], axis=1)
    weight = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    weight[~sees] = 0
    index[~sees] = 0
    return index, weight


def nearest_taps(camera: FisheyeCamera, grid: HealpixGrid) -> SamplingTaps:
    """K = 1: the image pixel containing each projected grid pixel centre."""
    rays = grid.vectors()
    uv, valid = camera.project(rays), camera.sees(rays)
    ui = np.clip(np.floor(uv[:, 0] + 0.5), 0, camera.width - 1).astype(np.int64)
    vi = np.clip(np.floor(uv[:, 1] + 0.5), 0, camera.height - 1).astype(np.int64)
    index = np.where(valid, vi * camera.width + ui, 0).astype(np.int32)[:, None]
    return SamplingTaps(index, valid.astype(np.float32)[:, None], valid)


def bilinear_taps(camera: FisheyeCamera, grid: HealpixGrid) -> SamplingTaps:
    """K = 4: bilinear interpolation at each projected grid pixel centre (``cv2.remap``'s sampling)."""
    rays = grid.vectors()
    valid = camera.sees(rays)
    index, weight = _bilinear(camera.project(rays), valid, camera.width, camera.height)
    return SamplingTaps(index.astype(np.int32), weight, valid)


def area_level(camera: FisheyeCamera, grid: HealpixGrid) -> int:
    """Supersampling level L: the pixels' largest footprint side in image pixels, log2, rounded up."""
    pix = grid.global_index
    corners = np.moveaxis(hp.boundaries(grid.nside, pix, step=1, nest=True), -2, -1)  # (N, 4, 3)
    uv = camera.project(corners)
    seen = camera.sees(corners).all(axis=1)
    if not seen.any():
        return 0
    side = np.linalg.norm(uv - np.roll(uv, 1, axis=1), axis=-1).max(axis=1)[seen].max()
    return int(np.clip(np.ceil(np.log2(max(side, 1.0))), 0, MAX_AREA_LEVEL))


def area_taps(camera: FisheyeCamera, grid: HealpixGrid, level: int | None = None) -> SamplingTaps:
    """The footprint mean by supersampling with ``4**level`` sub-pixels (default :func:`area_level`)."""
    level = area_level(camera, grid) if level is None else int(level)
    centre = bilinear_taps(camera, grid)
    if level == 0:
        return centre
    m = 4**level
    fine = grid.nside << level
    hw = camera.width * camera.height
    rows_per_chunk = max(1, _CHUNK // (4 * m))
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for r0 in range(0, grid.npix, rows_per_chunk):
        g = grid.global_index[r0 : r0 + rows_per_chunk]
        children = (g[:, None] * m + np.arange(m)).reshape(-1)
        rays = np.stack(hp.pix2vec(fine, children, nest=True), axis=-1)
        sees = camera.sees(rays)
        index, weight = _bilinear(camera.project(rays), sees, camera.width, camera.height)
        index[~sees] = hw  # a sentinel that sorts last and is dropped when merging
        parts.append(_merge(index.reshape(len(g), 4 * m), weight.reshape(len(g), 4 * m), hw))
    k = max(p[0].shape[1] for p in parts)
    index = np.concatenate([np.pad(i, ((0, 0), (0, k - i.shape[1]))) for i, _ in parts])
    weight = np.concatenate([np.pad(w, ((0, 0), (0, k - w.shape[1]))) for _, w in parts])
    total = weight.sum(axis=1)
    # A valid centre whose sub-pixels all miss the image (a sliver at the rim) keeps its bilinear taps.
    fallback = centre.valid & (total <= 0)
    if fallback.any():
        if k < 4:
            index, weight = np.pad(index, ((0, 0), (0, 4 - k))), np.pad(weight, ((0, 0), (0, 4 - k)))
        index[fallback], weight[fallback], total[fallback] = 0, 0, 1
        index[fallback, :4], weight[fallback, :4] = centre.index[fallback], centre.weight[fallback]
    weight = np.where(centre.valid[:, None], weight / np.where(total > 0, total, 1)[:, None], 0).astype(
        np.float32
    )
    index = np.where(weight > 0, index, 0).astype(np.int32)
    return SamplingTaps(index, weight, centre.valid)


def _merge(index: np.ndarray, weight: np.ndarray, sentinel: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (index, weight) with repeated indices -> rows of distinct indices, weights summed."""
    order = np.argsort(index, axis=1, kind="stable")
    idx = np.take_along_axis(index, order, axis=1)
    w = np.take_along_axis(weight, order, axis=1)
    new = np.ones_like(idx, dtype=bool)
    new[:, 1:] = idx[:, 1:] != idx[:, :-1]
    slot = np.cumsum(new, axis=1) - 1  # position of each tap's distinct index in its row
    keep = idx != sentinel
    k = int(slot[keep].max()) + 1 if keep.any() else 1
    n = idx.shape[0]
    flat = (np.arange(n)[:, None] * k + slot)[keep]
    out_w = np.bincount(flat, weights=w[keep], minlength=n * k).astype(np.float32).reshape(n, k)
    out_i = np.zeros(n * k, np.int64)
    out_i[flat] = idx[keep]
    return out_i.reshape(n, k), out_w
