"""The HEALPix grid of one camera (or the full sphere), always in NESTED order.

A grid is ``(nside, base_pixels)``. Pixel ``i`` of the grid is the global nested pixel
``base_pixels[i // nside**2] * nside**2 + i % nside**2``, so a grid is a concatenation of whole
base faces and every nested quad-tree relation (``index // 4`` is the parent) holds inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import healpy as hp
import numpy as np

from heal_swin.errors import InputError

__all__ = ["DEFAULT_BASE_PIXELS", "GridError", "HealpixGrid", "face_coordinates"]

DEFAULT_BASE_PIXELS: tuple[int, ...] = tuple(range(8))
_MAX_NSIDE = 1 << 13


class GridError(InputError):
    """An invalid HEALPix grid specification."""


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class HealpixGrid:
    """A set of whole HEALPix base faces at one ``nside``, NESTED ordering.

    Args:
        nside: a power of two, 1 <= nside <= 8192.
        base_pixels: unique base faces in 0..11, in the order they are laid out (default 0-7,
            the northern cap and equator: one fisheye camera with its optical axis at the pole).
    """

    nside: int
    base_pixels: tuple[int, ...] = field(default=DEFAULT_BASE_PIXELS)

    def __post_init__(self) -> None:
        nside = self.nside
        if isinstance(nside, bool) or not isinstance(nside, (int, np.integer)):
            raise GridError(f"nside: expected a power of two integer, got {nside!r}")
        if nside < 1 or nside > _MAX_NSIDE or (nside & (nside - 1)) != 0:
            raise GridError(f"nside: expected a power of two in 1..{_MAX_NSIDE}, got {nside}")
        try:
            base = tuple(int(b) for b in self.base_pixels)
        except (TypeError, ValueError):
            raise GridError(f"base_pixels: expected integers in 0..11, got {self.base_pixels!r}") from None
        if not base:
            raise GridError("base_pixels: expected at least one base pixel, got none")
        bad = [b for b in base if not 0 <= b <= 11]
        if bad:
            raise GridError(f"base_pixels: expected values in 0..11, got {bad}")
        if len(set(base)) != len(base):
            raise GridError(f"base_pixels: expected unique values, got {list(base)}")
        object.__setattr__(self, "nside", int(nside))
        object.__setattr__(self, "base_pixels", base)

    # ----------------------------------------------------------------- sizes
    @property
    def pixels_per_face(self) -> int:
        return self.nside * self.nside

    @property
    def npix(self) -> int:
        """Number of pixels N of the grid."""
        return len(self.base_pixels) * self.pixels_per_face

    @property
    def order(self) -> int:
        """log2(nside)."""
        return self.nside.bit_length() - 1

    @property
    def key(self) -> str:
        """Short stable string identifying the grid (for cache keys and file names)."""
        return f"nside{self.nside}_base{'-'.join(map(str, self.base_pixels))}"

    def __len__(self) -> int:
        return self.npix

    # ----------------------------------------------------------- index maps
    @property
    def global_index(self) -> np.ndarray:
        """(N,) int64 global NESTED healpy index of each grid pixel."""
        return _global_index(self.nside, self.base_pixels)

    def local_index(self, global_nested: np.ndarray) -> np.ndarray:
        """Grid position of global NESTED indices; -1 where the pixel is not in the grid. Same shape."""
        g = np.asarray(global_nested, dtype=np.int64)
        face_slot = _face_slots(self.base_pixels)
        face = g // self.pixels_per_face
        inside = (g >= 0) & (face < 12)
        slot = np.where(inside, face_slot[np.clip(face, 0, 11)], -1)
        return np.where(slot >= 0, slot * self.pixels_per_face + g % self.pixels_per_face, -1)

    def ring_index(self) -> np.ndarray:
        """(N,) int64 global RING healpy index of each grid pixel."""
        return _ring_index(self.nside, self.base_pixels)

    def vectors(self) -> np.ndarray:
        """(N, 3) float64 unit vectors of the pixel centres (read-only, cached)."""
        return _vectors(self.nside, self.base_pixels)

    def angles(self) -> tuple[np.ndarray, np.ndarray]:
        """Colatitude theta and longitude phi of the pixel centres, (N,) each, radians."""
        theta, phi = hp.vec2ang(self.vectors())
        return theta, phi

    def face_xy(self) -> np.ndarray:
        """(N, 2) int64 ``(x, y)`` coordinates of each pixel inside its base face, in 0..nside-1."""
        return _face_xy(self.nside, self.base_pixels)

    # ---------------------------------------------------- quad-tree levels
    def coarser(self, levels: int = 1) -> HealpixGrid:
        """The grid ``levels`` steps up the quad-tree (nside / 2**levels), same base pixels."""
        if levels < 0 or (self.nside >> levels) < 1:
            raise GridError(f"levels: expected 0..{self.order} for nside {self.nside}, got {levels}")
        return HealpixGrid(self.nside >> levels, self.base_pixels)

    def finer(self, levels: int = 1) -> HealpixGrid:
        """The grid ``levels`` steps down the quad-tree (nside * 2**levels)."""
        return HealpixGrid(self.nside << levels, self.base_pixels)

    def parent_index(self, levels: int = 1) -> np.ndarray:
        """(N,) index of each pixel's ancestor in ``coarser(levels)``: ``i // 4**levels``."""
        self.coarser(levels)  # validates
        return np.arange(self.npix, dtype=np.int64) >> (2 * levels)

    def children_index(self, levels: int = 1) -> np.ndarray:
        """(N, 4**levels) indices of each pixel's descendants in ``finer(levels)``."""
        k = 4**levels
        return np.arange(self.npix, dtype=np.int64)[:, None] * k + np.arange(k, dtype=np.int64)

    def face_slot(self, face: np.ndarray) -> np.ndarray:
        """Position of base faces (0..11) in ``base_pixels``; -1 if not in the grid."""
        return _face_slots(self.base_pixels)[np.asarray(face)]


# ------------------------------------------------------------------ caches
@lru_cache(maxsize=64)
def _face_slots(base: tuple[int, ...]) -> np.ndarray:
    slots = np.full(12, -1, dtype=np.int64)
    slots[list(base)] = np.arange(len(base))
    return _readonly(slots)


@lru_cache(maxsize=16)
def _global_index(nside: int, base: tuple[int, ...]) -> np.ndarray:
    per_face = np.arange(nside * nside, dtype=np.int64)
    g = (np.asarray(base, dtype=np.int64)[:, None] * nside * nside + per_face).reshape(-1)
    return _readonly(g)


@lru_cache(maxsize=16)
def _ring_index(nside: int, base: tuple[int, ...]) -> np.ndarray:
    return _readonly(np.asarray(hp.nest2ring(nside, _global_index(nside, base)), dtype=np.int64))


@lru_cache(maxsize=16)
def _vectors(nside: int, base: tuple[int, ...]) -> np.ndarray:
    x, y, z = hp.pix2vec(nside, _global_index(nside, base), nest=True)
    return _readonly(np.stack([x, y, z], axis=-1))


@lru_cache(maxsize=16)
def _face_xy(nside: int, base: tuple[int, ...]) -> np.ndarray:
    x, y, _ = hp.pix2xyf(nside, _global_index(nside, base), nest=True)
    return _readonly(np.stack([x, y], axis=-1).astype(np.int64))


# ------------------------------------------------- continuous face coordinates
def face_coordinates(nside: int, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Base face and continuous in-face coordinates of directions.

    The HEALPix projection maps each base face to the square ``[0, nside]^2``; pixel ``(ix, iy)``
    covers ``[ix, ix+1) x [iy, iy+1)`` and its centre is ``(ix + 0.5, iy + 0.5)``. So
    ``floor(x), floor(y), face`` is exactly the pixel healpy's ``vec2pix(nest=True)`` returns, and
    the fractional part is what bilinear interpolation on a face needs.

    Args:
        nside: grid resolution.
        vectors: (..., 3) directions (need not be unit length, must be non-zero).

    Returns:
        face (...) int64 in 0..11, x (...) float64, y (...) float64 in [0, nside).
    """
    v = np.asarray(vectors, dtype=np.float64)
    shape = v.shape[:-1]
    v = v.reshape(-1, 3)
    vx, vy, vz = v[:, 0], v[:, 1], v[:, 2]
    chi = np.hypot(vx, vy)
    norm = np.hypot(chi, vz)
    z = vz / norm
    tt = np.arctan2(vy, vx) * (2.0 / np.pi)  # longitude in units of 90 degrees, in [-2, 2]
    tt[tt < 0] += 4.0
    tt[tt >= 4.0] = 0.0  # -0.0 + 4 rounds to 4
    ns = float(nside)
    face = np.empty(z.shape, dtype=np.int64)
    x = np.empty(z.shape)
    y = np.empty(z.shape)

    # Equatorial belt, |z| <= 2/3: faces 4..7 plus the equatorial halves of the polar faces.
    eq = np.abs(z) <= 2.0 / 3.0
    t1 = ns * (0.5 + tt[eq])
    t2 = ns * 0.75 * z[eq]
    jp = t1 - t2  # ascending edge line index
    jm = t1 + t2  # descending edge line index
    ifp = np.floor(jp / ns)
    ifm = np.floor(jm / ns)
    face[eq] = np.where(ifp == ifm, np.mod(ifp, 4) + 4, np.where(ifp < ifm, ifp, ifm + 8))
    x[eq] = jm - ns * ifm
    y[eq] = ns - (jp - ns * ifp)

    # Polar caps, |z| > 2/3; sin(theta) from chi keeps precision near the poles.
    pol = ~eq
    tp_all = tt[pol]
    ntt = np.minimum(np.floor(tp_all), 3.0)
    tp = tp_all - ntt
    zp = z[pol]
    tmp = ns * (chi[pol] / norm[pol]) * np.sqrt(3.0 / (1.0 + np.abs(zp)))
    pjp = tp * tmp
    pjm = (1.0 - tp) * tmp
    north = zp > 0
    face[pol] = np.where(north, ntt, ntt + 8)
    x[pol] = np.where(north, ns - pjm, pjp)
    y[pol] = np.where(north, ns - pjp, pjm)

    # Clamp into the half-open square so that floor() always names a pixel of this face.
    hi = np.nextafter(ns, 0.0)
    np.clip(x, 0.0, hi, out=x)
    np.clip(y, 0.0, hi, out=y)
    return face.reshape(shape), x.reshape(shape), y.reshape(shape)
