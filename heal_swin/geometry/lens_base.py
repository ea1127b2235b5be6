"""The lens-model interface (a radial profile rho(theta) in pixels) and the monotonic solver.

The models and their table are in ``heal_swin.geometry.lens_models``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from heal_swin.geometry import calibration as _lim
from heal_swin.geometry.calibration import CalibrationError, in_range

__all__ = ["LensModel", "solve_monotonic"]


def solve_monotonic(rho_fn, drho_fn, theta_hi: float, rho: np.ndarray) -> np.ndarray:
    """Solve ``rho_fn(theta) = rho`` on ``[0, theta_hi]`` for a strictly increasing ``rho_fn``.

    Vectorised Newton started from a coarse sampling of the function so that two or three steps
    reach machine precision; elements left unconverged are finished by bracketed Newton/bisection.
    Radii beyond ``rho_fn(theta_hi)`` give NaN.
    """
    rho = np.asarray(rho, dtype=np.float64)
    # Stay a hair inside theta_hi: some models are infinite exactly there.
    top = theta_hi * (1 - 1e-12)
    samples = np.linspace(0.0, top, 257)
    with np.errstate(all="ignore"):
        theta = np.interp(rho, rho_fn(samples), samples)
        for _ in range(8):
            step = (rho_fn(theta) - rho) / drho_fn(theta)
            theta = np.clip(theta - step, 0.0, top)
            if not np.max(np.abs(step), initial=0.0) > 1e-12:  # also stops on NaN input
                break
        residual = np.abs(rho_fn(theta) - rho)
    slow = ~(residual <= 1e-9 * np.maximum(1.0, rho)) & np.isfinite(rho)
    if np.any(slow):
        theta[slow] = _bracketed(rho_fn, drho_fn, rho[slow], top)
    with np.errstate(invalid="ignore"):
        beyond = rho > rho_fn(np.float64(top)) * (1 + 1e-12)
    return np.where(beyond | ~np.isfinite(rho), np.nan, theta)


def _bracketed(rho_fn, drho_fn, rho: np.ndarray, hi_theta: float) -> np.ndarray:
    lo = np.zeros_like(rho)
    hi = np.full_like(rho, hi_theta)
    theta = 0.5 * hi
    with np.errstate(all="ignore"):
        for _ in range(200):
            f = rho_fn(theta) - rho
            lo = np.where(f <= 0, theta, lo)
            hi = np.where(f >= 0, theta, hi)
            d = drho_fn(theta)
            new = theta - f / np.where(d > 0, d, np.inf)
            new = np.where((new >= lo) & (new <= hi), new, 0.5 * (lo + hi))
            done = np.all(np.abs(new - theta) <= 1e-15 * np.maximum(1.0, theta)) or np.all(hi - lo <= 1e-15)
            theta = new
            if done:
                break
    return theta


@dataclass(frozen=True)
class LensModel:
    """A radial profile ``rho(theta)`` (pixels) with its valid range and exact inverse."""

    NAME: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[str, ...]] = ()
    # How many leading parameters are in pixels (they scale with the image width).
    PIXEL_PARAMS: ClassVar[int] = 1
    # The JSON field(s) named when the model does not cover the image.
    RANGE_FIELD: ClassVar[str] = ""

    values: tuple[float, ...]

    @classmethod
    def validate(cls, values, source: str) -> tuple[float, ...]:
        """Check the parameter ranges (``CalibrationError`` naming ``intrinsic.<param>``)."""
        raise NotImplementedError

    def rho(self, theta: np.ndarray | float) -> np.ndarray:
        raise NotImplementedError

    def drho(self, theta: np.ndarray | float) -> np.ndarray:
        raise NotImplementedError

    @property
    def theta_max(self) -> float:
        """Largest incidence angle (radians, <= pi) up to which rho is strictly increasing and defined."""
        raise NotImplementedError

    @property
    def rho_max(self) -> float:
        """``rho(theta_max)`` in pixels (``inf`` for a model that reaches infinity there)."""
        return float(self.rho(np.float64(self.theta_max)))

    @property
    def limited_by_fov(self) -> bool:
        """True when ``theta_max`` is the model's field of view rather than a turning point of rho."""
        return False

    def theta_of_rho(self, rho: np.ndarray) -> np.ndarray:
        """Exact inverse of ``rho`` on ``[0, theta_max]``; NaN beyond."""
        return solve_monotonic(self.rho, self.drho, self.theta_max, rho)

    def scaled(self, sx: float) -> tuple[float, ...]:
        """Parameters for an image scaled horizontally by ``sx``."""
        n = self.PIXEL_PARAMS
        return tuple(v * sx for v in self.values[:n]) + tuple(self.values[n:])

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.PARAMS, self.values))


def _f(val, source: str) -> float:
    return in_range(val, source, "intrinsic.f", _lim.F_MIN, _lim.F_MAX, "a focal length (pixels)")


def _coeffs(values, n: int, names: tuple[str, ...], source: str) -> list:
    vs = list(values) if isinstance(values, np.ndarray) and values.ndim == 1 else values
    if not isinstance(vs, (list, tuple)) or len(vs) != n:
        raise CalibrationError(source, f"intrinsic.{','.join(names)}", f"{n} parameters", values)
    return list(vs)
