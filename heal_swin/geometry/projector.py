"""Fisheye image <-> HEALPix sphere sampling with precomputed, cached maps.

The sphere of one camera is its camera frame: a unit ray (X, Y, Z) is the HEALPix vector (x, y, z),
so the optical axis is the north pole. Every map depends only on (camera intrinsics, nside, base
pixels, image size); it is computed once, kept in the byte-bounded in-memory LRU
``geometry.maps`` (:mod:`heal_swin.cache`) and optionally on disk, and applied as one gather:
forward (image -> sphere) through :class:`~heal_swin.geometry.taps.SamplingTaps`, backward
(sphere -> image) through :class:`~heal_swin.geometry.maps.BackwardMaps` and ``cv2.remap``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from heal_swin.cache import DiskCache, LRUCache
from heal_swin.errors import InputError
from heal_swin.geometry.camera import FisheyeCamera
from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.geometry.maps import CV_DTYPES, BackwardMaps, as_layout, compute_backward_maps, remap_nearest
from heal_swin.geometry.taps import SamplingTaps, area_taps, bilinear_taps, nearest_taps

__all__ = [
    "MAP_CACHE",
    "RESAMPLE_MODES",
    "BackwardMaps",
    "ImageSizeError",
    "SamplingTaps",
    "SphereProjector",
    "clear_memory_cache",
    "memory_cache_size",
    "set_memory_cache_size",
]

Mode = Literal["bilinear", "nearest"]
Resample = Literal["nearest", "bilinear", "area"]
RESAMPLE_MODES: tuple[str, ...] = ("nearest", "bilinear", "area")
_CACHE_FORMAT = 3
_TAPS: dict[str, Callable[[FisheyeCamera, HealpixGrid], SamplingTaps]] = {
    "nearest": nearest_taps,
    "bilinear": bilinear_taps,
    "area": area_taps,
}


class ImageSizeError(InputError):
    """An image whose size does not match the calibration."""


# Every map of every calibration in this process; a bound in bytes (env HEAL_SWIN_MAP_CACHE_BYTES,
# default 2 GiB: a 1280x966 camera's backward maps plus its nside-256 taps are ~45 MB).
MAP_CACHE = LRUCache(int(os.environ.get("HEAL_SWIN_MAP_CACHE_BYTES", str(2 << 30))), name="geometry.maps")


def clear_memory_cache() -> None:
    """Drop every map held in memory (the disk cache is left alone)."""
    MAP_CACHE.clear()


def memory_cache_size() -> int:
    """Deprecated: the entry bound of the map cache (0: bounded in bytes only, ``MAP_CACHE.max_bytes``)."""
    return MAP_CACHE.max_items or 0


def set_memory_cache_size(n: int) -> None:
    """Deprecated: also bound the map cache to ``n`` entries; set ``MAP_CACHE.max_bytes`` instead."""
    MAP_CACHE.max_items = n


def _cache_key(kind: str, camera: FisheyeCamera, grid: HealpixGrid) -> str:
    text = f"v{_CACHE_FORMAT}|{kind}|{camera.intrinsics_key}|{grid.key}"
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _fields(value: object) -> dict[str, np.ndarray]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def _cached(key: str, compute: Callable[[], object], cls: type, cache_dir: Path | None) -> object:
    def load_or_compute() -> object:
        if cache_dir is None:
            value = compute()
        else:
            arrays = DiskCache(cache_dir).load(key)
            value = None
            if arrays is not None and set(arrays) == set(cls.__dataclass_fields__):
                value = cls(**arrays)
            if value is None:
                value = compute()
                DiskCache(cache_dir).save(key, _fields(value))  # atomic: readers never see a partial file
        for arr in _fields(value).values():
            arr.setflags(write=False)
        return value

    return MAP_CACHE.get(key, load_or_compute)


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
    def taps(self, mode: Resample = "bilinear") -> SamplingTaps:
        """The forward sampling ``mode`` (nearest, bilinear or area) as taps: index (N, K) int32
        into the image flattened to (H*W, C), weight (N, K) float32, valid (N,) bool."""
        if mode not in _TAPS:
            raise ValueError(f"mode: expected one of {', '.join(RESAMPLE_MODES)}, got {mode!r}")
        key = _cache_key(f"taps-{mode}", self.camera, self.grid)
        return _cached(key, lambda: _TAPS[mode](self.camera, self.grid), SamplingTaps, self.cache_dir)

    @property
    def forward_maps(self) -> SamplingTaps:
        """The bilinear taps (what ``to_sphere`` uses by default); computing them warms the cache."""
        return self.taps("bilinear")

    def backward_maps(self, out_size: tuple[int, int] | None = None) -> BackwardMaps:
        """Maps for back-projection to an image of ``out_size = (width, height)`` (default: camera size)."""
        cam = self._camera_for(out_size)
        key = _cache_key("bwd", cam, self.grid)
        return _cached(key, lambda: compute_backward_maps(cam, self.grid), BackwardMaps, self.cache_dir)

    def _camera_for(self, out_size: tuple[int, int] | None) -> FisheyeCamera:
        if out_size is None or tuple(out_size) == self.camera.image_size:
            return self.camera
        return self.camera.scaled(int(out_size[0]), int(out_size[1]))

    @property
    def valid_mask(self) -> np.ndarray:
        """(N,) bool: grid pixels that see the image (their centre's ray lands inside it)."""
        return self.taps("nearest").valid

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

    def to_sphere(self, image: np.ndarray, mode: Resample = "bilinear", fill: float = 0) -> np.ndarray:
        """Sample an image at every grid pixel.

        Args:
            image: (H, W) or (H, W, C) array at the camera's size. ``bilinear`` (point sampling at
                the pixel centre) or ``area`` (the mean over the pixel's footprint: anti-aliased,
                for grids coarser than the image) for photographs; ``nearest`` for label images
                (keeps the set of values; any dtype). See :mod:`heal_swin.geometry.taps`.
            fill: value of grid pixels outside the image.

        Returns:
            (N,) or (N, C) array, NESTED order: the image's dtype for ``nearest`` and for
            uint8/uint16/int16/float32/float64 images (rounded), float32 otherwise.
        """
        img = self._check_image(image, "image")
        taps = self.taps(mode)
        if mode == "nearest":  # a plain gather keeps any dtype exactly
            out = np.take(img.reshape(-1, *img.shape[2:]), taps.index[:, 0], axis=0)
            out[~taps.valid] = fill
            return out
        return taps.apply(img, fill)

    def to_sphere_depth(self, depth: np.ndarray) -> np.ndarray:
        """(N,) float32 depth (metres along the ray), nearest; ``inf`` where invalid or off-image.

        Nearest, not area: a mean across a depth edge would be a surface that is not there.
        Input depth that is not finite or not positive counts as invalid.
        """
        d = self._check_image(depth, "depth")
        if d.ndim != 2:
            raise ImageSizeError(f"depth: expected an (H, W) array, got shape {d.shape}")
        taps = self.taps("nearest")
        out = np.take(d.reshape(-1), taps.index[:, 0]).astype(np.float32)
        bad = ~taps.valid | ~np.isfinite(out) | (out <= 0)
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
            raise ValueError(
                f"values: expected shape ({self.grid.npix},) or ({self.grid.npix}, C), got {vals.shape}"
            )
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"mode: expected 'bilinear' or 'nearest', got {mode!r}")
        maps = self.backward_maps(out_size)
        h, w = maps.nearest.shape
        as_image = maps.nearest_src.size > 0 and vals.dtype.type in CV_DTYPES
        if mode == "nearest":
            if as_image:  # the gather as one multi-threaded remap of the values seen as an image
                return remap_nearest(as_layout(vals), maps.nearest_src, fill)
            # Labels as int32/int64/bool (or huge grids): a plain gather keeps the dtype exactly.
            idx = maps.nearest.reshape(-1)
            out = np.take(vals, np.maximum(idx, 0), axis=0)
            out[idx < 0] = fill
            return out.reshape(h, w, *vals.shape[1:])
        src = vals if vals.dtype.type in CV_DTYPES else vals.astype(np.float32)
        # Lay the faces out as an atlas with seam borders, then interpolate inside it.
        atlas = (
            remap_nearest(as_layout(src), maps.atlas_src, 0)
            if as_image
            else np.take(src, maps.atlas_index, axis=0)
        )
        out = cv2.remap(
            atlas,
            maps.atlas_x,
            maps.atlas_y,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(fill,) * 4,
        )
        if fill != 0 and atlas.ndim == 3 and atlas.shape[2] > 4:  # cv2's border value has only 4 channels
            out[maps.nearest < 0] = fill
        return out
