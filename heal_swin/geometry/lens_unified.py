"""Unified lens models (Usenko et al. 2018, "The Double Sphere Camera Model"): UCM, EUCM, double sphere, Mei."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from heal_swin.geometry import calibration as _lim
from heal_swin.geometry.calibration import CalibrationError, first_positive_root, in_range
from heal_swin.geometry.lens_base import LensModel, _coeffs, _f, solve_monotonic

__all__ = ["DoubleSphere", "ExtendedUnifiedCamera", "Mei", "UnifiedCamera"]

_NO_ROOT = 1e8  # a plane radius no lens reaches (an angle of 90 deg - 1e-8 rad on the pinhole)


def _ucm_w(alpha: float) -> float:
    # Usenko et al. 2018, the UCM / EUCM / DS projection domains.
    return alpha / (1 - alpha) if alpha <= 0.5 else (1 - alpha) / alpha


@dataclass(frozen=True)
class _Unified(LensModel):
    """Shared range logic: Usenko et al.'s projection domain, cut where the closed-form unprojection
    ends (radius f / sqrt((2 alpha - 1) beta) for alpha > 1/2), whichever comes first."""

    def _theta_domain(self) -> float:
        raise NotImplementedError

    def _r_limit(self) -> float:
        raise NotImplementedError

    def _closed_inverse(self, r: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _range(self) -> tuple[float, float]:
        f = self.values[0]
        theta_dom, r_lim = self._theta_domain(), self._r_limit()
        theta_lim = float(self._closed_inverse(np.float64(r_lim))) if math.isfinite(r_lim) else math.inf
        if theta_lim <= theta_dom:
            return theta_lim, f * r_lim
        with np.errstate(all="ignore"):
            rho = float(self.rho(np.float64(theta_dom)))
        # The denominator vanishes at the domain's edge for some parameters: rho -> inf there.
        return theta_dom, rho if math.isfinite(rho) and 0 < rho < 1e12 * f else math.inf

    @property
    def theta_max(self) -> float:
        return self._range()[0]

    @property
    def rho_max(self) -> float:
        return self._range()[1]

    @property
    def limited_by_fov(self) -> bool:
        return True

    def theta_of_rho(self, rho):
        rho = np.asarray(rho, dtype=np.float64)
        theta = self._closed_inverse(rho / self.values[0])
        return np.where(rho <= self.rho_max, theta, np.nan)


@dataclass(frozen=True)
class UnifiedCamera(_Unified):
    """UCM (Usenko et al.'s alpha form; Mei's xi = alpha / (1 - alpha), f_mei = f / (1 - alpha)).

    alpha = 0 is the pinhole camera (rho = f tan t).
    """

    NAME: ClassVar[str] = "ucm"
    PARAMS: ClassVar[tuple[str, ...]] = ("f", "alpha")
    RANGE_FIELD: ClassVar[str] = "intrinsic.alpha"

    @classmethod
    def validate(cls, values, source: str) -> tuple[float, ...]:
        vs = _coeffs(values, 2, cls.PARAMS, source)
        return _f(vs[0], source), in_range(vs[1], source, "intrinsic.alpha", 0.0, 1.0)

    def rho(self, theta):
        f, a = self.values
        return f * np.sin(theta) / (a + (1 - a) * np.cos(theta))

    def drho(self, theta):
        f, a = self.values
        den = a + (1 - a) * np.cos(theta)
        return f * (a * np.cos(theta) + 1 - a) / (den * den)

    def _theta_domain(self) -> float:
        return math.acos(-_ucm_w(self.values[1]))

    def _r_limit(self) -> float:
        a = self.values[1]
        return math.inf if a <= 0.5 else 1 / math.sqrt(2 * a - 1)

    def _closed_inverse(self, r):
        a = self.values[1]
        with np.errstate(invalid="ignore"):
            mz = (1 - a * a * r * r) / (a * np.sqrt(np.maximum(1 - (2 * a - 1) * r * r, 0.0)) + 1 - a)
            return np.arctan2(r, mz)


@dataclass(frozen=True)
class ExtendedUnifiedCamera(_Unified):
    """EUCM (Khomutenko et al. 2016, in Usenko et al.'s notation); beta = 1 is the UCM."""

    NAME: ClassVar[str] = "eucm"
    PARAMS: ClassVar[tuple[str, ...]] = ("f", "alpha", "beta")
    RANGE_FIELD: ClassVar[str] = "intrinsic.alpha,beta"

    @classmethod
    def validate(cls, values, source: str) -> tuple[float, ...]:
        vs = _coeffs(values, 3, cls.PARAMS, source)
        beta = in_range(vs[2], source, "intrinsic.beta", 0.0, _lim.EUCM_BETA_MAX, "a positive number")
        if beta <= 0:
            raise CalibrationError(source, "intrinsic.beta", "a positive number", vs[2])
        return _f(vs[0], source), in_range(vs[1], source, "intrinsic.alpha", 0.0, 1.0), beta

    def rho(self, theta):
        f, a, b = self.values
        s, c = np.sin(theta), np.cos(theta)
        return f * s / (a * np.sqrt(b * s * s + c * c) + (1 - a) * c)

    def drho(self, theta):
        f, a, b = self.values
        s, c = np.sin(theta), np.cos(theta)
        d = np.sqrt(b * s * s + c * c)
        den = a * d + (1 - a) * c
        dden = a * (b - 1) * s * c / d - (1 - a) * s
        return f * (c * den - s * dden) / (den * den)

    def _theta_domain(self) -> float:
        _, a, b = self.values
        w = _ucm_w(a)
        # The domain z > -w sqrt(beta (x^2 + y^2) + z^2) on the unit sphere.
        return math.acos(-w * math.sqrt(b / (1 - w * w + w * w * b)))

    def _r_limit(self) -> float:
        _, a, b = self.values
        return math.inf if a <= 0.5 else 1 / math.sqrt(b * (2 * a - 1))

    def _closed_inverse(self, r):
        _, a, b = self.values
        with np.errstate(invalid="ignore"):
            mz = (1 - b * a * a * r * r) / (a * np.sqrt(np.maximum(1 - (2 * a - 1) * b * r * r, 0.0)) + 1 - a)
            return np.arctan2(r, mz)


@dataclass(frozen=True)
class DoubleSphere(_Unified):
    """Double sphere (Usenko et al. 2018): xi in [-1, 1], alpha in [0, 1]."""

    NAME: ClassVar[str] = "double_sphere"
    PARAMS: ClassVar[tuple[str, ...]] = ("f", "xi", "alpha")
    RANGE_FIELD: ClassVar[str] = "intrinsic.xi,alpha"

    @classmethod
    def validate(cls, values, source: str) -> tuple[float, ...]:
        vs = _coeffs(values, 3, cls.PARAMS, source)
        xi = in_range(vs[1], source, "intrinsic.xi", -1.0, 1.0)
        return _f(vs[0], source), xi, in_range(vs[2], source, "intrinsic.alpha", 0.0, 1.0)

    def rho(self, theta):
        f, xi, a = self.values
        s, c = np.sin(theta), np.cos(theta)
        d2 = np.sqrt(1 + 2 * xi * c + xi * xi)
        return f * s / (a * d2 + (1 - a) * (xi + c))

    def drho(self, theta):
        f, xi, a = self.values
        s, c = np.sin(theta), np.cos(theta)
        d2 = np.sqrt(1 + 2 * xi * c + xi * xi)
        den = a * d2 + (1 - a) * (xi + c)
        dden = -a * xi * s / d2 - (1 - a) * s
        return f * (c * den - s * dden) / (den * den)

    def _theta_domain(self) -> float:
        _, xi, a = self.values
        w1 = _ucm_w(a)
        w2 = (w1 + xi) / math.sqrt(2 * w1 * xi + xi * xi + 1)
        return math.acos(min(1.0, max(-1.0, -w2)))

    def _r_limit(self) -> float:
        a = self.values[2]
        return math.inf if a <= 0.5 else 1 / math.sqrt(2 * a - 1)

    def _closed_inverse(self, r):
        _, xi, a = self.values
        r2 = r * r
        with np.errstate(invalid="ignore", divide="ignore"):
            mz = (1 - a * a * r2) / (a * np.sqrt(np.maximum(1 - (2 * a - 1) * r2, 0.0)) + 1 - a)
            k = (mz * xi + np.sqrt(mz * mz + (1 - xi * xi) * r2)) / (mz * mz + r2)
            return np.where(r2 > 0, np.arctan2(k * r, k * mz - xi), 0.0)


@dataclass(frozen=True)
class Mei(LensModel):
    """Mei's unified model with radial distortion (Kalibr ``omni`` + the radial part of ``radtan``).

    The point is projected on the plane as s = sin t / (cos t + xi), then distorted radially,
    s_d = s (1 + k1 s^2 + k2 s^4), and rho = f s_d (f = Kalibr's fu).
    """

    NAME: ClassVar[str] = "mei"
    PARAMS: ClassVar[tuple[str, ...]] = ("f", "xi", "k1", "k2")
    RANGE_FIELD: ClassVar[str] = "intrinsic.xi,k1,k2"

    @classmethod
    def validate(cls, values, source: str) -> tuple[float, ...]:
        vs = _coeffs(values, 4, cls.PARAMS, source)
        lim = _lim.DISTORTION_MAX
        return (
            _f(vs[0], source),
            in_range(vs[1], source, "intrinsic.xi", 0.0, _lim.MEI_XI_MAX),
            in_range(vs[2], source, "intrinsic.k1", -lim, lim),
            in_range(vs[3], source, "intrinsic.k2", -lim, lim),
        )

    def _s(self, theta):
        xi = self.values[1]
        return np.sin(theta) / (np.cos(theta) + xi)

    def rho(self, theta):
        f, _, k1, k2 = self.values
        s = self._s(theta)
        s2 = s * s
        return f * s * (1 + s2 * (k1 + s2 * k2))

    def drho(self, theta):
        f, xi, k1, k2 = self.values
        s = self._s(theta)
        s2 = s * s
        c = np.cos(theta)
        ds = (1 + xi * c) / ((c + xi) ** 2)
        return f * (1 + s2 * (3 * k1 + s2 * 5 * k2)) * ds

    def _theta_s_max(self) -> tuple[float, float]:
        # The plane projection s(theta): increasing up to cos t = -1/xi (xi > 1, s finite there)
        # or to cos t = -xi (xi <= 1, s -> inf).
        xi = self.values[1]
        if xi > 1:
            return math.acos(-1 / xi), 1 / math.sqrt(xi * xi - 1)
        return math.acos(-xi), math.inf

    def _theta_of_s(self, s):
        # Mei's lift of the plane point at radius s back to the unit sphere (closed form).
        xi = self.values[1]
        with np.errstate(invalid="ignore"):
            k = (xi + np.sqrt(np.maximum(1 + (1 - xi * xi) * s * s, 0.0))) / (1 + s * s)
            return np.arctan2(k * s, k - xi)

    def theta_of_rho(self, rho):
        """Newton on the radial polynomial s (1 + k1 s^2 + k2 s^4) = rho / f, then the closed-form lift."""
        _, _, k1, k2 = self.values
        t = np.asarray(rho, dtype=np.float64) / self.values[0]

        def g(s):
            s2 = s * s
            return s * (1 + s2 * (k1 + s2 * k2))

        def dg(s):
            s2 = s * s
            return 1 + s2 * (3 * k1 + s2 * 5 * k2)

        s_hi = min(self._s_turn(), self._theta_s_max()[1])
        if math.isinf(s_hi):  # g increases without bound: bracket the largest radius asked for
            top = float(np.nanmax(t, initial=0.0)) if np.isfinite(t).any() else 0.0
            s_hi = 1.0
            while g(s_hi) < top and s_hi < 1e150:
                s_hi *= 2
        s = solve_monotonic(g, dg, s_hi / (1 - 1e-12), t)
        return np.where(t <= self.rho_max / self.values[0], self._theta_of_s(s), np.nan)

    def _s_turn(self) -> float:
        _, _, k1, k2 = self.values
        # First positive root of d s_d / d s = 1 + 3 k1 s^2 + 5 k2 s^4 (inf when there is none).
        root = first_positive_root((1.0, 0.0, 3 * k1, 0.0, 5 * k2), _NO_ROOT)
        return math.inf if root >= _NO_ROOT else root

    @property
    def theta_max(self) -> float:
        theta_s, s_max = self._theta_s_max()
        s_turn = self._s_turn()
        return float(self._theta_of_s(s_turn)) if s_turn < s_max else theta_s

    @property
    def rho_max(self) -> float:
        s_max = self._theta_s_max()[1]
        s = min(self._s_turn(), s_max)
        if math.isinf(s):
            return math.inf
        f, _, k1, k2 = self.values
        return f * s * (1 + s * s * (k1 + s * s * k2))

    @property
    def limited_by_fov(self) -> bool:
        return self._s_turn() >= self._theta_s_max()[1]
