"""Sampling grids, quadrature and Wigner-d matrices for S2 and SO(3) (numpy, float64).

Conventions (used by every module of the package):

- Rotations are ZYZ Euler angles acting actively: ``R(α, β, γ) = Rz(α) Ry(β) Rz(γ)``.
- A point of the sphere with colatitude β and longitude α is ``R(α, β, 0) e_z =
  (sin β cos α, sin β sin α, cos β)``: β = 0 is the north pole (HEALPix +z), α = atan2(y, x).
- Driscoll–Healy (DH) grid of bandwidth ``b``: ``β_j = π(2j+1)/(4b)``, ``α_k = πk/b``,
  ``j, k = 0..2b-1``; SO(3) grid: the same β, and α, γ both on the ``α_k`` grid.
- Wigner matrices: ``d^l_{mn}(β) = <l m| exp(-iβ J_y) |l n>`` (Condon–Shortley phases),
  ``D^l_{mn}(α, β, γ) = e^{-imα} d^l_{mn}(β) e^{-inγ}``, a unitary representation:
  ``D(R1 R2) = D(R1) D(R2)``.
- Spherical harmonics: ``Y^l_m(β, α) = sqrt((2l+1)/4π) d^l_{m0}(β) e^{imα}``, which equals the
  usual orthonormal harmonics with Condon–Shortley phase (scipy's ``sph_harm_y``).
- Dense padded layout of spectra: degree ``l = 0..L-1`` and orders ``m, n = -(L-1)..L-1`` stored
  at index ``m + L - 1``; entries with ``|m| > l`` or ``|n| > l`` are zero.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._cache import cached_arrays

__all__ = [
    "dh_alphas",
    "dh_betas",
    "dh_weights",
    "euler_to_matrix",
    "matrix_to_euler",
    "s2_equatorial_grid",
    "s2_near_identity_grid",
    "so3_equatorial_grid",
    "so3_near_identity_grid",
    "spherical_harmonics",
    "wigner_D",
    "wigner_d",
    "wigner_d_at",
    "wigner_d_grid",
]


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# ------------------------------------------------------------------ grids
def dh_betas(b: int) -> np.ndarray:
    """(2b,) colatitudes β_j = π(2j+1)/(4b) of the DH grid, radians."""
    return np.pi * (2 * np.arange(2 * b) + 1) / (4 * b)


def dh_alphas(b: int) -> np.ndarray:
    """(2b,) longitudes α_k = πk/b of the DH grid (also the γ grid on SO(3)), radians."""
    return np.pi * np.arange(2 * b) / b


@lru_cache(maxsize=32)
def dh_weights(b: int) -> np.ndarray:
    """(2b,) quadrature weights w_j for ``∫_0^π g(β) sin β dβ ≈ Σ_j w_j g(β_j)``.

    Driscoll–Healy / Kostelec–Rockmore weights for the 2b-point grid without poles:
    ``w_j = (2/b) sin β_j Σ_{k<b} sin((2k+1) β_j) / (2k+1)``; exact for polynomials in cos β
    of degree < 2b (so for every product ``d^l_{mn} d^{l'}_{mn}`` with l, l' < b). Sum = 2.
    """
    beta = dh_betas(b)
    k = np.arange(b)
    s = np.sin(np.outer(beta, 2 * k + 1)) / (2 * k + 1)
    return _readonly((2.0 / b) * np.sin(beta) * s.sum(axis=1))


# ------------------------------------------------------------- Wigner-d
@lru_cache(maxsize=256)
def _jy_eigen(l: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of J_y in the |l m> basis (m = -l..l): eigenvalues (exact integers), vectors."""
    m = np.arange(-l, l)
    # <m+1| J_+ |m> = sqrt((l-m)(l+m+1)); J_- = J_+^T; J_y = (J_+ - J_-) / 2i.
    jp = np.diag(np.sqrt((l - m) * (l + m + 1.0)), k=-1)
    jy = (jp - jp.T) / 2j
    mu, v = np.linalg.eigh(jy)
    # The spectrum of J_y is exactly -l..l (well separated), so rounding only removes noise.
    return np.round(mu), v


def wigner_d(l: int, beta: np.ndarray) -> np.ndarray:
    """Wigner small-d matrices ``d^l_{mn}(β)`` for one degree, (len(β), 2l+1, 2l+1) float64.

    Computed as ``V diag(e^{-iβμ}) V^H`` from the eigen-decomposition of J_y: every step is
    unitary, so the result is accurate to ~1e-13 for any l used here (checked up to l = 64 in the
    tests) without the cancellation of the explicit factorial sum.
    """
    beta = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    mu, v = _jy_eigen(int(l))
    # Real part of V diag(cos - i sin) V^H as one real batched product:
    # Re = (Vr c + Vi s) Vr^T + (Vi c - Vr s) Vi^T.
    c = np.cos(beta[:, None] * mu[None, :])[:, None, :]  # (nβ, 1, 2l+1)
    s = np.sin(beta[:, None] * mu[None, :])[:, None, :]
    vr, vi = v.real[None], v.imag[None]
    left = np.concatenate([vr * c + vi * s, vi * c - vr * s], axis=-1)  # (nβ, 2l+1, 2(2l+1))
    return left @ np.concatenate([v.real.T, v.imag.T], axis=0)


def _wigner_d_grid_build(lmax_excl: int, b: int) -> dict[str, np.ndarray]:
    L = lmax_excl
    beta = dh_betas(b)
    out = np.zeros((L, 2 * L - 1, 2 * L - 1, beta.size), dtype=np.float64)
    for l in range(L):
        mu, v = _jy_eigen(l)
        # d_mn(β_j) = Re Σ_μ V_mμ conj(V_nμ) e^{-iβ_j μ}: one real GEMM per degree,
        # [Re Q | Im Q] (M², 2μ) @ [cos; sin] (2μ, nβ).
        q = v[:, None, :] * v.conj()[None, :, :]
        k = 2 * l + 1
        trig = np.concatenate([np.cos(np.outer(mu, beta)), np.sin(np.outer(mu, beta))], axis=0)
        d = np.concatenate([q.real.reshape(k * k, k), q.imag.reshape(k * k, k)], axis=1) @ trig
        s = slice(L - 1 - l, L + l)
        out[l, s, s, :] = d.reshape(k, k, beta.size)
    return {"d": out}


@lru_cache(maxsize=8)
def wigner_d_grid(L: int, b: int) -> np.ndarray:
    """Padded ``d^l_{mn}(β_j)`` on the DH β grid of bandwidth b: (L, 2L-1, 2L-1, 2b) float64.

    Index ``[l, m+L-1, n+L-1, j]``; zero where ``|m| > l`` or ``|n| > l``. Cached in memory and,
    with ``HEAL_SWIN_CACHE_DIR`` set, on disk.
    """
    return cached_arrays("wigner_d_grid", {"L": int(L), "b": int(b)}, lambda: _wigner_d_grid_build(L, b))["d"]


# ------------------------------------------------ evaluation at any point
def wigner_d_at(L: int, beta: np.ndarray) -> np.ndarray:
    """Padded ``d^l_{mn}(β)`` at arbitrary β: (P, L, 2L-1, 2L-1) float64 (one evaluation per distinct β)."""
    beta = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    ub, inv = np.unique(beta, return_inverse=True)
    d = np.zeros((ub.size, L, 2 * L - 1, 2 * L - 1))
    for l in range(L):
        s = slice(L - 1 - l, L + l)
        d[:, l, s, s] = wigner_d(l, ub)
    return d[inv.reshape(-1)]


def wigner_D(L: int, alpha: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Padded ``D^l_{mn}(α, β, γ)`` at P rotations: complex128 (P, L, 2L-1, 2L-1)."""
    alpha, beta, gamma = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (alpha, beta, gamma))
    m = np.arange(-(L - 1), L)
    ea = np.exp(-1j * alpha[:, None] * m[None, :])  # (P, 2L-1)
    eg = np.exp(-1j * gamma[:, None] * m[None, :])
    return wigner_d_at(L, beta) * ea[:, None, :, None] * eg[:, None, None, :]


def spherical_harmonics(L: int, beta: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Padded ``Y^l_m(β, α)`` at P points: complex128 (P, L, 2L-1), index ``[p, l, m+L-1]``."""
    beta = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    alpha = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    m = np.arange(-(L - 1), L)
    ub, inv = np.unique(beta, return_inverse=True)
    out = np.zeros((ub.size, L, 2 * L - 1), dtype=np.complex128)
    for l in range(L):
        d = wigner_d(l, ub)[:, :, l]  # column n = 0
        out[:, l, L - 1 - l : L + l] = np.sqrt((2 * l + 1) / (4 * np.pi)) * d
    out = out[inv.reshape(-1)]
    return out * np.exp(1j * alpha[:, None] * m[None, :])[:, None, :]


# -------------------------------------------------------------- rotations
def euler_to_matrix(alpha: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices ``Rz(α) Ry(β) Rz(γ)``."""
    a, b_, g = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (alpha, beta, gamma)))

    def rz(t: np.ndarray) -> np.ndarray:
        c, s = np.cos(t), np.sin(t)
        z, o = np.zeros_like(t), np.ones_like(t)
        return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)

    def ry(t: np.ndarray) -> np.ndarray:
        c, s = np.cos(t), np.sin(t)
        z, o = np.zeros_like(t), np.ones_like(t)
        return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)

    return rz(a) @ ry(b_) @ rz(g)


def matrix_to_euler(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ZYZ Euler angles (α, β, γ) of rotation matrices (..., 3, 3); β in [0, π].

    At β = 0 or π only α ± γ is defined; γ is then set to 0.
    """
    r = np.asarray(r, dtype=np.float64)
    beta = np.arccos(np.clip(r[..., 2, 2], -1.0, 1.0))
    sb = np.sin(beta)
    regular = sb > 1e-9
    alpha = np.where(regular, np.arctan2(r[..., 1, 2], r[..., 0, 2]), np.arctan2(r[..., 1, 0], r[..., 0, 0]))
    gamma = np.where(regular, np.arctan2(r[..., 2, 1], -r[..., 2, 0]), 0.0)
    # At β = π, R = Rz(α - γ) Ry(π), whose first column is (-cos, -sin, 0) of the angle.
    flip = (~regular) & (r[..., 2, 2] < 0)
    alpha = np.where(flip, np.arctan2(-r[..., 1, 0], -r[..., 0, 0]), alpha)
    return alpha, beta, gamma


# -------------------------------------------------------------- kernel grids
def s2_near_identity_grid(max_beta: float = np.pi / 8, n_alpha: int = 8, n_beta: int = 3) -> np.ndarray:
    """(P, 2) points ``(β, α)`` on rings β = max_beta·i/n_beta (i = 1..n_beta) around the north pole.

    The S2 analogue of a small local filter: P = n_alpha·n_beta (default 24).
    """
    beta = max_beta * np.arange(1, n_beta + 1) / n_beta
    alpha = 2 * np.pi * np.arange(n_alpha) / n_alpha
    b, a = np.meshgrid(beta, alpha, indexing="ij")
    return np.stack([b.ravel(), a.ravel()], axis=-1)


def s2_equatorial_grid(max_beta: float = 0.0, n_alpha: int = 32, n_beta: int = 1) -> np.ndarray:
    """(P, 2) points ``(β, α)`` on n_beta rings within ``π/2 ± max_beta`` (a band around the equator)."""
    beta = np.pi / 2 + (np.linspace(-max_beta, max_beta, n_beta) if n_beta > 1 else np.zeros(1))
    alpha = 2 * np.pi * np.arange(n_alpha) / n_alpha
    b, a = np.meshgrid(beta, alpha, indexing="ij")
    return np.stack([b.ravel(), a.ravel()], axis=-1)


def so3_near_identity_grid(
    max_beta: float = np.pi / 8,
    max_gamma: float = 2 * np.pi,
    n_alpha: int = 8,
    n_beta: int = 3,
    n_gamma: int | None = None,
) -> np.ndarray:
    """(P, 3) rotations ``(α, β, γ)`` near the identity, P = n_alpha·n_beta·n_gamma (default 192).

    ``R(α, β, c - α)`` tilts the pole by β towards longitude α and then turns by c about the
    axis; c takes n_gamma values in ``[-max_gamma, max_gamma)`` (the full circle by default).
    """
    n_gamma = n_alpha if n_gamma is None else n_gamma
    beta = max_beta * np.arange(1, n_beta + 1) / n_beta
    alpha = 2 * np.pi * np.arange(n_alpha) / n_alpha
    if max_gamma >= 2 * np.pi - 1e-12:
        c = 2 * np.pi * np.arange(n_gamma) / n_gamma
    else:
        c = np.linspace(-max_gamma, max_gamma, n_gamma) if n_gamma > 1 else np.zeros(1)
    b, a, cc = np.meshgrid(beta, alpha, c, indexing="ij")
    return np.stack([a.ravel(), b.ravel(), (cc - a).ravel()], axis=-1)


def so3_equatorial_grid(
    max_beta: float = 0.0, max_gamma: float = np.pi / 8, n_alpha: int = 32, n_beta: int = 1, n_gamma: int = 2
) -> np.ndarray:
    """(P, 3) rotations ``(α, β, γ)`` with β near π/2 and small γ (pole moved onto the equator)."""
    beta = np.pi / 2 + (np.linspace(-max_beta, max_beta, n_beta) if n_beta > 1 else np.zeros(1))
    alpha = 2 * np.pi * np.arange(n_alpha) / n_alpha
    gamma = np.linspace(-max_gamma, max_gamma, n_gamma) if n_gamma > 1 else np.zeros(1)
    b, a, g = np.meshgrid(beta, alpha, gamma, indexing="ij")
    return np.stack([a.ravel(), b.ravel(), g.ravel()], axis=-1)
