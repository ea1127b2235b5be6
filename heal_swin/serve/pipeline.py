"""Pre- and post-processing around an exported model (numpy + OpenCV + geometry; no torch).

Shared by the service and by the export's validation, so that both feed a model the same way:

- sphere models: fisheye image (BGR uint8) -> ``SphereProjector.to_sphere`` (bilinear, uint8) -> RGB
  scaled to [0, 1] -> ``(x - mean) / std``, grid pixels outside the image 0 -> ``(3, N)`` float32 (exactly
  the training pipeline's ``heal_swin.data.datasets`` sphere view); the output
  ``(K, N)`` goes back onto the fisheye image with ``to_image(nearest)``.
- flat models: the image is resized (bilinear) to the model's ``img_size`` and the output resized
  back (nearest for classes, bilinear for depth).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from heal_swin.export.manifest import Manifest
from heal_swin.geometry import FisheyeCamera, HealpixGrid, SphereProjector

__all__ = [
    "LRU",
    "NO_CLASS",
    "classes_from_logits",
    "classes_to_image",
    "colour_overlay",
    "depth_from_output",
    "depth_to_image",
    "grid_of",
    "model_input",
    "normalise",
    "projector_for",
    "sphere_picture",
]

NO_CLASS = 255  # class-mask value of image pixels without a prediction (outside the grid footprint)


class LRU:
    """A small thread-safe LRU cache: ``get(key, compute)``."""

    def __init__(self, maxsize: int = 32) -> None:
        self.maxsize = max(1, int(maxsize))
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


_PROJECTORS = LRU(64)
_VIEWS = LRU(16)


def grid_of(manifest: Manifest) -> HealpixGrid:
    return HealpixGrid(int(manifest.nside), tuple(manifest.base_pixels))


def projector_for(camera: FisheyeCamera, manifest: Manifest) -> SphereProjector:
    """A projector per (calibration intrinsics, grid); its maps live in the geometry LRU."""
    key = (camera.intrinsics_key, manifest.nside, tuple(manifest.base_pixels))
    return _PROJECTORS.get(key, lambda: SphereProjector(camera, grid_of(manifest)))


def normalise(pixels_bgr: np.ndarray, manifest: Manifest) -> np.ndarray:
    """(..., 3) uint8 BGR -> (3, ...) float32 normalised as the manifest says."""
    norm = manifest.normalisation
    x = pixels_bgr.astype(np.float32)
    if norm.get("colour_order", "RGB") == "RGB":
        x = x[..., ::-1]
    scale = float(norm.get("scale", 1 / 255))
    mean = np.asarray(manifest.mean, np.float32)
    std = np.asarray(manifest.std, np.float32)
    x = (x * scale - mean) / std
    return np.ascontiguousarray(np.moveaxis(x, -1, 0), dtype=np.float32)


def model_input(image_bgr: np.ndarray, manifest: Manifest, camera: FisheyeCamera | None) -> np.ndarray:
    """One sample's model input: ``(3, N)`` for sphere models, ``(3, H, W)`` for flat ones."""
    if manifest.input_kind == "sphere":
        assert camera is not None
        proj = projector_for(camera, manifest)
        x = normalise(proj.to_sphere(image_bgr, mode="bilinear", fill=0), manifest)
        x[:, ~proj.valid_mask] = 0.0  # as in training (heal_swin.data.datasets): 0 after normalisation
        return x
    h, w = manifest.img_size
    if image_bgr.shape[:2] != (h, w):
        image_bgr = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA if image_bgr.shape[0] > h else cv2.INTER_LINEAR)
    return normalise(image_bgr, manifest)


def classes_from_logits(logits: np.ndarray) -> np.ndarray:
    """(K, ...) -> (...) uint8 class ids."""
    return np.argmax(logits, axis=0).astype(np.uint8)


def depth_from_output(output: np.ndarray, manifest: Manifest) -> np.ndarray:
    """(C, ...) normalised log-depth (channel 0) -> (...) float32 metres."""
    d = manifest.depth
    z = output[0].astype(np.float64) * float(d["log_std"]) + float(d["log_mean"])
    return np.exp(np.clip(z, -50, 50)).astype(np.float32)


def classes_to_image(classes: np.ndarray, manifest: Manifest, camera: FisheyeCamera | None, size: tuple[int, int]) -> np.ndarray:
    """Class ids on the model's domain -> (H, W) uint8 mask at ``size = (W, H)``; NO_CLASS outside."""
    if manifest.input_kind == "sphere":
        return projector_for(camera, manifest).to_image(classes, mode="nearest", fill=NO_CLASS)
    return cv2.resize(classes, size, interpolation=cv2.INTER_NEAREST)


def depth_to_image(depth: np.ndarray, manifest: Manifest, camera: FisheyeCamera | None, size: tuple[int, int]) -> np.ndarray:
    """Metres on the model's domain -> (H, W) float32 metres at ``size``; NaN outside the footprint."""
    if manifest.input_kind == "sphere":
        return projector_for(camera, manifest).to_image(depth.astype(np.float32), mode="nearest", fill=np.nan)
    return cv2.resize(depth.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)


def palette(manifest: Manifest) -> np.ndarray:
    """(256, 3) uint8 BGR: the class colours, black for NO_CLASS and unknown ids."""
    pal = np.zeros((256, 3), np.uint8)
    if manifest.class_colours:
        pal[: len(manifest.class_colours)] = np.asarray(manifest.class_colours, np.uint8)
    return pal


def colour_overlay(image_bgr: np.ndarray, mask: np.ndarray, manifest: Manifest, alpha: float = 0.5) -> np.ndarray:
    """Class colours blended over the image; pixels without a prediction keep the image, darkened."""
    colours = palette(manifest)[mask]
    out = cv2.addWeighted(image_bgr, 1 - alpha, colours, alpha, 0)
    none = mask == NO_CLASS
    out[none] = (image_bgr[none] * 0.4).astype(np.uint8)
    return out


def depth_colours(metres: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(...) metres -> (..., 3) uint8 BGR (TURBO on log depth, near = red); black where invalid."""
    ok = np.isfinite(metres) & (metres > 0)
    if valid is not None:
        ok &= valid
    logd = np.log(np.where(ok, metres, 1.0))
    if ok.any():
        lo, hi = float(logd[ok].min()), float(logd[ok].max())
    else:
        lo, hi = 0.0, 1.0
    scaled = np.clip((logd - lo) / max(hi - lo, 1e-9), 0, 1)
    grey = (255 * (1 - scaled)).astype(np.uint8)
    col = cv2.applyColorMap(grey.reshape(-1, 1), cv2.COLORMAP_TURBO).reshape(*metres.shape, 3)
    col[~ok] = 0
    return col


def _view_index(grid: HealpixGrid, projection: str, width: int) -> np.ndarray:
    from heal_swin.geometry.views import sphere_view

    def compute() -> np.ndarray:
        idx = np.arange(grid.npix, dtype=np.int64)
        return sphere_view(idx, grid, projection, width=width, background=-1, outside_grid=-2)

    return _VIEWS.get((grid.key, projection, width), compute)


def sphere_picture(colours: np.ndarray, manifest: Manifest, projection: str = "mollweide", width: int = 512) -> np.ndarray:
    """(N, 3) uint8 colours on the model's grid -> a picture of the sphere (BGR uint8)."""
    idx = _view_index(grid_of(manifest), projection, width)
    out = np.take(colours, np.maximum(idx, 0), axis=0)
    out[idx == -1] = 255
    out[idx == -2] = 64
    return out
