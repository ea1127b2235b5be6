"""Polynomial lens models: WoodScape's radial_poly and Kannala-Brandt (OpenCV fisheye, Kalibr equidistant)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from heal_swin.geometry import calibration as _lim
from heal_swin.geometry.calibration import CalibrationError, first_positive_root, in_range
from heal_swin.geometry.lens_base import LensModel, _coeffs, _f

__all__ = ["KannalaBrandt", "RadialPoly"]


@dataclass(frozen=True)
class RadialPoly(LensModel):
    """WoodScape: rho = k1 t + k2 t^2 + k3 t^3 + k4 t^4, k_i in pixels per radian^i."""

    NAME: ClassVar[str] = "radial_poly"
    PARAMS: ClassVar[tuple[str, ...]] = ("k1", "k2", "k3", "k4")
    PIXEL_PARAMS: ClassVar[int] = 4
    RANGE_FIELD: ClassVar[str] = "intrinsic.k1..k4"

    @classmethod
    def validate(cls, values, source: str) -> tuple[float, ...]:
        vs = list(values) if isinstance(values, np.ndarray) and values.ndim == 1 else values
        if not isinstance(vs, (list, tuple)) or len(vs) != 4:
            raise CalibrationError(source, "intrinsic.k1..k4", "4 coefficients", values)
        k1 = in_range(
            vs[0], source, "intrinsic.k1", 0.0, _lim.K1_MAX, "a positive number (pixels per radian)"
        )
        if k1 <= 0:
            raise CalibrationError(source, "intrinsic.k1", "a positive number (pixels per radian)", k1)
        rest = (
            in_range(c, source, f"intrinsic.k{i + 2}", -_lim.K_MAX, _lim.K_MAX) for i, c in enumerate(vs[1:])
        )
        return (k1, *rest)

    def rho(self, theta):
        k1, k2, k3, k4 = self.values
        return theta * (k1 + theta * (k2 + theta * (k3 + theta * k4)))

    def drho(self, theta):
        k1, k2, k3, k4 = self.values
        return k1 + theta * (2 * k2 + theta * (3 * k3 + theta * 4 * k4))

    @property
    def theta_max(self) -> float:
        k1, k2, k3, k4 = self.values
        # First positive root of rho'(theta); computed once per camera, not per pixel.
        return first_positive_root((k1, 2 * k2, 3 * k3, 4 * k4), math.pi)


@dataclass(frozen=True)
class KannalaBrandt(LensModel):
    """OpenCV fisheye / Kalibr equidistant: rho = f t (1 + k1 t^2 + k2 t^4 + k3 t^6 + k4 t^8).

    ``t`` is the angle from the optical axis (``atan2``), so the model extends past 90 deg the way
    basalt's kb4 does; OpenCV and Kalibr compute the same function for rays in front of the camera.
    """

    NAME: ClassVar[str] = "kannala_brandt"
    PARAMS: ClassVar[tuple[str, ...]] = ("f", "k1", "k2", "k3", "k4")
    RANGE_FIELD: ClassVar[str] = "intrinsic.k1..k4"

    @classmethod
    def validate(cls, values, source: str) -> tuple[float, ...]:
        vs = _coeffs(values, 5, cls.PARAMS, source)
        lim = _lim.DISTORTION_MAX
        return (
            _f(vs[0], source),
            *(in_range(c, source, f"intrinsic.k{i + 1}", -lim, lim) for i, c in enumerate(vs[1:])),
        )

    def rho(self, theta):
        f, k1, k2, k3, k4 = self.values
        t2 = theta * theta
        return f * theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))

    def drho(self, theta):
        f, k1, k2, k3, k4 = self.values
        t2 = theta * theta
        return f * (1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4))))

    @property
    def theta_max(self) -> float:
        _, k1, k2, k3, k4 = self.values
        return first_positive_root((1.0, 0.0, 3 * k1, 0.0, 5 * k2, 0.0, 7 * k3, 0.0, 9 * k4), math.pi)
