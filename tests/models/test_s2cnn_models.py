"""S2CNN models: registry variants, HEALPix<->DH resampling, equivariance, training, ONNX export."""

from __future__ import annotations

import time

import healpy as hp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.models.registry import create_model, list_models, model_config
from heal_swin.models.s2cnn import DHToHealpix, HealpixToDH, S2CNNDense, dh_alphas, dh_betas
from heal_swin.models.s2cnn.so3 import wigner_d_grid


def _rotation_permutation(grid: HealpixGrid, quarter_turns: int = 1) -> np.ndarray:
    """perm with x_rot[..., i] = x[..., perm[i]] for a rotation by quarter_turns·π/2 about the pole."""
    t = -quarter_turns * np.pi / 2  # pull back: x_rot(v) = x(Rz(-t) v)
    v = grid.vectors()
    c, s = np.cos(t), np.sin(t)
    src = np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1], v[:, 2]], -1)
    perm = grid.local_index(hp.vec2pix(grid.nside, *src.T, nest=True))
    assert (perm >= 0).all() and len(np.unique(perm)) == grid.npix
    return perm


# ----------------------------------------------------------- resampling
def test_healpix_to_dh_interpolates_smooth_functions_and_masks_the_south():
    grid = HealpixGrid(16)
    v = grid.vectors()
    f = torch.from_numpy(v[:, 0] + 0.5 * v[:, 2] ** 2).float()[None, None]
    b = 12
    to_dh = HealpixToDH(grid, b)
    out = to_dh(f)[0, 0].numpy()
    bb, aa = np.meshgrid(dh_betas(b), dh_alphas(b), indexing="ij")
    exact = np.sin(bb) * np.cos(aa) + 0.5 * np.cos(bb) ** 2
    mask = to_dh.mask.numpy()
    # Base pixels 0-7 cover everything north of the equator and, in a zigzag, down to z = -2/3.
    assert mask[bb < np.deg2rad(85)].all() and not mask[bb > np.deg2rad(135)].any()
    assert 0.5 < mask.mean() < 0.75
    assert np.abs(out - exact)[bb < np.deg2rad(85)].max() < 0.02
    assert np.all(out[~mask] == 0)
    full = HealpixToDH(HealpixGrid(16, tuple(range(12))), b)
    assert full.mask.all()


def test_dh_to_healpix_interpolates_smooth_functions_including_poles():
    grid = HealpixGrid(16, tuple(range(12)))
    b = 16
    bb, aa = np.meshgrid(dh_betas(b), dh_alphas(b), indexing="ij")
    f = np.sin(bb) * np.cos(aa) + np.cos(bb)  # x + z
    out = DHToHealpix(grid, b)(torch.from_numpy(f).float()[None, None])[0, 0].numpy()
    v = grid.vectors()
    assert np.abs(out - (v[:, 0] + v[:, 2])).max() < 0.02


def test_resampling_commutes_with_quarter_turns():
    grid = HealpixGrid(8)
    perm = torch.from_numpy(_rotation_permutation(grid))
    b = 6
    x = torch.randn(2, 3, grid.npix)
    to_dh, to_hp = HealpixToDH(grid, b), DHToHealpix(grid, b)
    assert torch.allclose(to_dh(x[..., perm]), torch.roll(to_dh(x), b // 2, dims=-1), atol=1e-5)
    y = torch.randn(2, 3, 2 * b, 2 * b)
    assert torch.allclose(to_hp(torch.roll(y, b // 2, dims=-1)), to_hp(y)[..., perm], atol=1e-5)


# --------------------------------------------------------------- models
def test_registry_variants_and_configs():
    names = list_models("s2cnn_*")
    for n in ("s2cnn_seg_tiny", "s2cnn_seg", "s2cnn_seg_paper", "s2cnn_depth_tiny", "s2cnn_depth"):
        assert n in names
    cfg = model_config("s2cnn_seg")
    assert cfg["base_pixels"] == tuple(range(8)) and cfg["in_chans"] == 3 and cfg["task"] == "segmentation"
    with pytest.raises(ValueError, match="task"):
        create_model("s2cnn_seg_tiny", task="flow", nside=4)
    with pytest.raises(ValueError, match="equal"):
        S2CNNDense(4, bandwidths=(4, 4), features=(3,))


def test_parameter_counts():
    n_params = lambda m: sum(p.numel() for p in m.parameters())
    seg = create_model("s2cnn_seg", nside=4)
    assert 150_000 < n_params(seg) < 250_000  # "about 0.2 M", like the 2022 paper's model
    assert n_params(create_model("s2cnn_depth", nside=4)) < n_params(seg)
    # The paper schedule (b up to 50) is only constructed here, never run on CPU in CI.
    paper = create_model("s2cnn_seg_paper", nside=4)
    assert n_params(paper) == n_params(seg)
    assert [c.b_out for c in paper.so3_convs] == [35, 27, 20, 27, 35, 42] and paper.head.b_out == 50
    del paper
    wigner_d_grid.cache_clear()  # the b = 50 tables are large


@pytest.mark.parametrize("name,k", [("s2cnn_seg_tiny", 10), ("s2cnn_depth_tiny", 1)])
def test_tiny_forward_backward_shapes_and_speed(name, k):
    model = create_model(name)
    assert model.input_kind == "sphere" and isinstance(model.grid, HealpixGrid)
    x = torch.randn(2, 3, model.grid.npix)
    model(x).sum().backward()  # warm-up
    t0 = time.perf_counter()
    out = model(x)
    out.square().mean().backward()
    elapsed = time.perf_counter() - t0
    assert out.shape == (2, k, model.grid.npix) and torch.isfinite(out).all()
    assert all(p.grad is not None for p in model.parameters())
    assert elapsed < 2.0, f"forward+backward took {elapsed:.2f}s"


def test_model_equivariant_to_quarter_turns():
    torch.manual_seed(0)
    model = create_model("s2cnn_seg_tiny", nside=8, num_classes=4).eval()
    perm = torch.from_numpy(_rotation_permutation(model.grid))
    x = torch.randn(2, 3, model.grid.npix)
    with torch.no_grad():
        a, b = model(x[..., perm]), model(x)[..., perm]
    assert ((a - b).abs().max() / b.abs().max()).item() < 0.01


def test_tiny_model_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = create_model("s2cnn_seg_tiny", nside=8, num_classes=3)
    v = torch.tensor(np.array(model.grid.vectors()), dtype=torch.float32)
    x = torch.stack([v.T, v.T.flip(0)])  # two fixed inputs: the pixel directions
    y = torch.stack([(v[:, 2] > 0.3).long() + (v[:, 0] > 0).long(), 2 * (v[:, 1] > 0.2).long()])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(120):
        loss = F.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = model(x)
    acc = (out.argmax(1) == y).float().mean().item()
    assert F.cross_entropy(out, y).item() < 0.5 * first and acc > 0.8


def test_onnx_export_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    from heal_swin.export.onnx_export import check_parity, export_onnx

    torch.manual_seed(0)
    model = create_model("s2cnn_seg_tiny", nside=4, num_classes=3).eval()
    x = torch.randn(2, 3, model.grid.npix)
    path = export_onnx(model, x, tmp_path / "s2cnn.onnx")
    stats = check_parity(model, path, [x, torch.randn(3, 3, model.grid.npix)], rtol=1e-3, atol=1e-4)
    assert stats["max_abs"] < 1e-4
