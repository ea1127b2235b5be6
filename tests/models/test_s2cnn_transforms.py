"""S2CNN transforms: Wigner-d, quadrature, S2/SO(3) transforms against independent formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre
from scipy.special import sph_harm_y

from heal_swin.models.s2cnn import (
    S2Analysis,
    S2Synthesis,
    SO3Analysis,
    SO3Synthesis,
    _cache,
    dh_weights,
    transform_sizes,
)
from heal_swin.models.s2cnn.so3 import (
    dh_betas,
    euler_to_matrix,
    matrix_to_euler,
    spherical_harmonics,
    wigner_D,
    wigner_d,
    wigner_d_grid,
)

from .test_s2cnn_reference import (
    dh_grid,
    eval_s2,
    eval_so3,
    random_s2_coeffs,
    random_so3_coeffs,
    wigner_d_explicit,
    zyz,
)


# ------------------------------------------------------------ Wigner-d
def test_wigner_d_matches_factorial_formula():
    beta = np.array([0.0, 0.3, 1.1, np.pi / 2, 2.4, np.pi])
    for l in range(7):
        d = wigner_d(l, beta)
        for m in range(-l, l + 1):
            for n in range(-l, l + 1):
                np.testing.assert_allclose(d[:, m + l, n + l], wigner_d_explicit(l, m, n, beta), atol=1e-12)


def test_spherical_harmonics_match_scipy():
    rng = np.random.default_rng(0)
    beta, alpha = rng.uniform(0, np.pi, 20), rng.uniform(0, 2 * np.pi, 20)
    L = 12
    y = spherical_harmonics(L, beta, alpha)
    for l in range(L):
        for m in range(-l, l + 1):
            np.testing.assert_allclose(y[:, l, m + L - 1], sph_harm_y(l, m, beta, alpha), atol=1e-12)


def test_wigner_d_stable_up_to_degree_64():
    # Orthogonality under the DH quadrature, Σ_j w_j d^l_mn d^l'_mn = 2/(2l+1) δ_ll', at high degree,
    # plus agreement with scipy's Legendre-based harmonics for the n = 0 column.
    b = 65
    w, beta = dh_weights(b), dh_betas(b)
    d64, d62 = wigner_d(64, beta), wigner_d(62, beta)
    gram = np.einsum("j,jmn,jmn->mn", w, d64, d64)
    np.testing.assert_allclose(gram, 2 / 129, atol=1e-13)
    cross = np.einsum("j,jmn,jmn->mn", w, d64[:, 2:-2, 2:-2], d62)
    assert np.abs(cross).max() < 1e-13
    for m in (0, 7, 40, 64):
        ref = np.real(sph_harm_y(64, m, beta, 0.0)) * np.sqrt(4 * np.pi / 129)
        np.testing.assert_allclose(d64[:, m + 64, 64], ref, atol=1e-12)
    # Unitarity of the whole matrix at an arbitrary angle.
    d = wigner_d(64, np.array([1.234]))[0]
    np.testing.assert_allclose(d @ d.T, np.eye(129), atol=1e-12)


def test_wigner_D_is_a_representation():
    rng = np.random.default_rng(1)
    L = 6
    for _ in range(3):
        e1, e2 = rng.uniform(0, np.pi, 3), rng.uniform(0, np.pi, 3)
        r12 = zyz(*e1) @ zyz(*e2)
        a, b, g = matrix_to_euler(r12)
        np.testing.assert_allclose(euler_to_matrix(a, b, g), r12, atol=1e-12)
        d1, d2, d12 = wigner_D(L, *e1)[0], wigner_D(L, *e2)[0], wigner_D(L, a, b, g)[0]
        for l in range(L):
            np.testing.assert_allclose(d1[l] @ d2[l], d12[l], atol=1e-12)


def test_dh_quadrature_exact_for_polynomials():
    for b in (3, 8, 16):
        x = np.cos(dh_betas(b))
        w = dh_weights(b)
        for l in range(2 * b):
            exact = 2.0 if l == 0 else 0.0  # ∫ P_l(cos β) sin β dβ
            assert abs(np.dot(w, legendre.legval(x, [0] * l + [1])) - exact) < 1e-13


def test_wigner_d_grid_layout_and_padding():
    L, b = 5, 6
    d = wigner_d_grid(L, b)
    assert d.shape == (L, 2 * L - 1, 2 * L - 1, 2 * b)
    assert not d.flags.writeable
    l, m, n = 3, -2, 1
    np.testing.assert_allclose(
        d[l, m + L - 1, n + L - 1], wigner_d_explicit(l, m, n, dh_betas(b)), atol=1e-13
    )
    assert np.all(d[1, :2] == 0) and np.all(d[1, :, -2:] == 0)


# ------------------------------------------------------------ transforms
def _s2_expected(coeffs, L):
    # Re Σ c_lm Y_lm has f̂_lm = (c_lm + (-1)^m conj(c_l,-m)) / 2.
    re, im = np.zeros((L, 2 * L - 1)), np.zeros((L, 2 * L - 1))
    for (l, m), c in coeffs.items():
        v = (c + (-1) ** m * np.conj(coeffs[(l, -m)])) / 2
        re[l, m + L - 1], im[l, m + L - 1] = v.real, v.imag
    return re, im


def test_s2_transform_against_scipy_harmonics():
    rng = np.random.default_rng(2)
    b, L = 6, 5
    coeffs = random_s2_coeffs(L, rng)
    beta, alpha = dh_grid(b)
    f = eval_s2(coeffs, *np.meshgrid(beta, alpha, indexing="ij"))
    re, im = S2Analysis(b, L)(torch.from_numpy(f).float()[None, None])
    exp_re, exp_im = _s2_expected(coeffs, L)
    np.testing.assert_allclose(re[0, 0].numpy(), exp_re, atol=2e-6)
    np.testing.assert_allclose(im[0, 0].numpy(), exp_im, atol=2e-6)
    # Synthesis on a finer grid evaluates the same function there.
    b2 = 7
    g = S2Synthesis(L, b2)(
        torch.from_numpy(exp_re).float()[None, None], torch.from_numpy(exp_im).float()[None, None]
    )
    beta2, alpha2 = dh_grid(b2)
    np.testing.assert_allclose(
        g[0, 0].numpy(), eval_s2(coeffs, *np.meshgrid(beta2, alpha2, indexing="ij")), atol=1e-5
    )


def test_so3_transform_against_explicit_wigner():
    rng = np.random.default_rng(3)
    b, L = 4, 4
    coeffs = random_so3_coeffs(L, rng)
    beta, alpha = dh_grid(b)
    bb, aa, gg = np.meshgrid(beta, alpha, alpha, indexing="ij")
    f = eval_so3(coeffs, aa, bb, gg)
    re, im = SO3Analysis(b, L)(torch.from_numpy(f).float()[None, None])
    # conj(D^l_mn) = (-1)^{m-n} D^l_{-m,-n}, so the real part has (c_lmn + (-1)^{m-n} conj(c_l,-m,-n)) / 2.
    for (l, m, n), c in coeffs.items():
        v = (c + (-1) ** (m - n) * np.conj(coeffs[(l, -m, -n)])) / 2
        got = complex(re[0, 0, l, m + L - 1, n + L - 1], im[0, 0, l, m + L - 1, n + L - 1])
        assert abs(got - v) < 2e-6
    g = SO3Synthesis(L, b)(re, im)
    np.testing.assert_allclose(g[0, 0].numpy(), f, atol=1e-5)


@pytest.mark.parametrize("b,L", [(4, 4), (8, 8), (12, 12), (12, 7)])
def test_transforms_invert_their_inverse(b, L):
    # forward(inverse(c)) == c for spectra of real signals, to float32 precision.
    torch.manual_seed(b * 100 + L)
    re, im = S2Analysis(b, L)(torch.randn(2, 3, 2 * b, 2 * b))
    re2, im2 = S2Analysis(b, L)(S2Synthesis(L, b)(re, im))
    scale = max(re.abs().max(), im.abs().max())
    assert max((re2 - re).abs().max(), (im2 - im).abs().max()) / scale < 1e-5
    re, im = SO3Analysis(b, L)(torch.randn(2, 2, 2 * b, 2 * b, 2 * b))
    re2, im2 = SO3Analysis(b, L)(SO3Synthesis(L, b)(re, im))
    scale = max(re.abs().max(), im.abs().max())
    assert max((re2 - re).abs().max(), (im2 - im).abs().max()) / scale < 1e-5


def test_band_limited_round_trip_and_bandwidth_change():
    torch.manual_seed(0)
    b = 6
    x = S2Synthesis(b)(*S2Analysis(b)(torch.randn(1, 2, 2 * b, 2 * b)))  # band-limited signal
    assert (S2Synthesis(b)(*S2Analysis(b)(x)) - x).abs().max() / x.abs().max() < 1e-5
    y = SO3Synthesis(b)(*SO3Analysis(b)(torch.randn(1, 2, 2 * b, 2 * b, 2 * b)))
    assert (SO3Synthesis(b)(*SO3Analysis(b)(y)) - y).abs().max() / y.abs().max() < 1e-5
    # Upsampling to a finer grid and analysing there keeps the spectrum.
    up = SO3Synthesis(b, 9)(*SO3Analysis(b)(y))
    re, im = SO3Analysis(9, b)(up)
    re0, im0 = SO3Analysis(b)(y)
    assert (re - re0).abs().max() < 1e-5 and (im - im0).abs().max() < 1e-5


def test_transform_buffers_are_not_persistent_and_sizes_reported():
    t = SO3Analysis(4)
    assert t.state_dict() == {}
    n = sum(buf.numel() for buf in t.buffers())
    assert n == transform_sizes(4, 4)["SO3Analysis"]
    with pytest.raises(ValueError, match="resolves degrees"):
        S2Analysis(4, 5)


def test_disk_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAL_SWIN_CACHE_DIR", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5.0)}

    a = _cache.cached_arrays("demo", {"x": 1}, build)
    b = _cache.cached_arrays("demo", {"x": 1}, build)
    assert len(calls) == 1 and np.array_equal(a["a"], b["a"]) and not b["a"].flags.writeable
    files = list((tmp_path / "s2cnn").glob("demo-*.npz"))
    assert len(files) == 1 and not list((tmp_path / "s2cnn").glob("*.tmp"))
    files[0].write_bytes(b"corrupt")
    _cache.MEMORY.clear()  # the in-memory layer would serve it otherwise
    c = _cache.cached_arrays("demo", {"x": 1}, build)
    assert len(calls) == 2 and np.array_equal(c["a"], a["a"])
    _cache.cached_arrays("demo", {"x": 2}, build)
    assert len(calls) == 3
