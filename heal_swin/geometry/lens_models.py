"""Radially symmetric lens models: the radius on the image as a function of the incidence angle.

Every model of :class:`~heal_swin.geometry.camera.FisheyeCamera` is a function ``rho(theta)``:
the distance in (horizontal) pixels from the principal point of the image of a ray at angle
``theta`` (radians) from the optical axis. The camera adds the principal point and the aspect
ratio (``fy / fx``), so a model here only knows its radial profile:

================  =========================  ==============================================================
model             parameters (JSON fields)   rho(theta), ``f`` in pixels (fx)
================  =========================  ==============================================================
radial_poly       k1 k2 k3 k4                k1 t + k2 t^2 + k3 t^3 + k4 t^4 (WoodScape; k in px / rad^i)
kannala_brandt    f k1 k2 k3 k4              f t (1 + k1 t^2 + k2 t^4 + k3 t^6 + k4 t^8) (OpenCV fisheye,
                                             Kalibr pinhole + equidistant, basalt kb4)
ucm               f alpha                    f sin t / (alpha + (1 - alpha) cos t)   (Usenko et al. 2018)
eucm              f alpha beta               f sin t / (alpha sqrt(beta sin^2 t + cos^2 t) + (1 - alpha) cos t)
double_sphere     f xi alpha                 f sin t / (alpha d + (1 - alpha)(xi + cos t)),
                                             d = sqrt(1 + 2 xi cos t + xi^2)
mei               f xi k1 k2                 f s (1 + k1 s^2 + k2 s^4), s = sin t / (cos t + xi)
                                             (Kalibr omni + radtan without its tangential part)
================  =========================  ==============================================================

Each model also gives ``theta_max``, the largest angle up to which ``rho`` is strictly increasing
and defined (the field of view it can represent), ``rho_max = rho(theta_max)`` (may be ``inf``) and
an exact inverse ``theta(rho)``: closed form for UCM / EUCM / DS (Usenko et al.'s unprojection),
vectorised Newton to machine precision for the polynomial models (Mei: on its plane radius, then
the closed-form lift).
"""

from __future__ import annotations

from heal_swin.geometry.calibration import CalibrationError
from heal_swin.geometry.lens_base import LensModel, solve_monotonic
from heal_swin.geometry.lens_poly import KannalaBrandt, RadialPoly
from heal_swin.geometry.lens_unified import DoubleSphere, ExtendedUnifiedCamera, Mei, UnifiedCamera

__all__ = [
    "LENS_MODELS",
    "DoubleSphere",
    "ExtendedUnifiedCamera",
    "KannalaBrandt",
    "LensModel",
    "Mei",
    "RadialPoly",
    "UnifiedCamera",
    "make_lens",
    "solve_monotonic",
]

LENS_MODELS: dict[str, type[LensModel]] = {
    m.NAME: m for m in (RadialPoly, KannalaBrandt, UnifiedCamera, ExtendedUnifiedCamera, DoubleSphere, Mei)
}


def make_lens(model: str, values, source: str) -> LensModel:
    """Validated lens model ``model`` with parameters ``values`` (in ``PARAMS`` order)."""
    cls = LENS_MODELS.get(model) if isinstance(model, str) else None
    if cls is None:
        raise CalibrationError(
            source, "intrinsic.model", f"one of {', '.join(map(repr, LENS_MODELS))}", model
        )
    return cls(cls.validate(values, source))
