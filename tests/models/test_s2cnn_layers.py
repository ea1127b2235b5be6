"""S2CNN layers against slow point-wise definitions, and exact grid-rotation equivariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heal_swin.models.s2cnn import (
    S2Convolution,
    SO3Convolution,
    SO3Integrate,
    SO3ToS2,
    s2_equatorial_grid,
    so3_equatorial_grid,
    so3_integrate,
    so3_near_identity_grid,
)
from heal_swin.models.s2cnn.so3 import wigner_D

from .test_s2cnn_reference import (
    dh_grid,
    eval_s2,
    eval_so3,
    random_s2_coeffs,
    random_so3_coeffs,
    sphere_angles,
    to_euler,
    zyz,
)

B = 4  # bandwidth of the slow comparisons


def _s2_signal(coeffs, b):
    beta, alpha = dh_grid(b)
    bb, aa = np.meshgrid(beta, alpha, indexing="ij")
    return eval_s2(coeffs, bb, aa)


def _so3_signal(coeffs, b):
    beta, alpha = dh_grid(b)
    bb, aa, gg = np.meshgrid(beta, alpha, alpha, indexing="ij")
    return eval_so3(coeffs, aa, bb, gg)


def _rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


@pytest.mark.parametrize("b_out", [4, 6])
def test_s2_convolution_matches_pointwise_definition(b_out):
    # h(R) = Σ_p w_p f(R x_p) for f band-limited below the layer's bandwidth.
    rng = np.random.default_rng(0)
    coeffs = random_s2_coeffs(B, rng)
    grid = np.array([[0.3, 0.0], [0.3, 2.0], [0.7, 4.0], [1.9, 1.0]])  # (β, α)
    layer = S2Convolution(1, 1, B, b_out, grid=grid, bias=False).double()
    w = rng.normal(size=len(grid))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w).view(1, 1, -1))
        out = layer(torch.from_numpy(_s2_signal(coeffs, B))[None, None])[0, 0].numpy()
    beta, alpha = dh_grid(b_out)
    xp = np.stack(
        [
            np.sin(grid[:, 0]) * np.cos(grid[:, 1]),
            np.sin(grid[:, 0]) * np.sin(grid[:, 1]),
            np.cos(grid[:, 0]),
        ],
        -1,
    )
    expected = np.zeros_like(out)
    for j, bj in enumerate(beta):
        for k, ak in enumerate(alpha):
            for i, gi in enumerate(alpha):
                th, ph = sphere_angles(xp @ zyz(ak, bj, gi).T)
                expected[j, k, i] = np.dot(w, eval_s2(coeffs, th, ph))
    assert _rel(out, expected) < 1e-6  # buffers are float32-rounded


def test_so3_convolution_matches_pointwise_definition():
    # h(R) = Σ_p w_p f(R Q_p) for f band-limited below the layer's bandwidth.
    rng = np.random.default_rng(1)
    coeffs = random_so3_coeffs(B, rng)
    grid = np.array([[0.1, 0.2, -0.1], [1.0, 0.2, 2.0], [2.5, 1.3, 0.4], [0.0, 0.0, 0.0]])  # (α, β, γ)
    layer = SO3Convolution(1, 1, B, B, grid=grid, bias=False).double()
    w = rng.normal(size=len(grid))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w).view(1, 1, -1))
        out = layer(torch.from_numpy(_so3_signal(coeffs, B))[None, None])[0, 0].numpy()
    beta, alpha = dh_grid(B)
    qs = [zyz(*q) for q in grid]
    idx = [(j, k, i) for j in range(2 * B) for k in range(2 * B) for i in range(2 * B)]
    eul = np.array(
        [[to_euler(zyz(alpha[k], beta[j], alpha[i]) @ q) for q in qs] for j, k, i in idx]
    )  # (G, P, 3)
    vals = eval_so3(coeffs, eul[..., 0], eul[..., 1], eul[..., 2])
    expected = (vals @ w).reshape(out.shape)
    assert _rel(out, expected) < 1e-6  # buffers are float32-rounded


def test_so3_to_s2_matches_fibre_average():
    # h(x) = Σ_p w_p mean_t f(S_x Rz(t) S_p^{-1}),  S_x e_z = x.
    rng = np.random.default_rng(2)
    coeffs = random_so3_coeffs(B, rng)
    grid = np.array([[0.4, 1.0], [1.2, 3.0], [0.0, 0.0]])  # (β, α)
    layer = SO3ToS2(1, 1, B, 5, grid=grid, bias=False).double()
    w = rng.normal(size=len(grid))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w).view(1, 1, -1))
        out = layer(torch.from_numpy(_so3_signal(coeffs, B))[None, None])[0, 0].numpy()
    beta, alpha = dh_grid(5)
    ts = 2 * np.pi * np.arange(3 * B) / (3 * B)
    expected = np.zeros_like(out)
    for j, bj in enumerate(beta):
        for k, ak in enumerate(alpha):
            eul = np.array(
                [
                    [to_euler(zyz(ak, bj, 0.0) @ zyz(t, 0, 0) @ zyz(0, -bp, -ap)) for t in ts]
                    for bp, ap in grid
                ]
            )
            expected[j, k] = np.dot(w, eval_so3(coeffs, eul[..., 0], eul[..., 1], eul[..., 2]).mean(axis=1))
    assert _rel(out, expected) < 1e-6  # buffers are float32-rounded


def test_so3_integrate_is_haar_mean():
    rng = np.random.default_rng(3)
    coeffs = random_so3_coeffs(B, rng)
    x = torch.from_numpy(_so3_signal(coeffs, B))[None, None]
    # (1/8π²) ∫ D^l_mn = δ_l0, so the mean is Re c_000.
    assert abs(so3_integrate(x).item() - coeffs[(0, 0, 0)].real) < 1e-12
    assert abs(SO3Integrate(B).double()(x).item() - coeffs[(0, 0, 0)].real) < 1e-6  # float32 buffer


# ------------------------------------------------------------- equivariance
def _roll_alpha(x, shift, dim):
    return torch.roll(x, shifts=shift, dims=dim)


def _flip_s2(x):
    """Rotation by π about y: (β, α) -> (π-β, π-α), exact on the DH grid."""
    b = x.shape[-1] // 2
    k = (b - torch.arange(2 * b)) % (2 * b)
    return x.flip(-2)[..., k]


def _flip_so3(x):
    """h(Ry(π)^{-1} R): (α, β, γ) -> (π-α, π-β, γ-π), exact on the SO(3) grid."""
    b = x.shape[-1] // 2
    k = (b - torch.arange(2 * b)) % (2 * b)
    g = (torch.arange(2 * b) - b) % (2 * b)
    return x.flip(-3)[:, :, :, k][..., g]


def _rel_t(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("b_in,b_out", [(8, 8), (8, 4), (4, 8)])
def test_linear_layers_equivariant_to_grid_rotations(b_in, b_out):
    torch.manual_seed(0)
    s2 = S2Convolution(2, 3, b_in, b_out)
    so3 = SO3Convolution(2, 3, b_in, b_out)
    head = SO3ToS2(2, 3, b_in, b_out)
    x2 = torch.randn(2, 2, 2 * b_in, 2 * b_in)
    x3 = torch.randn(2, 2, 2 * b_in, 2 * b_in, 2 * b_in)
    # Rotation about the pole by π/2: α shift of b/2 samples on every grid.
    s_in, s_out = b_in // 2, b_out // 2
    with torch.no_grad():
        assert _rel_t(s2(_roll_alpha(x2, s_in, -1)), _roll_alpha(s2(x2), s_out, -2)) < 1e-5
        assert _rel_t(so3(_roll_alpha(x3, s_in, -2)), _roll_alpha(so3(x3), s_out, -2)) < 1e-5
        assert _rel_t(head(_roll_alpha(x3, s_in, -2)), _roll_alpha(head(x3), s_out, -1)) < 1e-5
        # Rotation by π about y: exercises the β direction.
        assert _rel_t(s2(_flip_s2(x2)), _flip_so3(s2(x2))) < 1e-5
        assert _rel_t(so3(_flip_so3(x3)), _flip_so3(so3(x3))) < 1e-5
        assert _rel_t(head(_flip_so3(x3)), _flip_s2(head(x3))) < 1e-5


def test_layers_reject_bad_arguments():
    with pytest.raises(ValueError, match="b_in"):
        S2Convolution(1, 1, 0, 4)
    with pytest.raises(ValueError, match="out_channels"):
        SO3Convolution(1, -1, 4, 4)


def test_equatorial_kernel_grids_are_equivariant_too():
    torch.manual_seed(1)
    b = 6
    s2 = S2Convolution(2, 2, b, b, grid=s2_equatorial_grid(max_beta=0.2, n_alpha=8, n_beta=2))
    so3 = SO3Convolution(2, 2, b, b, grid=so3_equatorial_grid(max_beta=0.2, n_alpha=8, n_beta=2, n_gamma=2))
    x2, x3 = torch.randn(1, 2, 2 * b, 2 * b), torch.randn(1, 2, 2 * b, 2 * b, 2 * b)
    with torch.no_grad():
        assert _rel_t(s2(_flip_s2(x2)), _flip_so3(s2(x2))) < 1e-5
        assert _rel_t(so3(_flip_so3(x3)), _flip_so3(so3(x3))) < 1e-5
        assert _rel_t(so3(_roll_alpha(x3, 1, -2)), _roll_alpha(so3(x3), 1, -2)) < 1e-5


def test_so3_kernel_spectrum_is_weighted_sum_of_wigner_matrices():
    grid = so3_near_identity_grid(n_alpha=3, n_beta=2, n_gamma=2)
    layer = SO3Convolution(2, 3, 4, 4, grid=grid)
    kr, ki = layer.kernel()
    d = wigner_D(4, grid[:, 0], grid[:, 1], grid[:, 2])  # (P, L, M, N), library Wigner-D
    expected = np.einsum("iop,plmn->iolmn", layer.weight.detach().double().numpy(), d)
    assert kr.shape == (2, 3, 4, 7, 7)
    np.testing.assert_allclose(kr.detach().numpy(), expected.real, atol=1e-5)
    np.testing.assert_allclose(ki.detach().numpy(), expected.imag, atol=1e-5)
