"""Back-projection maps (HEALPix grid -> fisheye image) and the value layouts ``cv2.remap`` gathers from.

Back-projection with ``mode="bilinear"`` interpolates on the sphere in each base face's own
(x, y) coordinates (the HEALPix projection of the face onto a square). The faces are laid out in
an *atlas*: one ``(nside+2)^2`` tile per base face, whose one-pixel border holds the pixels across
the seam from the neighbouring faces, so interpolation is continuous across face edges. Border
pixels whose neighbour is outside the grid's base pixels repeat the edge pixel.

Sphere values are viewed as a 2-D ``(R, Cc)`` image (``forward_layout``) so that the gathers of
back-projection run as multi-threaded ``cv2.remap`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import healpy as hp
import numpy as np

from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.healpix import HealpixGrid, face_coordinates

__all__ = ["BackwardMaps", "compute_atlas_index", "compute_backward_maps"]

OUTSIDE = -16.0  # remap coordinate that lies off any image: BORDER_CONSTANT fills it
CV_MAX = 32000  # cv2.remap needs each map dimension below SHRT_MAX
CV_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


@dataclass(frozen=True)
class BackwardMaps:
    """Sampling of the sphere at every image pixel (for one output image size).

    Attributes:
        nearest: (H, W) int64 grid pixel containing each image pixel's ray; -1 outside the grid.
        atlas_x, atlas_y: (H, W) float32 remap coordinates into the atlas (off the atlas when outside).
        atlas_index: (Ha, Wa) int64 grid pixel shown at each atlas position.
        nearest_src, atlas_src: (H, W, 2) and (Ha, Wa, 2) int16 (column, row) of ``nearest`` and
            ``atlas_index`` in the values viewed as a 2-D image (``forward_layout``), so that both
            gathers run as multi-threaded ``cv2.remap`` calls; empty when N is too large for int16.
    """

    nearest: np.ndarray
    atlas_x: np.ndarray
    atlas_y: np.ndarray
    atlas_index: np.ndarray
    nearest_src: np.ndarray
    atlas_src: np.ndarray

    @property
    def footprint(self) -> np.ndarray:
        """(H, W) bool: image pixels whose ray falls inside the grid."""
        return self.nearest >= 0


def forward_layout(n: int) -> tuple[int, int]:
    cols = min(n, 4096)
    return n // cols, cols


def _atlas_layout(grid: HealpixGrid) -> tuple[int, int, int]:
    """(tile size, tile columns, tile rows) of the atlas."""
    tile = grid.nside + 2
    cols = min(len(grid.base_pixels), 4)
    rows = -(-len(grid.base_pixels) // cols)
    return tile, cols, rows


def compute_atlas_index(grid: HealpixGrid) -> np.ndarray:
    """(Ha, Wa) grid pixel at every atlas position, seams padded from the neighbouring faces."""
    nside = grid.nside
    tile, cols, rows = _atlas_layout(grid)
    pos = np.arange(-1, nside + 1)
    ix, iy = np.meshgrid(pos, pos, indexing="ij")  # tile[r, c] = face pixel (x = r - 1, y = c - 1)
    cx, cy = np.clip(ix, 0, nside - 1), np.clip(iy, 0, nside - 1)
    border = (ix != cx) | (iy != cy)
    atlas = np.zeros((rows * tile, cols * tile), dtype=np.int64)
    vec = grid.vectors()
    for slot, face in enumerate(grid.base_pixels):
        inner_pix = grid.local_index(hp.xyf2pix(nside, cx, cy, np.full_like(cx, face), nest=True))
        idx = inner_pix.copy()
        if nside > 1:
            # Step from the edge pixel away from the face's interior: lands in the pixel across the seam.
            mx = np.clip(2 * cx - ix, 0, nside - 1)
            my = np.clip(2 * cy - iy, 0, nside - 1)
            mirror = grid.local_index(
                hp.xyf2pix(nside, mx[border], my[border], np.full(border.sum(), face), nest=True)
            )
            edge = inner_pix[border]
            d = 2 * vec[edge] - vec[mirror]
            across = grid.local_index(hp.vec2pix(nside, d[:, 0], d[:, 1], d[:, 2], nest=True))
            idx[border] = np.where(across >= 0, across, edge)
        r0, c0 = (slot // cols) * tile, (slot % cols) * tile
        atlas[r0 : r0 + tile, c0 : c0 + tile] = idx
    return atlas


def compute_backward_maps(camera: FisheyeCamera, grid: HealpixGrid) -> BackwardMaps:
    """Locate every image pixel's ray on the grid (see ``BackwardMaps``)."""
    rays = camera.pixel_rays().reshape(-1, 3)
    ok = np.all(np.isfinite(rays), axis=-1)
    rays = np.where(ok[:, None], rays, [0.0, 0.0, 1.0])
    face, x, y = face_coordinates(grid.nside, rays)
    slot = grid.face_slot(face)
    inside = ok & (slot >= 0)
    gx, gy = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    nearest = grid.local_index(hp.xyf2pix(grid.nside, gx, gy, face, nest=True))
    nearest = np.where(inside, nearest, -1)
    tile, cols, _ = _atlas_layout(grid)
    s = np.maximum(slot, 0)
    r0 = (s // cols) * tile + 1
    c0 = (s % cols) * tile + 1
    shape = (camera.height, camera.width)
    atlas_index = compute_atlas_index(grid)
    return BackwardMaps(
        nearest=nearest.reshape(shape),
        atlas_x=np.where(inside, c0 + y - 0.5, OUTSIDE).astype(np.float32).reshape(shape),
        atlas_y=np.where(inside, r0 + x - 0.5, OUTSIDE).astype(np.float32).reshape(shape),
        atlas_index=atlas_index,
        nearest_src=layout_position(nearest.reshape(shape), grid.npix),
        atlas_src=layout_position(atlas_index, grid.npix),
    )


def layout_position(index: np.ndarray, n: int) -> np.ndarray:
    """(..., 2) int16 (column, row) of grid pixels in the (R, Cc) layout; off-layout for -1."""
    rows, cols = forward_layout(n)
    if rows >= CV_MAX:
        return np.zeros((0, 0, 2), dtype=np.int16)
    col = np.where(index >= 0, index % cols, OUTSIDE)
    row = np.where(index >= 0, index // cols, OUTSIDE)
    return np.stack([col, row], axis=-1).astype(np.int16)


def as_layout(values: np.ndarray) -> np.ndarray:
    rows, cols = forward_layout(values.shape[0])
    return np.ascontiguousarray(values).reshape(rows, cols, *values.shape[1:])


def remap_nearest(src: np.ndarray, positions: np.ndarray, fill: float) -> np.ndarray:
    out = cv2.remap(
        src, positions, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=(fill,) * 4
    )
    if fill != 0 and src.ndim == 3 and src.shape[2] > 4:  # cv2's border value has only 4 channels
        out[positions[..., 1] < 0] = fill
    return out
