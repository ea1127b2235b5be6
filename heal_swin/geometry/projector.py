"""Fisheye image <-> HEALPix sphere sampling with precomputed maps.

The sphere of one camera is its camera frame: a unit ray (X, Y, Z) is the HEALPix vector (x, y, z),
so the optical axis is the north pole. Every map depends only on (camera intrinsics, nside, base
pixels, image size); it is computed once, kept in an in-memory LRU and optionally on disk, and
applied with ``cv2.remap`` or one gather.

Back-projection with ``mode="bilinear"`` interpolates on the sphere in each base face's own
(x, y) coordinates (the HEALPix projection of the face onto a square). The faces are laid out in
an *atlas*: one ``(nside+2)^2`` tile per base face, whose one-pixel border holds the pixels across
the seam from the neighbouring faces, so interpolation is continuous across face edges. Border
pixels whose neighbour is outside the grid's base pixels repeat the edge pixel.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock
from typing import Callable, Literal

import cv2
import healpy as hp
import numpy as np

from heal_swin.errors import InputError
from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.healpix import HealpixGrid, face_coordinates
from heal_swin.io import atomic_open

__all__ = ["SphereProjector", "ImageSizeError", "ForwardMaps", "BackwardMaps", "clear_memory_cache", "memory_cache_size", "set_memory_cache_size"]

Mode = Literal["bilinear", "nearest"]
_CACHE_FORMAT = 2
_OUTSIDE = -16.0  # remap coordinate that lies off any image: BORDER_CONSTANT fills it
_CV_MAX = 32000  # cv2.remap needs each map dimension below SHRT_MAX
_CV_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


class ImageSizeError(InputError):
    """An image whose size does not match the calibration."""


# ---------------------------------------------------------------- the maps
@dataclass(frozen=True)
class ForwardMaps:
    """Sampling of the image at every grid pixel.

    Attributes:
        map_u, map_v: (R, Cc) float32 remap coordinates, N = R * Cc grid pixels in NESTED order;
            valid ones are clamped into the image, invalid ones point off the image.
        nearest: (N,) int64 flat index ``v * W + u`` of the nearest image pixel (0 where invalid).
        valid: (N,) bool, the grid pixel's ray lands inside the image.
    """

    map_u: np.ndarray
    map_v: np.ndarray
    nearest: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class BackwardMaps:
    """Sampling of the sphere at every image pixel (for one output image size).

    Attributes:
        nearest: (H, W) int64 grid pixel containing each image pixel's ray; -1 outside the grid.
        atlas_x, atlas_y: (H, W) float32 remap coordinates into the atlas (off the atlas when outside).
        atlas_index: (Ha, Wa) int64 grid pixel shown at each atlas position.
        nearest_src, atlas_src: (H, W, 2) and (Ha, Wa, 2) int16 (column, row) of ``nearest`` and
            ``atlas_index`` in the values viewed as a 2-D image (``_forward_layout``), so that both
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


# ------------------------------------------------------------- computation
def _forward_layout(n: int) -> tuple[int, int]:
    cols = min(n, 4096)
    return n // cols, cols


def compute_forward_maps(camera: FisheyeCamera, grid: HealpixGrid) -> ForwardMaps:
    """Project every grid pixel centre into the image (see ``ForwardMaps``)."""
    rays = grid.vectors()
    uv = camera.project(rays)
    valid = camera.sees(rays)
    w, h = camera.width, camera.height
    u = np.where(valid, np.clip(uv[:, 0], 0, w - 1), _OUTSIDE)
    v = np.where(valid, np.clip(uv[:, 1], 0, h - 1), _OUTSIDE)
    ui = np.clip(np.floor(uv[:, 0] + 0.5), 0, w - 1).astype(np.int64)
    vi = np.clip(np.floor(uv[:, 1] + 0.5), 0, h - 1).astype(np.int64)
    nearest = np.where(valid, vi * w + ui, 0)
    shape = _forward_layout(grid.npix)
    return ForwardMaps(
        map_u=u.astype(np.float32).reshape(shape),
        map_v=v.astype(np.float32).reshape(shape),
        nearest=nearest,
        valid=valid,
    )


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
            mirror = grid.local_index(hp.xyf2pix(nside, mx[border], my[border], np.full(border.sum(), face), nest=True))
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
        atlas_x=np.where(inside, c0 + y - 0.5, _OUTSIDE).astype(np.float32).reshape(shape),
        atlas_y=np.where(inside, r0 + x - 0.5, _OUTSIDE).astype(np.float32).reshape(shape),
        atlas_index=atlas_index,
        nearest_src=_layout_position(nearest.reshape(shape), grid.npix),
        atlas_src=_layout_position(atlas_index, grid.npix),
    )


def _layout_position(index: np.ndarray, n: int) -> np.ndarray:
    """(..., 2) int16 (column, row) of grid pixels in the (R, Cc) layout; off-layout for -1."""
    rows, cols = _forward_layout(n)
    if rows >= _CV_MAX:
        return np.zeros((0, 0, 2), dtype=np.int16)
    col = np.where(index >= 0, index % cols, _OUTSIDE)
    row = np.where(index >= 0, index // cols, _OUTSIDE)
    return np.stack([col, row], axis=-1).astype(np.int16)


def _as_layout(values: np.ndarray) -> np.ndarray:
    rows, cols = _forward_layout(values.shape[0])
    return np.ascontiguousarray(values).reshape(rows, cols, *values.shape[1:])


def _remap_nearest(src: np.ndarray, positions: np.ndarray, fill: float) -> np.ndarray:
    out = cv2.remap(src, positions, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=(fill,) * 4)
    if fill != 0 and src.ndim == 3 and src.shape[2] > 4:  # cv2's border value has only 4 channels
        out[positions[..., 1] < 0] = fill
    return out


# ------------------------------------------------------------------ caching
class _MapCache:
    """Thread-safe LRU of computed maps, backed by an optional on-disk ``.npz`` cache."""

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, object] = OrderedDict()
        self._lock = Lock()

    def get(self, key: str, compute: Callable[[], object], cls: type, cache_dir: Path | None) -> object:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = _load(cache_dir, key, cls) if cache_dir is not None else None
        if value is None:
            value = compute()
            if cache_dir is not None:
                _save(cache_dir, key, value)
        for arr in vars(value).values():
            arr.setflags(write=False)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# Enough for every camera of a multi-vehicle dataset (WoodScape has dozens of distinct
# intrinsics, doubled by flip augmentation); each entry holds the maps of one calibration.
_CACHE = _MapCache(maxsize=int(os.environ.get("HEAL_SWIN_MAP_CACHE_SIZE", "64")))


def clear_memory_cache() -> None:
    """Drop every map held in memory (the disk cache is left alone)."""
    _CACHE.clear()


def memory_cache_size() -> int:
    """How many calibrations' maps the in-memory LRU keeps."""
    return _CACHE.maxsize


def set_memory_cache_size(n: int) -> None:
    """Keep the maps of up to ``n`` calibrations in memory (a service with many cameras wants more)."""
    if n < 1:
        raise ValueError(f"map cache size: expected >= 1, got {n}")
    _CACHE.maxsize = int(n)


def _load(cache_dir: Path, key: str, cls: type) -> object | None:
    path = cache_dir / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return cls(**{name: f[name] for name in cls.__dataclass_fields__})
    except Exception:  # a corrupt or stale cache entry is recomputed, never fatal
        return None


def _save(cache_dir: Path, key: str, value: object) -> None:
    try:
        with atomic_open(cache_dir / f"{key}.npz") as f:  # readers never see a partial file
            np.savez(f, **vars(value))
    except OSError as e:  # a read-only or full cache directory costs speed, not correctness
        warnings.warn(f"map cache {cache_dir}: could not write {key}.npz ({e.strerror})", stacklevel=3)


def _cache_key(kind: str, camera: FisheyeCamera, grid: HealpixGrid) -> str:
    text = f"v{_CACHE_FORMAT}|{kind}|{camera.intrinsics_key}|{grid.key}"
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


# ---------------------------------------------------------------- projector
class SphereProjector:
    """Moves images between one fisheye camera and a HEALPix grid.

    Args:
        camera: the calibration of the images (their size must equal ``camera.image_size``).
        grid: the HEALPix grid; its NESTED pixel order is the order of every sphere array.
        cache_dir: optional directory for the on-disk map cache (default: env
            ``HEAL_SWIN_CACHE_DIR`` if set, else memory only).
    """

    def __init__(self, camera: FisheyeCamera, grid: HealpixGrid, cache_dir: str | Path | None = None) -> None:
        self.camera = camera
        self.grid = grid
        env = os.environ.get("HEAL_SWIN_CACHE_DIR")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else (Path(env) if env else None)

    # ------------------------------------------------------------- maps
    @property
    def forward_maps(self) -> ForwardMaps:
        key = _cache_key("fwd", self.camera, self.grid)
        return _CACHE.get(key, lambda: compute_forward_maps(self.camera, self.grid), ForwardMaps, self.cache_dir)

    def backward_maps(self, out_size: tuple[int, int] | None = None) -> BackwardMaps:
        """Maps for back-projection to an image of ``out_size = (width, height)`` (default: camera size)."""
        cam = self._camera_for(out_size)
        key = _cache_key("bwd", cam, self.grid)
        return _CACHE.get(key, lambda: compute_backward_maps(cam, self.grid), BackwardMaps, self.cache_dir)

    def _camera_for(self, out_size: tuple[int, int] | None) -> FisheyeCamera:
        if out_size is None or tuple(out_size) == self.camera.image_size:
            return self.camera
        return self.camera.scaled(int(out_size[0]), int(out_size[1]))

    @property
    def valid_mask(self) -> np.ndarray:
        """(N,) bool: grid pixels that see the image."""
        return self.forward_maps.valid

    def footprint(self, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """(H, W) bool: image pixels whose ray falls inside the grid."""
        return self.backward_maps(out_size).footprint

    @property
    def coverage(self) -> float:
        """Fraction of grid pixels that see the image."""
        return float(self.valid_mask.mean())

    # --------------------------------------------------------- to sphere
    def _check_image(self, image: np.ndarray, what: str) -> np.ndarray:
        img = np.asarray(image)
        if img.ndim not in (2, 3):
            raise ImageSizeError(f"{what}: expected an (H, W) or (H, W, C) array, got shape {img.shape}")
        h, w = img.shape[:2]
        if (w, h) != self.camera.image_size:
            raise ImageSizeError(
                f"{what}: size {w}x{h} does not match the calibration {self.camera.source} "
                f"({self.camera.width}x{self.camera.height}); resize the image or use camera.scaled()"
            )
        return img

    def to_sphere(self, image: np.ndarray, mode: Mode = "bilinear", fill: float = 0) -> np.ndarray:
        """Sample an image at every grid pixel.

        Args:
            image: (H, W) or (H, W, C) array at the camera's size. ``bilinear`` for photographs,
                ``nearest`` for label images (keeps the set of values; any dtype).
            fill: value of grid pixels outside the image.

        Returns:
            (N,) or (N, C) array of the image's dtype, NESTED order (``bilinear`` on an integer
            dtype cv2 cannot remap returns float32).
        """
        img = self._check_image(image, "image")
        maps = self.forward_maps
        n = self.grid.npix
        if mode == "nearest":
            flat = img.reshape(-1, *img.shape[2:])
            out = np.take(flat, maps.nearest, axis=0)
            out[~maps.valid] = fill
            return out
        if mode != "bilinear":
            raise ValueError(f"mode: expected 'bilinear' or 'nearest', got {mode!r}")
        src = img if img.dtype.type in _CV_DTYPES else img.astype(np.float32)
        chunks = []
        for r0 in range(0, maps.map_u.shape[0], _CV_MAX):
            chunks.append(
                cv2.remap(
                    src,
                    maps.map_u[r0 : r0 + _CV_MAX],
                    maps.map_v[r0 : r0 + _CV_MAX],
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT,
                    borderValue=(fill,) * 4,
                )
            )
        out = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=0)
        out = out.reshape(n, *img.shape[2:])
        if fill != 0 and img.ndim == 3 and img.shape[2] > 4:  # cv2's border value has only 4 channels
            out[~maps.valid] = fill
        return out

    def to_sphere_depth(self, depth: np.ndarray) -> np.ndarray:
        """(N,) float32 depth (metres along the ray), nearest; ``inf`` where invalid or off-image.

        Input depth that is not finite or not positive counts as invalid.
        """
        d = self._check_image(depth, "depth")
        if d.ndim != 2:
            raise ImageSizeError(f"depth: expected an (H, W) array, got shape {d.shape}")
        maps = self.forward_maps
        out = np.take(d.reshape(-1), maps.nearest).astype(np.float32)
        bad = ~maps.valid | ~np.isfinite(out) | (out <= 0)
        out[bad] = np.inf
        return out

    # ---------------------------------------------------------- to image
    def to_image(
        self,
        values: np.ndarray,
        mode: Mode = "nearest",
        out_size: tuple[int, int] | None = None,
        fill: float = 0,
    ) -> np.ndarray:
        """Sample sphere values at every pixel of the fisheye image.

        Args:
            values: (N,) or (N, C) in the grid's NESTED order.
            mode: ``nearest`` (the HEALPix pixel containing the ray; any dtype) or ``bilinear``
                (interpolated in the face coordinates across seams; float output for ints).
            out_size: (width, height) of the output image; default the camera's size.
            fill: value of image pixels outside the grid (see ``footprint``).

        Returns:
            (H, W) or (H, W, C) array.
        """
        vals = np.asarray(values)
        if vals.ndim not in (1, 2) or vals.shape[0] != self.grid.npix:
            raise ValueError(f"values: expected shape ({self.grid.npix},) or ({self.grid.npix}, C), got {vals.shape}")
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"mode: expected 'bilinear' or 'nearest', got {mode!r}")
        maps = self.backward_maps(out_size)
        h, w = maps.nearest.shape
        as_image = maps.nearest_src.size > 0 and vals.dtype.type in _CV_DTYPES
        if mode == "nearest":
            if as_image:  # the gather as one multi-threaded remap of the values seen as an image
                return _remap_nearest(_as_layout(vals), maps.nearest_src, fill)
            # Labels as int32/int64/bool (or huge grids): a plain gather keeps the dtype exactly.
            idx = maps.nearest.reshape(-1)
            out = np.take(vals, np.maximum(idx, 0), axis=0)
            out[idx < 0] = fill
            return out.reshape(h, w, *vals.shape[1:])
        src = vals if vals.dtype.type in _CV_DTYPES else vals.astype(np.float32)
        # Lay the faces out as an atlas with seam borders, then interpolate inside it.
        atlas = _remap_nearest(_as_layout(src), maps.atlas_src, 0) if as_image else np.take(src, maps.atlas_index, axis=0)
        out = cv2.remap(atlas, maps.atlas_x, maps.atlas_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(fill,) * 4)
        if fill != 0 and atlas.ndim == 3 and atlas.shape[2] > 4:  # cv2's border value has only 4 channels
            out[maps.nearest < 0] = fill
        return out
