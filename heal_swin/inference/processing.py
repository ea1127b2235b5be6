"""Pre- and post-processing around a model: the one implementation (numpy + OpenCV + geometry; no torch).

Training's dataset, evaluation, ``predict``, export, quantisation and the service all call these,
so that every one of them feeds a model the same way:

- sphere models: fisheye image (uint8) -> ``SphereProjector.to_sphere`` (the manifest's ``resample``:
  bilinear or area, uint8; labels and depth nearest) -> scaled to
  [0, 1] -> ``(x - mean) / std`` -> ``(3, N)`` float32, grid pixels outside the image 0 (after
  normalisation); outputs ``(K, N)`` go back onto the fisheye image with ``to_image(nearest)``.
- flat models: the image is resized with ``cv2.INTER_AREA`` (what training does) to the model's
  ``img_size``; outputs are resized back with nearest neighbours (class ids and depth alike: depth
  has ``inf`` holes and edges that interpolation would smear).

Functions named after a model domain take plain parameters (the dataset and ``predict`` have no
manifest); ``model_input``, ``classes_to_image``, ``depth_from_output``... take a :class:`Manifest`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from heal_swin.cache import LRUCache
from heal_swin.geometry import FisheyeCamera, HealpixGrid, SphereProjector
from heal_swin.inference.manifest import Manifest

__all__ = [
    "LRU",
    "NO_CLASS",
    "RESAMPLE",
    "classes_from_logits",
    "classes_to_image",
    "colour_overlay",
    "decode_depth",
    "depth_colours",
    "depth_from_output",
    "depth_to_image",
    "depth_to_sphere",
    "flat_input",
    "grid_of",
    "labels_to_sphere",
    "model_input",
    "normalise",
    "normalise_pixels",
    "palette",
    "palette_of",
    "projector_for",
    "resize_image",
    "resize_nearest",
    "sphere_input",
    "sphere_picture",
    "sphere_to_image",
]

RESAMPLE = ("bilinear", "area")  # how images go onto the sphere (labels and depth: nearest)
NO_CLASS = 255  # class-mask value of image pixels without a prediction (outside the grid footprint)


def LRU(maxsize: int = 32) -> LRUCache:
    """Deprecated: an LRUCache bounded to ``maxsize`` entries (use :class:`heal_swin.cache.LRUCache`)."""
    return LRUCache(1 << 40, max_items=max(1, int(maxsize)))


# Projector handles hold no arrays (their maps live in the geometry's ``geometry.maps`` cache):
# bounded by the per-entry overhead, 64 MiB / 256 B = 256k calibrations x grids.
_PROJECTORS = LRUCache(64 << 20, name="inference.projectors")
_VIEWS = LRUCache(256 << 20, name="inference.views")  # picture index maps, (H, W) int64 each


# ------------------------------------------------------------------ core (no manifest)
def normalise_pixels(
    pixels: np.ndarray,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    scale: float = 1 / 255,
    reverse_channels: bool = False,
) -> np.ndarray:
    """(..., 3) uint8 -> (3, ...) float32: ``(x * scale - mean) / std`` (``None`` skips a step).

    ``reverse_channels`` flips BGR <-> RGB (the service decodes BGR, models take RGB).
    """
    x = np.moveaxis(pixels, -1, 0)
    if reverse_channels:
        x = x[::-1]
    x = x.astype(np.float32) * np.float32(scale)
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    if mean is not None:
        x -= np.asarray(mean, np.float32).reshape(shape)
    if std is not None:
        x /= np.asarray(std, np.float32).reshape(shape)
    return np.ascontiguousarray(x, dtype=np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, ...) image -> ``size = (W, H)`` with INTER_AREA (training's resize; a no-op at that size)."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)


def resize_nearest(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) labels/depth/class ids -> ``size = (W, H)`` with nearest neighbours (keeps the values)."""
    if (values.shape[1], values.shape[0]) == tuple(size):
        return values
    return cv2.resize(values, tuple(size), interpolation=cv2.INTER_NEAREST)


def sphere_input(
    image: np.ndarray,
    proj: SphereProjector,
    mean,
    std,
    scale: float = 1 / 255,
    reverse_channels: bool = False,
    resample: str = "bilinear",
) -> np.ndarray:
    """(H, W, 3) uint8 fisheye image -> (3, N) float32 normalised on ``proj``'s grid, 0 where the grid does not see it.

    ``resample``: ``bilinear`` (point sampling at pixel centres) or ``area`` (footprint mean,
    anti-aliased for grids coarser than the image); both are ``proj.taps(resample)``.
    """
    if resample not in RESAMPLE:
        raise ValueError(f"resample: expected one of {', '.join(RESAMPLE)}, got {resample!r}")
    x = normalise_pixels(proj.to_sphere(image, mode=resample, fill=0), mean, std, scale, reverse_channels)
    x[:, ~proj.valid_mask] = 0.0  # a constant the model learnt for "no image", whatever the mean
    return x


def flat_input(
    image: np.ndarray,
    img_size: Sequence[int],
    mean,
    std,
    scale: float = 1 / 255,
    reverse_channels: bool = False,
) -> np.ndarray:
    """(H, W, 3) uint8 image -> (3, h, w) float32 normalised, resized to ``img_size = (h, w)``."""
    h, w = int(img_size[0]), int(img_size[1])
    return normalise_pixels(resize_image(image, (w, h)), mean, std, scale, reverse_channels)


def labels_to_sphere(labels: np.ndarray, proj: SphereProjector, fill: int = NO_CLASS) -> np.ndarray:
    """(H, W) uint8 class ids -> (N,) uint8 on the grid (nearest), ``fill`` where the grid does not see the image."""
    lab = proj.to_sphere(labels, mode="nearest", fill=fill)
    lab[~proj.valid_mask] = fill
    return lab


def depth_to_sphere(depth: np.ndarray, proj: SphereProjector) -> np.ndarray:
    """(H, W) float32 metres -> (N,) float32 metres on the grid, ``inf`` where invalid."""
    return proj.to_sphere_depth(depth)


def decode_depth(z: np.ndarray, log_mean: float, log_std: float) -> np.ndarray:
    """(...) normalised log-depth -> (...) float32 metres ``exp(z * log_std + log_mean)``."""
    zz = np.asarray(z, np.float64) * float(log_std) + float(log_mean)
    return np.exp(np.clip(zz, -50, 50)).astype(np.float32)


def sphere_to_image(values: np.ndarray, proj: SphereProjector, fill: float) -> np.ndarray:
    """(N,) values on the grid -> (H, W) on the fisheye image (nearest), ``fill`` outside the grid's footprint."""
    return proj.to_image(values, mode="nearest", fill=fill)


def palette_of(colours: Sequence[Sequence[int]]) -> np.ndarray:
    """(256, 3) uint8 BGR: the class colours, black for NO_CLASS and unknown ids."""
    pal = np.zeros((256, 3), np.uint8)
    if len(colours):
        pal[: len(colours)] = np.asarray(colours, np.uint8).reshape(-1, 3)
    return pal


# ------------------------------------------------------------------ with a manifest
def grid_of(manifest: Manifest) -> HealpixGrid:
    return HealpixGrid(int(manifest.nside), tuple(manifest.base_pixels))


def projector_for(camera: FisheyeCamera, manifest: Manifest) -> SphereProjector:
    """A projector per (calibration intrinsics, grid); its maps live in the geometry LRU."""
    key = (camera.intrinsics_key, manifest.nside, tuple(manifest.base_pixels))
    return _PROJECTORS.get(key, lambda: SphereProjector(camera, grid_of(manifest)))


def _norm_args(manifest: Manifest, colour_order: str) -> tuple[list[float], list[float], float, bool]:
    norm = manifest.normalisation
    reverse = norm.get("colour_order", "RGB") != colour_order
    return manifest.mean, manifest.std, float(norm.get("scale", 1 / 255)), reverse


def normalise(pixels_bgr: np.ndarray, manifest: Manifest) -> np.ndarray:
    """(..., 3) uint8 BGR -> (3, ...) float32 normalised as the manifest says."""
    return normalise_pixels(pixels_bgr, *_norm_args(manifest, "BGR"))


def model_input(
    image: np.ndarray, manifest: Manifest, camera: FisheyeCamera | None, colour_order: str = "BGR"
) -> np.ndarray:
    """One sample's model input: ``(3, N)`` for sphere models, ``(3, H, W)`` for flat ones.

    ``image`` is (H, W, 3) uint8 in ``colour_order`` (BGR as OpenCV decodes; the datasets read RGB).
    """
    args = _norm_args(manifest, colour_order)
    if manifest.input_kind == "sphere":
        assert camera is not None
        return sphere_input(image, projector_for(camera, manifest), *args, resample=manifest.resample)
    return flat_input(image, manifest.img_size, *args)


def classes_from_logits(logits: np.ndarray) -> np.ndarray:
    """(K, ...) -> (...) uint8 class ids."""
    return np.argmax(logits, axis=0).astype(np.uint8)


def depth_from_output(output: np.ndarray, manifest: Manifest) -> np.ndarray:
    """(C, ...) normalised log-depth (channel 0) -> (...) float32 metres."""
    d = manifest.depth
    return decode_depth(output[0], d["log_mean"], d["log_std"])


def classes_to_image(
    classes: np.ndarray, manifest: Manifest, camera: FisheyeCamera | None, size: tuple[int, int]
) -> np.ndarray:
    """Class ids on the model's domain -> (H, W) uint8 mask at ``size = (W, H)``; NO_CLASS outside."""
    if manifest.input_kind == "sphere":
        return sphere_to_image(classes, projector_for(camera, manifest), NO_CLASS)
    return resize_nearest(classes, size)


def depth_to_image(
    depth: np.ndarray, manifest: Manifest, camera: FisheyeCamera | None, size: tuple[int, int]
) -> np.ndarray:
    """Metres on the model's domain -> (H, W) float32 metres at ``size``; NaN outside the footprint."""
    if manifest.input_kind == "sphere":
        return sphere_to_image(depth.astype(np.float32), projector_for(camera, manifest), np.nan)
    return resize_nearest(depth.astype(np.float32), size)


def palette(manifest: Manifest) -> np.ndarray:
    """(256, 3) uint8 BGR: the manifest's class colours, black for NO_CLASS and unknown ids."""
    return palette_of(manifest.class_colours)


def colour_overlay(
    image_bgr: np.ndarray, mask: np.ndarray, manifest: Manifest, alpha: float = 0.5
) -> np.ndarray:
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


def sphere_picture(
    colours: np.ndarray, manifest: Manifest, projection: str = "mollweide", width: int = 512
) -> np.ndarray:
    """(N, 3) uint8 colours on the model's grid -> a picture of the sphere (BGR uint8)."""
    idx = _view_index(grid_of(manifest), projection, width)
    out = np.take(colours, np.maximum(idx, 0), axis=0)
    out[idx == -1] = 255
    out[idx == -2] = 64
    return out
