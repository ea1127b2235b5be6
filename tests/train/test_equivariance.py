"""Equivariance measurement: exact quarter turns of the NESTED grid, and the error of f(Rx) vs R f(x)."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
import torch

from heal_swin.data.transforms import sphere_rotation_index
from heal_swin.geometry import HealpixGrid
from heal_swin.train.equivariance import ensemble_forward, equivariance_error, rotation_of


@pytest.mark.parametrize("nside", [4, 16])
def test_rotation_index_against_healpy_ang2pix(nside) -> None:
    g = HealpixGrid(nside, tuple(range(8)))
    theta, phi = hp.pix2ang(nside, g.global_index, nest=True)
    for k in (1, 2, 3):
        # out[i] = values[source pixel]: the content at longitude phi - k*90 deg moves to phi
        src = hp.ang2pix(nside, theta, phi - k * np.pi / 2, nest=True)
        assert np.array_equal(g.global_index[sphere_rotation_index(g, k)], src)


class _PixelwiseSphere(torch.nn.Module):
    """A per-pixel (1x1) model: equivariant under every pixel permutation by construction."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(3, k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _PositionalSphere(_PixelwiseSphere):
    """Adds a per-pixel learned bias: not equivariant."""

    def __init__(self, k: int, n: int) -> None:
        super().__init__(k)
        self.bias = torch.nn.Parameter(torch.randn(k, n) * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.bias


def _sphere_batch(grid: HealpixGrid) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(2, 3, grid.npix)
    valid = torch.ones(2, grid.npix, dtype=torch.bool)
    valid[:, : grid.npix // 5] = False  # part of the grid does not see the image
    return x * valid[:, None], valid


def test_pixelwise_model_is_equivariant_and_positional_is_not() -> None:
    torch.manual_seed(0)
    g = HealpixGrid(8, tuple(range(8)))
    x, valid = _sphere_batch(g)
    good = ensemble_forward([_PixelwiseSphere(5)], "segmentation")
    bad = ensemble_forward([_PositionalSphere(5, g.npix)], "segmentation")
    for k in (1, 2, 3):
        rot = rotation_of("sphere", k, g)
        e = equivariance_error(good, x, rot, "segmentation", valid)
        assert e["argmax_changed"] == 0 and e["prob_tv"] < 1e-6
        e = equivariance_error(bad, x, rot, "segmentation", valid)
        assert e["argmax_changed"] > 0.2 and e["prob_tv"] > 0.1
    depth = ensemble_forward([_PixelwiseSphere(1)], "depth", depth_log=(2.0, 0.5))
    assert equivariance_error(depth, x, rotation_of("sphere", 1, g), "depth", valid)["rel_diff"] < 1e-6
    bad_depth = ensemble_forward([_PositionalSphere(1, g.npix)], "depth", depth_log=(2.0, 0.5))
    assert equivariance_error(bad_depth, x, rotation_of("sphere", 1, g), "depth", valid)["rel_diff"] > 0.1


def test_rel_diff_is_in_metres() -> None:
    # a model whose log-depth output is shifted by 0.1 (normalised) on one half of the grid
    g = HealpixGrid(4, tuple(range(8)))
    half = (torch.arange(g.npix) < g.npix // 2).float() * 0.1

    class Half(torch.nn.Module):
        def forward(self, x):
            return x[:, :1] * 0 + half

    f = ensemble_forward([Half()], "depth", depth_log=(0.0, 2.0))  # log d = 2 * output
    e = equivariance_error(f, torch.zeros(1, 3, g.npix), rotation_of("sphere", 2, g), "depth")
    idx = sphere_rotation_index(g, 2)
    moved = (half.numpy() != half.numpy()[idx]).mean()  # pixels whose value changes under the turn
    # where it changes the depths differ by exp(0.2): the relative difference is exp(0.2)-1 or 1-exp(-0.2)
    want = moved / 2 * ((np.exp(0.2) - 1) + (1 - np.exp(-0.2)))
    assert e["rel_diff"] == pytest.approx(want, rel=1e-6)


def test_ensemble_of_identical_members_is_the_member_and_averages_probabilities() -> None:
    torch.manual_seed(1)
    g = HealpixGrid(4, tuple(range(8)))
    x, _ = _sphere_batch(g)
    a, b = _PositionalSphere(4, g.npix), _PositionalSphere(4, g.npix)
    one = ensemble_forward([a], "segmentation")(x)
    torch.testing.assert_close(ensemble_forward([a, a], "segmentation")(x), one)
    pair = ensemble_forward([a, b], "segmentation")(x)
    torch.testing.assert_close(pair, (torch.softmax(a(x), 1) + torch.softmax(b(x), 1)) / 2)


def test_flat_rotation_is_180_degrees_only() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 12, 16)
    rot = rotation_of("flat", 2)
    assert torch.equal(rot(x), x.flip(-1).flip(-2))
    pixelwise = ensemble_forward([torch.nn.Conv2d(3, 4, 1)], "segmentation")
    e = equivariance_error(pixelwise, x, rot, "segmentation")
    assert e["argmax_changed"] == 0 and e["prob_tv"] < 1e-6
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.mul_(10)  # an asymmetric 3x3 kernel: not invariant under the half turn
    assert (
        equivariance_error(ensemble_forward([conv], "segmentation"), x, rot, "segmentation")["argmax_changed"]
        > 0.2
    )
    with pytest.raises(ValueError, match="only the 180 degree"):
        rotation_of("flat", 1)
