"""Slow, independent reference implementations for the S2CNN tests (numpy/scipy, float64).

Nothing here imports the library: Wigner-d comes from the explicit factorial sum, spherical
harmonics from scipy, rotations and Euler angles are written out again, and convolutions are
evaluated point by point from their definitions.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import sph_harm_y


def wigner_d_explicit(l: int, m: int, n: int, beta: np.ndarray) -> np.ndarray:
    """d^l_{mn}(β) = <l m| exp(-iβ J_y) |l n> from the factorial sum (Wigner's formula)."""
    beta = np.asarray(beta, dtype=np.float64)
    c, s = np.cos(beta / 2), np.sin(beta / 2)
    pre = math.sqrt(
        math.factorial(l + m) * math.factorial(l - m) * math.factorial(l + n) * math.factorial(l - n)
    )
    total = np.zeros_like(beta)
    for k in range(max(0, n - m), min(l + n, l - m) + 1):
        den = (
            math.factorial(l + n - k)
            * math.factorial(k)
            * math.factorial(m - n + k)
            * math.factorial(l - m - k)
        )
        total = total + (-1) ** (m - n + k) / den * c ** (2 * l + n - m - 2 * k) * s ** (m - n + 2 * k)
    return pre * total


def rz(t: float) -> np.ndarray:
    return np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])


def ry(t: float) -> np.ndarray:
    return np.array([[np.cos(t), 0.0, np.sin(t)], [0.0, 1.0, 0.0], [-np.sin(t), 0.0, np.cos(t)]])


def zyz(a: float, b: float, g: float) -> np.ndarray:
    return rz(a) @ ry(b) @ rz(g)


def to_euler(r: np.ndarray) -> tuple[float, float, float]:
    """ZYZ angles of one rotation matrix (generic case; γ = 0 at the poles)."""
    b = math.acos(max(-1.0, min(1.0, r[2, 2])))
    if math.sin(b) > 1e-10:
        return math.atan2(r[1, 2], r[0, 2]), b, math.atan2(r[2, 1], -r[2, 0])
    if r[2, 2] > 0:
        return math.atan2(r[1, 0], r[0, 0]), b, 0.0
    return math.atan2(-r[1, 0], -r[0, 0]), b, 0.0


def sphere_angles(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colatitude, longitude) of unit vectors (..., 3)."""
    return np.arccos(np.clip(v[..., 2], -1, 1)), np.arctan2(v[..., 1], v[..., 0])


def random_s2_coeffs(L: int, rng: np.random.Generator) -> dict[tuple[int, int], complex]:
    return {(l, m): complex(rng.normal(), rng.normal()) for l in range(L) for m in range(-l, l + 1)}


def eval_s2(coeffs: dict[tuple[int, int], complex], theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Re Σ c_lm Y_lm(θ, φ) with scipy's harmonics (a real band-limited function)."""
    out = np.zeros(np.shape(theta))
    for (l, m), c in coeffs.items():
        out = out + np.real(c * sph_harm_y(l, m, theta, phi))
    return out


def random_so3_coeffs(L: int, rng: np.random.Generator) -> dict[tuple[int, int, int], complex]:
    return {
        (l, m, n): complex(rng.normal(), rng.normal()) / (2 * l + 1)
        for l in range(L)
        for m in range(-l, l + 1)
        for n in range(-l, l + 1)
    }


def eval_so3(
    coeffs: dict[tuple[int, int, int], complex], a: np.ndarray, b: np.ndarray, g: np.ndarray
) -> np.ndarray:
    """Re Σ c_lmn e^{-imα} d^l_mn(β) e^{-inγ} at Euler angles (arrays of one shape)."""
    out = np.zeros(np.shape(b))
    for (l, m, n), c in coeffs.items():
        out = out + np.real(c * np.exp(-1j * m * a) * wigner_d_explicit(l, m, n, b) * np.exp(-1j * n * g))
    return out


def dh_grid(b: int) -> tuple[np.ndarray, np.ndarray]:
    return np.pi * (2 * np.arange(2 * b) + 1) / (4 * b), np.pi * np.arange(2 * b) / b


# The reference itself is checked against scipy and against rotation-matrix algebra, so the
# library tests that use it compare with something known to be right.
def test_reference_wigner_d_matches_scipy_legendre_column():
    beta = np.linspace(0.05, np.pi - 0.05, 7)
    for l in range(6):
        for m in range(-l, l + 1):
            ref = np.real(sph_harm_y(l, m, beta, 0.0)) * math.sqrt(4 * math.pi / (2 * l + 1))
            np.testing.assert_allclose(wigner_d_explicit(l, m, 0, beta), ref, atol=1e-12)


def test_reference_euler_round_trip():
    rng = np.random.default_rng(0)
    for a, b, g in rng.uniform([-np.pi, 0.01, -np.pi], [np.pi, np.pi - 0.01, np.pi], size=(20, 3)):
        np.testing.assert_allclose(zyz(*to_euler(zyz(a, b, g))), zyz(a, b, g), atol=1e-12)
