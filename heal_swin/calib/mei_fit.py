"""Kalibr ``omni`` + ``radtan`` with tangential terms: a radially symmetric Mei model fitted to it.

FisheyeCamera's lenses are radially symmetric (so that image flips, crops and resizes stay exact
calibrations), and radtan's tangential terms r1, r2 are not. When they are non-zero, the exact
Kalibr model is sampled over the whole image (every pixel of a grid, step ``max(W, H) / 64`` for the
fit and ``max(W, H) / 256`` for the report), each pixel is unprojected exactly (Newton on the
distortion, then Mei's closed-form lift), and (fu, fv, pu, pv, xi, k1, k2) of the radial model are
fitted by Levenberg-Marquardt (``scipy.optimize.least_squares``; the ``calib`` extra) to reproject those rays onto their pixels. The reprojection error over
the report grid (max and mean, pixels) is returned; a fit worse than ``max_error`` is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heal_swin.geometry.calibration import CalibrationError
from heal_swin.geometry.camera import FisheyeCamera

__all__ = ["fit_mei_radtan", "kalibr_omni_radtan_unproject"]


def _distort(m: np.ndarray, dist: tuple[float, ...]) -> np.ndarray:
    k1, k2, p1, p2 = dist
    x, y = m[..., 0], m[..., 1]
    r2 = x * x + y * y
    g = 1 + r2 * (k1 + r2 * k2)
    return np.stack(
        [x * g + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * g + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y], -1
    )


def _distort_jacobian(m: np.ndarray, dist: tuple[float, ...]) -> np.ndarray:
    k1, k2, p1, p2 = dist
    x, y = m[..., 0], m[..., 1]
    r2 = x * x + y * y
    g = 1 + r2 * (k1 + r2 * k2)
    dg = 2 * (k1 + 2 * k2 * r2)  # d g / d (r^2) times 2
    j = np.empty(m.shape[:-1] + (2, 2))
    j[..., 0, 0] = g + x * dg * x + 2 * p1 * y + 6 * p2 * x
    j[..., 0, 1] = x * dg * y + 2 * p1 * x + 2 * p2 * y
    j[..., 1, 0] = y * dg * x + 2 * p1 * x + 2 * p2 * y
    j[..., 1, 1] = g + y * dg * y + 6 * p1 * y + 2 * p2 * x
    return j


def kalibr_omni_radtan_unproject(
    px: np.ndarray, intr: tuple[float, ...], dist: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Kalibr's omni + radtan unprojection of pixels ``(n, 2)`` (intr = xi, fu, fv, pu, pv; dist = k1, k2, r1, r2).

    Exact: Newton on the distortion (analytic 2x2 Jacobian) to 1e-15, then Mei's closed-form lift.
    Returns unit rays ``(n, 3)`` and a bool ``(n,)`` of the pixels that have one.
    """
    xi, fu, fv, pu, pv = intr
    md = np.stack([(px[:, 0] - pu) / fu, (px[:, 1] - pv) / fv], -1)
    m = md.copy()
    for _ in range(50):
        j = _distort_jacobian(m, dist)
        step = np.linalg.solve(j, (_distort(m, dist) - md)[..., None])[..., 0]
        m = m - step
        if not np.abs(step).max(initial=0.0) > 1e-15:
            break
    r2 = (m * m).sum(-1)
    det = np.linalg.det(_distort_jacobian(m, dist))
    disc = 1 + (1 - xi * xi) * r2
    ok = (np.abs(_distort(m, dist) - md).max(-1) < 1e-12) & (det > 0) & (disc >= 0)
    with np.errstate(invalid="ignore"):
        k = (xi + np.sqrt(np.maximum(disc, 0.0))) / (1 + r2)
    rays = np.stack([k * m[:, 0], k * m[:, 1], k - xi], -1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True), ok


def _grid(w: int, h: int, step: int) -> np.ndarray:
    us = np.unique(np.r_[np.arange(0, w, step), w - 1]).astype(np.float64)
    vs = np.unique(np.r_[np.arange(0, h, step), h - 1]).astype(np.float64)
    uu, vv = np.meshgrid(us, vs)
    return np.stack([uu.ravel(), vv.ravel()], -1)


def _radial_project(rays: np.ndarray, q: np.ndarray) -> np.ndarray:
    f, fv, pu, pv, xi, k1, k2 = q
    m = rays[:, :2] / (rays[:, 2] + xi)[:, None]
    r2 = (m * m).sum(-1)
    g = 1 + r2 * (k1 + r2 * k2)
    return np.stack([f * m[:, 0] * g + pu, fv * m[:, 1] * g + pv], -1)


def _least_squares(rays: np.ndarray, px: np.ndarray, q0: np.ndarray, src: str) -> np.ndarray:
    try:
        from scipy.optimize import least_squares
    except ModuleNotFoundError:
        from heal_swin.errors import InputError

        raise InputError(
            f"{src}: fitting radtan's tangential terms needs scipy: pip install 'heal-swin[calib]'"
        ) from None
    res = least_squares(
        lambda q: (_radial_project(rays, q) - px).ravel(),
        q0,
        method="lm",
        x_scale="jac",
        xtol=1e-12,
        ftol=1e-12,
    )
    return res.x


def fit_mei_radtan(
    intr: tuple[float, ...],
    dist: tuple[float, ...],
    size: tuple[float, float],
    kw: dict[str, Any],
    field: str,
    max_error: float,
) -> tuple[FisheyeCamera, dict[str, float]]:
    """Fit a radial ``mei`` camera to Kalibr omni + radtan (intr = xi, fu, fv, pu, pv; dist = k1, k2, r1, r2).

    Returns the camera and ``{"max_px", "mean_px", "threshold_px", "pixels", "grid_step_px"}``;
    a fit whose max reprojection error exceeds ``max_error`` pixels is a CalibrationError naming ``field``.
    """
    src = kw.get("source", "<calibration>")
    w, h = int(size[0]), int(size[1])
    fit_px, eval_step = _grid(w, h, max(1, max(w, h) // 64)), max(1, max(w, h) // 256)
    eval_px = _grid(w, h, eval_step)
    rays, ok = kalibr_omni_radtan_unproject(eval_px, intr, dist)
    if not ok.all():
        raise CalibrationError(
            src,
            field,
            "a distortion invertible over the whole image",
            f"{int((~ok).sum())} of {ok.size} sampled pixels have no ray",
        )
    fit_rays, _ = kalibr_omni_radtan_unproject(fit_px, intr, dist)
    xi, fu, fv, pu, pv = intr
    q = _least_squares(
        fit_rays, fit_px, np.array([fu, fv, pu, pv, xi, dist[0], dist[1]], dtype=np.float64), src
    )
    err = np.linalg.norm(_radial_project(rays, q) - eval_px, axis=-1)
    report = {
        "max_px": float(err.max()),
        "mean_px": float(err.mean()),
        "threshold_px": float(max_error),
        "pixels": int(err.size),
        "grid_step_px": int(eval_step),
    }
    if not report["max_px"] <= max_error:
        raise CalibrationError(
            src,
            field,
            f"tangential distortion a radially symmetric model fits within {max_error:g} px",
            f"max {report['max_px']:.3f} px, mean {report['mean_px']:.3f} px",
        )
    f, fv2, pu2, pv2, xi2, k1, k2 = (float(v) for v in q)
    return FisheyeCamera.from_focal("mei", f, fv2, pu2, pv2, w, h, (xi2, k1, k2), **kw), report
