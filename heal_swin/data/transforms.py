"""Augmentation that keeps images, labels, depth and calibration consistent.

Flat view (raw samples: ``image`` (H, W, 3) uint8 RGB, ``label`` (H, W), ``depth`` (H, W) or None,
``camera`` FisheyeCamera):

- :func:`photometric` — albumentations colour/noise/blur pipeline; touches the image only.
- :class:`HorizontalFlip` — mirrors every array *and* the calibration (:func:`flip_camera`:
  ``cx_offset`` negated; the extrinsic becomes that of the mirrored rig, see below).
- :class:`Rotate180` — turns every array by 180° *and* the calibration (:func:`rotate180_camera`:
  both principal-point offsets negated, the camera rolled half a turn about its optical axis);
  an exact pixel permutation of any H x W image (the flat model's counterpart of quarter turns).
- :class:`FlatAugment` — photometric + flip, in that order. Geometric albumentations transforms that would
  break the calibration (crops, affine warps, resizes) are deliberately not offered.

Sphere view (samples: ``image`` (C, N), ``label`` (N,), ``valid`` (N,), ``depth`` (N,)):

- :func:`sphere_rotation_index` — rotation about the optical axis (the HEALPix pole) by k x 90°,
  an exact permutation of the pixels of any grid whose base pixels are closed under it
  (0-7 and all 12 are; 0-3 / 4-7 / 8-11 rows each map onto themselves).
- :func:`sphere_flip_index` — the reflection x -> -x (what a horizontal image flip does on the
  sphere), also an exact permutation.
- :class:`SphereRandomRot90`, :class:`SphereRandomFlip` — apply them as gathers.

Conventions: sphere values ``out = values[..., idx]``. For ``sphere_rotation_index(grid, k)``,
``out(v) = values(Rz(-k·90°) v)``: content at longitude phi moves to phi + k·90°. Longitude 0 is
image +u (right) and 90° is image +v (down), so k = 1 is the sphere of the image rotated 90°
*clockwise* on screen (``cv2.ROTATE_90_CLOCKWISE``) when the camera's principal point is at the
image centre; in general it is the sphere a camera rolled by -k·90° about its optical axis would
see. Rotations by other angles are not exact pixel permutations and are not offered.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import healpy as hp
import numpy as np

from heal_swin.geometry.camera import FisheyeCamera, matrix_to_quaternion
from heal_swin.geometry.healpix import HealpixGrid

__all__ = [
    "SPHERE_KEYS",
    "Compose",
    "FlatAugment",
    "HorizontalFlip",
    "Rotate180",
    "SphereRandomFlip",
    "SphereRandomRot90",
    "flip_camera",
    "photometric",
    "rotate180_camera",
    "sphere_flip_index",
    "sphere_rotation_index",
]

Sample = dict[str, Any]
SPHERE_KEYS = ("image", "label", "valid", "depth")


# ------------------------------------------------------------------ flat view
def flip_camera(camera: FisheyeCamera) -> FisheyeCamera:
    """Calibration of the horizontally mirrored image.

    Mirroring maps pixel u to W - 1 - u, i.e. the camera ray (X, Y, Z) to (-X, Y, Z): the same lens
    with ``cx_offset`` negated. The extrinsic is that of the rig mirrored in the vehicle's x-z plane
    (y -> -y), which keeps it a proper rotation: R' = diag(1,-1,1) R diag(-1,1,1), t' = (tx, -ty, tz).
    So a flipped MVL image has a calibration that looks like an MVR one; the name is kept.
    """
    d = camera.to_dict()
    d["intrinsic"]["cx_offset"] = -camera.cx_offset
    r = np.diag([1.0, -1.0, 1.0]) @ camera.rotation @ np.diag([-1.0, 1.0, 1.0])
    d["extrinsic"]["quaternion"] = matrix_to_quaternion(r).tolist()
    tx, ty, tz = camera.translation
    d["extrinsic"]["translation"] = [tx, -ty, tz]
    return FisheyeCamera.from_dict(d, source=f"{camera.source} (flipped)")


def _remapped(sample: Sample, view: tuple[slice, ...], camera: FisheyeCamera) -> Sample:
    """``sample`` with image, label and depth indexed by ``view`` (a pixel permutation) and ``camera``."""
    out = dict(sample)
    for k in ("image", "label", "depth"):
        if out.get(k) is not None:
            out[k] = np.ascontiguousarray(out[k][view])
    out["camera"] = camera
    return out


class HorizontalFlip:
    """Mirror image, label, depth and calibration with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        if random.random() >= self.p:
            return sample
        return _remapped(sample, np.s_[:, ::-1], flip_camera(sample["camera"]))


def rotate180_camera(camera: FisheyeCamera) -> FisheyeCamera:
    """Calibration of the image turned by 180°: pixel (u, v) -> (W - 1 - u, H - 1 - v).

    That is the camera ray (X, Y, Z) -> (-X, -Y, Z), a roll of half a turn about the optical axis: the
    same lens with both offsets negated, the camera-to-vehicle rotation R' = R diag(-1, -1, 1) (still
    proper), the position unchanged. Unlike a mirror, the world stays as it is.
    """
    d = camera.to_dict()
    d["intrinsic"]["cx_offset"] = -camera.cx_offset
    d["intrinsic"]["cy_offset"] = -camera.cy_offset
    d["extrinsic"]["quaternion"] = matrix_to_quaternion(camera.rotation @ np.diag([-1.0, -1.0, 1.0])).tolist()
    return FisheyeCamera.from_dict(d, source=f"{camera.source} (turned 180)")


class Rotate180:
    """Turn image, label, depth and calibration by 180° with probability ``p`` (exact permutation)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        if random.random() >= self.p:
            return sample
        return _remapped(sample, np.s_[::-1, ::-1], rotate180_camera(sample["camera"]))


def photometric(strength: float = 1.0) -> Callable[..., Any]:
    """albumentations pipeline for the image only: brightness/contrast, hue/saturation, gamma,
    Gaussian noise, slight blur. ``strength`` scales the ranges (0 disables)."""
    import albumentations as A

    s = float(strength)
    return A.Compose(
        [
            A.RandomBrightnessContrast(brightness_limit=0.25 * s, contrast_limit=0.25 * s, p=0.8),
            A.HueSaturationValue(
                hue_shift_limit=int(8 * s), sat_shift_limit=int(20 * s), val_shift_limit=0, p=0.5
            ),
            A.RandomGamma(gamma_limit=(100 - int(20 * s), 100 + int(20 * s)), p=0.3),
            A.GaussNoise(std_range=(0.0, 0.03 * s), p=0.3),
            A.GaussianBlur(blur_limit=(3, 3), p=0.1 * s),
        ]
    )


class FlatAugment:
    """Photometric augmentation (albumentations) + calibration-consistent horizontal flip."""

    def __init__(self, strength: float = 1.0, hflip: float = 0.5) -> None:
        self.strength = strength
        self.flip = HorizontalFlip(hflip) if hflip > 0 else None
        self._photo = None  # built lazily in each worker (albumentations import is heavy)

    def __call__(self, sample: Sample) -> Sample:
        if self.strength > 0:
            if self._photo is None:
                self._photo = photometric(self.strength)
            # albumentations keeps its own generator; drawing its seed from NumPy's global RNG makes
            # the augmentation a function of the per-item seed (see heal_swin.train.resumable).
            self._photo.set_random_seed(int(np.random.randint(0, 2**31 - 1)))
            sample = dict(sample)
            sample["image"] = self._photo(image=sample["image"])["image"]
        if self.flip is not None:
            sample = self.flip(sample)
        return sample

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_photo"] = None
        return state


class Compose:
    """Apply sample -> sample callables in order."""

    def __init__(self, *fns: Callable[[Sample], Sample]) -> None:
        self.fns = [f for f in fns if f is not None]

    def __call__(self, sample: Sample) -> Sample:
        for f in self.fns:
            sample = f(sample)
        return sample


# ---------------------------------------------------------------- sphere view
def _permutation(grid: HealpixGrid, transform: np.ndarray, what: str) -> np.ndarray:
    v = grid.vectors() @ transform.T
    glob = hp.vec2pix(grid.nside, v[:, 0], v[:, 1], v[:, 2], nest=True)
    idx = grid.local_index(glob)
    if np.any(idx < 0) or np.unique(idx).size != idx.size:
        raise ValueError(
            f"{what} is not a permutation of the grid {grid.key} (base pixels not closed under it)"
        )
    idx.setflags(write=False)
    return idx


@lru_cache(maxsize=32)
def sphere_rotation_index(grid: HealpixGrid, k: int = 1) -> np.ndarray:
    """(N,) gather index rotating sphere values by k x 90° about the pole: ``out = values[..., idx]``.

    ``out[i] = values[pixel containing Rz(-k·90°) v_i]`` (content moves to longitude + k·90°).
    Exact: HEALPix pixel centres are mapped onto pixel centres (checked: a bijection).
    """
    k = int(k) % 4
    if k == 0:
        return np.arange(grid.npix)
    a = -k * np.pi / 2
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    rz = np.round(rz)  # exact quarter turns
    return _permutation(grid, rz, f"rotation by {k}x90 degrees")


@lru_cache(maxsize=32)
def sphere_flip_index(grid: HealpixGrid) -> np.ndarray:
    """(N,) gather index of the reflection x -> -x (the sphere of the horizontally flipped image)."""
    return _permutation(grid, np.diag([-1.0, 1.0, 1.0]), "reflection x -> -x")


def _gather(sample: Sample, idx: np.ndarray) -> Sample:
    out = dict(sample)
    for k in SPHERE_KEYS:
        if k in out and out[k] is not None:
            out[k] = np.take(np.asarray(out[k]), idx, axis=-1)
    return out


class SphereRandomRot90:
    """Rotate sphere samples by a random multiple of 90° about the optical axis (exact permutation)."""

    def __init__(self, grid: HealpixGrid, p: float = 1.0) -> None:
        self.grid, self.p = grid, p

    def __call__(self, sample: Sample) -> Sample:
        if random.random() >= self.p:
            return sample
        k = random.randint(1, 3)
        return _gather(sample, sphere_rotation_index(self.grid, k))


class SphereRandomFlip:
    """Reflect sphere samples x -> -x with probability ``p`` (exact permutation)."""

    def __init__(self, grid: HealpixGrid, p: float = 0.5) -> None:
        self.grid, self.p = grid, p

    def __call__(self, sample: Sample) -> Sample:
        if random.random() >= self.p:
            return sample
        return _gather(sample, sphere_flip_index(self.grid))
