"""Surround view around a model: four frames + a rig -> the vehicle sphere -> masks per camera (no torch).

The one implementation of the surround path, used by the surround dataset, the comparison
benchmark and the service:

- input: one uint8 frame per rig camera -> blended on the vehicle sphere
  (:meth:`~heal_swin.geometry.rig.VehicleSphere.to_sphere`, float32 pixel values) -> scaled and
  normalised like a single-camera input (:func:`heal_swin.inference.processing.normalise_pixels`)
  -> ``(3, N)`` float32, 0 where no camera sees the direction.
- output: class ids ``(N,)`` on the vehicle sphere -> each camera's image by back-projection
  (nearest), :data:`~heal_swin.inference.processing.NO_CLASS` where a pixel has no ray; a 360°
  panorama (equirectangular, vehicle frame: forward at the centre, left of the vehicle on the
  left, up at the top) of the sphere for pictures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import healpy as hp
import numpy as np

from heal_swin.errors import InputError
from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.geometry.rig import ALL_BASE_PIXELS, CameraRig, VehicleSphere
from heal_swin.inference.manifest import Manifest
from heal_swin.inference.processing import LRU, NO_CLASS, classes_from_logits, normalise_pixels, palette_of

__all__ = [
    "SurroundError",
    "SurroundPrediction",
    "finish_surround",
    "manifest_input",
    "panorama",
    "panorama_index",
    "predict_surround",
    "surround_classes",
    "surround_grid",
    "surround_input",
    "surround_labels",
    "surround_masks",
    "vehicle_sphere_for",
]

_SPHERES = LRU(32)
_PANORAMAS = LRU(8)


class SurroundError(InputError):
    """A surround request that does not fit the rig or the model."""


def vehicle_sphere_for(rig: CameraRig, grid: HealpixGrid, radius: float = math.inf) -> VehicleSphere:
    """A vehicle sphere per (rig, grid, radius); the rig maps and per-camera maps are cached below it."""
    if tuple(grid.base_pixels) != ALL_BASE_PIXELS:
        raise SurroundError(
            f"grid: a surround model needs all 12 base pixels 0..11, got {list(grid.base_pixels)}"
        )
    return _SPHERES.get((rig.key, grid.key, float(radius)), lambda: VehicleSphere(rig, grid, radius=radius))


def _ordered(
    frames: Mapping[str, np.ndarray] | Sequence[np.ndarray], rig: CameraRig, what: str
) -> list[np.ndarray]:
    if isinstance(frames, Mapping):
        missing = [n for n in rig.names if n not in frames]
        extra = [n for n in frames if n not in rig.names]
        if missing or extra:
            raise SurroundError(
                f"{what}: expected one per camera {list(rig.names)}, missing {missing}, unknown {extra}"
            )
        return [np.asarray(frames[n]) for n in rig.names]
    if len(frames) != len(rig):
        raise SurroundError(f"{what}: expected {len(rig)} ({', '.join(rig.names)}), got {len(frames)}")
    return [np.asarray(f) for f in frames]


def surround_input(
    frames: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    sphere: VehicleSphere,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    scale: float = 1 / 255,
    reverse_channels: bool = False,
) -> np.ndarray:
    """(H, W, 3) uint8 frames (by camera name or rig order) -> (3, N) float32 normalised on the vehicle sphere.

    Directions no camera sees are 0 after normalisation, as for a single camera.
    """
    images = _ordered(frames, sphere.rig, "frames")
    for name, img in zip(sphere.rig.names, images):
        if img.ndim != 3 or img.shape[2] != 3:
            raise SurroundError(f"frames.{name}: expected an (H, W, 3) colour image, got shape {img.shape}")
    x = normalise_pixels(sphere.to_sphere(images), mean, std, scale, reverse_channels)
    x[:, ~sphere.valid_mask] = 0.0
    return x


def surround_labels(
    labels: Mapping[str, np.ndarray] | Sequence[np.ndarray], sphere: VehicleSphere, fill: int = NO_CLASS
) -> np.ndarray:
    """(H, W) class ids per camera -> (N,) on the vehicle sphere from the best camera, ``fill`` unseen."""
    return sphere.labels_to_sphere(_ordered(labels, sphere.rig, "labels"), fill=fill)


def surround_masks(classes: np.ndarray, sphere: VehicleSphere) -> dict[str, np.ndarray]:
    """(N,) uint8 class ids on the vehicle sphere -> {camera: (H, W) uint8 mask}, NO_CLASS without a ray."""
    cls = np.asarray(classes)
    if cls.shape != (sphere.grid.npix,):
        raise SurroundError(f"classes: expected shape ({sphere.grid.npix},), got {cls.shape}")
    return dict(zip(sphere.rig.names, sphere.to_images(cls.astype(np.uint8), mode="nearest", fill=NO_CLASS)))


def panorama_index(grid: HealpixGrid, width: int = 1024) -> np.ndarray:
    """(width // 2, width) int64 grid pixel at each panorama pixel (equirectangular, vehicle frame).

    Column ``j`` is azimuth ``180° - 360° (j + 0.5) / width`` (0 = forward at the centre, +90° =
    left), row ``i`` is elevation ``90° - 180° (i + 0.5) / height``.
    """
    if width < 2 or width % 2:
        raise SurroundError(f"width: expected an even number >= 2 of panorama columns, got {width}")

    def compute() -> np.ndarray:
        h = width // 2
        az = np.pi - 2 * np.pi * (np.arange(width) + 0.5) / width
        el = np.pi / 2 - np.pi * (np.arange(h) + 0.5) / h
        a, e = np.meshgrid(az, el)
        pix = hp.ang2pix(grid.nside, np.pi / 2 - e, a, nest=True)
        idx = grid.local_index(pix)
        idx.setflags(write=False)
        return idx

    return _PANORAMAS.get((grid.key, int(width)), compute)


def panorama(
    values: np.ndarray,
    grid: HealpixGrid,
    width: int = 1024,
    fill: float | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Sphere values (N,) or (N, C) -> a (width // 2, width[, C]) 360° panorama; ``fill`` where not ``valid``."""
    idx = panorama_index(grid, width)
    out = np.take(np.asarray(values), np.maximum(idx, 0), axis=0)
    if fill is not None:
        hole = idx < 0 if valid is None else (idx < 0) | ~np.asarray(valid)[np.maximum(idx, 0)]
        out[hole] = fill
    return out


def surround_classes(
    frames: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    sphere: VehicleSphere,
    run: Callable[[np.ndarray], np.ndarray],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    scale: float = 1 / 255,
    reverse_channels: bool = False,
) -> np.ndarray:
    """(N,) uint8 class ids on the vehicle sphere (NO_CLASS unseen) of a model ``run``:
    ``(1, 3, N) float32 -> (1, K, N)`` logits."""
    x = surround_input(frames, sphere, mean, std, scale, reverse_channels)
    logits = np.asarray(run(x[None]))
    if logits.ndim != 3 or logits.shape[0] != 1 or logits.shape[2] != sphere.grid.npix:
        raise SurroundError(f"model: expected output (1, K, {sphere.grid.npix}), got {logits.shape}")
    classes = classes_from_logits(logits[0])
    classes[~sphere.valid_mask] = NO_CLASS
    return classes


@dataclass(frozen=True)
class SurroundPrediction:
    """Result of :func:`predict_surround`.

    Attributes:
        classes: (N,) uint8 class ids on the vehicle sphere (NO_CLASS where no camera sees).
        masks: {camera: (H, W) uint8} back-projected class ids.
        source: (N,) int8 camera index (rig order) each direction's input pixel came from most, -1 unseen.
        picture: (width // 2, width, 3) uint8 BGR panorama in the class colours (grey: unseen).
    """

    classes: np.ndarray
    masks: dict[str, np.ndarray]
    source: np.ndarray
    picture: np.ndarray


def surround_grid(manifest: Manifest) -> HealpixGrid:
    """The vehicle-sphere grid of a surround model; SurroundError unless a segmentation sphere model on all 12 base pixels."""
    if manifest.task != "segmentation" or manifest.input_kind != "sphere":
        raise SurroundError(
            f"model {manifest.name!r}: expected a segmentation sphere model, got {manifest.task} on {manifest.input_kind}"
        )
    if list(manifest.base_pixels or []) != list(ALL_BASE_PIXELS):
        raise SurroundError(
            f"model {manifest.name!r}: a surround model needs all 12 base pixels 0..11, got {manifest.base_pixels}"
        )
    return HealpixGrid(int(manifest.nside), ALL_BASE_PIXELS)


def manifest_input(
    frames: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    sphere: VehicleSphere,
    manifest: Manifest,
    colour_order: str = "BGR",
) -> np.ndarray:
    """(3, N) model input of the frames (in ``colour_order``) normalised as the manifest says."""
    norm = manifest.normalisation
    reverse = norm.get("colour_order", "RGB") != colour_order
    return surround_input(
        frames, sphere, manifest.mean, manifest.std, float(norm.get("scale", 1 / 255)), reverse
    )


def finish_surround(
    logits: np.ndarray, sphere: VehicleSphere, manifest: Manifest, picture_width: int = 1024
) -> SurroundPrediction:
    """(K, N) logits on the vehicle sphere -> classes, a mask per camera and the panorama in the class colours."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] != sphere.grid.npix:
        raise SurroundError(
            f"model {manifest.name!r}: expected output (K, {sphere.grid.npix}), got {logits.shape}"
        )
    classes = classes_from_logits(logits)
    classes[~sphere.valid_mask] = NO_CLASS
    picture = panorama(palette_of(manifest.class_colours)[classes], sphere.grid, picture_width)
    picture[panorama(~sphere.valid_mask, sphere.grid, picture_width)] = 96  # directions no camera sees
    return SurroundPrediction(classes, surround_masks(classes, sphere), sphere.source, picture)


def predict_surround(
    frames: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    rig: CameraRig,
    manifest: Manifest,
    run: Callable[[np.ndarray], np.ndarray],
    colour_order: str = "BGR",
    radius: float = math.inf,
    picture_width: int = 1024,
) -> SurroundPrediction:
    """Segment the four frames of one timestamp with a vehicle-sphere model.

    Args:
        frames: (H, W, 3) uint8 per camera in ``colour_order`` (the service decodes BGR).
        rig: the cameras (calibrations at the frames' sizes).
        manifest: a segmentation sphere model on all 12 base pixels.
        run: ``(1, 3, N) float32 -> (1, K, N)`` logits (an onnxruntime session, a torch model, ...).
    """
    sphere = vehicle_sphere_for(rig, surround_grid(manifest), radius)
    logits = np.asarray(run(manifest_input(frames, sphere, manifest, colour_order)[None]))
    if logits.ndim != 3 or logits.shape[0] != 1:
        raise SurroundError(
            f"model {manifest.name!r}: expected output (1, K, {sphere.grid.npix}), got {logits.shape}"
        )
    return finish_surround(logits[0], sphere, manifest, picture_width)
