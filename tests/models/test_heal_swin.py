"""HEAL-SWIN model: registry, shapes, gradients, overfitting, parameter count, ONNX parity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.models import create_model, list_models, model_config
from heal_swin.models.heal_swin import HealSwinUNet

TWELVE = tuple(range(12))


def test_registry_and_attributes() -> None:
    assert {"heal_swin_tiny", "heal_swin_small", "heal_swin_paper"} <= set(list_models("heal_swin_*"))
    m = create_model("heal_swin_tiny", nside=32, num_classes=7)
    assert m.input_kind == "sphere"
    assert m.grid == HealpixGrid(32, tuple(range(8)))
    assert m.model_config["nside"] == 32
    assert m(torch.randn(1, 3, m.grid.npix)).shape == (1, 7, m.grid.npix)


def test_paper_config_and_parameter_count() -> None:
    cfg = model_config("heal_swin_paper")
    expected = {
        "nside": 256,
        "patch_size": 4,
        "window_size": 64,
        "shift": "ring",
        "shift_size": 4,
        "embed_dim": 96,
        "depths": (2, 2, 6, 2),
        "num_heads": (3, 6, 12, 24),
        "mlp_ratio": 4.0,
        "drop_rate": 0.1,
        "attn_drop_rate": 0.1,
        "drop_path_rate": 0.1,
        "cosine_attn": True,
        "post_norm": True,
    }
    for k, v in expected.items():
        assert cfg[k] == v, k
    assert tuple(cfg["base_pixels"]) == tuple(range(8))
    m = create_model("heal_swin_paper")  # built, never run
    assert sum(p.numel() for p in m.parameters()) == 41_279_688  # the reference's count
    # Windows at every level are quad-tree nodes of 64 tokens (the bottleneck: nside 16).
    assert [b.window for b in m.encoder[3]] == [64, 64]
    assert m.encoder[3][0].grid.nside == 16


SHAPE_CASES = [
    # nside, base, window, shift, patch, depths
    (8, tuple(range(8)), 16, "ring", 4, (2, 2)),
    (8, TWELVE, 64, "grid", 4, (2, 2)),
    (16, TWELVE, 4, "roll", 4, (2, 2, 2)),
    (16, (0, 5, 10), 64, "ring", 1, (1, 1, 1, 1)),
    (32, tuple(range(8)), 64, "grid", 4, (2, 2, 2)),
    (32, TWELVE, 16, None, 16, (1, 1)),
    (4, TWELVE, 64, "ring", 1, (2, 2, 2)),  # bottleneck nside 1: one token per face
]


@pytest.mark.parametrize("nside,base,window,shift,patch,depths", SHAPE_CASES)
@pytest.mark.parametrize("batch", [1, 3])
def test_shapes(nside, base, window, shift, patch, depths, batch) -> None:
    heads = tuple(2**i for i in range(len(depths)))
    m = create_model(
        "heal_swin_tiny",
        nside=nside,
        base_pixels=base,
        window_size=window,
        shift=shift,
        patch_size=patch,
        depths=depths,
        num_heads=heads,
        embed_dim=8,
        num_classes=5,
    ).eval()
    n = len(base) * nside**2
    with torch.no_grad():
        y = m(torch.randn(batch, 3, n))
    assert y.shape == (batch, 5, n)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("nside", [64, 128, 256])
def test_shapes_large_nside_small_model(nside: int) -> None:
    m = create_model(
        "heal_swin_tiny",
        nside=nside,
        patch_size=16,
        embed_dim=8,
        num_heads=(1, 2),
        window_size=64,
        shift="ring",
        shift_size=4,
    ).eval()
    with torch.no_grad():
        y = m(torch.randn(1, 3, m.grid.npix))
    assert y.shape == (1, 10, m.grid.npix)


@pytest.mark.parametrize("log_var,out", [(False, 1), (True, 2)])
def test_depth_head(log_var: bool, out: int) -> None:
    m = create_model("heal_swin_tiny", nside=8, task="depth", depth_log_variance=log_var)
    assert m(torch.randn(2, 3, m.grid.npix)).shape == (2, out, m.grid.npix)


def test_invalid_configs() -> None:
    with pytest.raises(ValueError, match="too small"):
        HealSwinUNet(nside=4, patch_size=16, depths=(2, 2), num_heads=(1, 2))
    with pytest.raises(ValueError, match="shift"):
        create_model("heal_swin_tiny", shift="spiral")
    with pytest.raises(ValueError, match="power of 4"):
        create_model("heal_swin_tiny", window_size=8)


@pytest.mark.parametrize("shift,cosine,post_norm", [("ring", True, True), ("grid", False, False)])
def test_gradients_reach_every_parameter(shift, cosine, post_norm) -> None:
    torch.manual_seed(0)
    m = create_model(
        "heal_swin_tiny",
        nside=8,
        shift=shift,
        cosine_attn=cosine,
        post_norm=post_norm,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        drop_path_rate=0.1,
    )
    m.train()
    y = m(torch.randn(2, 3, m.grid.npix))
    y.square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


def test_tiny_model_overfits_a_fixed_batch() -> None:
    # ~150 Adam steps, ~4 s on an idle 2-core CPU. Bounded by steps, not wall-clock time, so
    # a busy runner cannot make it flaky.
    torch.manual_seed(0)
    m = create_model("heal_swin_tiny", nside=4, num_classes=4)
    x = torch.randn(2, 3, m.grid.npix)
    target = torch.randint(0, 4, (2, m.grid.npix))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] <= 0.1 * losses[0]:
            break
    assert losses[-1] <= 0.1 * losses[0], (losses[0], losses[-1], len(losses))


def test_buffers_are_not_in_state_dict() -> None:
    m = create_model("heal_swin_tiny", nside=8)
    keys = m.state_dict().keys()
    assert not [k for k in keys if "shift_" in k or "attn_allowed" in k or "relative_position_index" in k]
    buffers = dict(m.named_buffers())
    assert any(k.endswith("shift_perm") for k in buffers)


def test_onnx_parity_dynamic_batch(tmp_path) -> None:
    from heal_swin.export.onnx_export import check_parity, export_onnx

    torch.manual_seed(0)
    m = create_model("heal_swin_tiny", nside=8, base_pixels=TWELVE, shift="ring").eval()
    n = m.grid.npix
    path = export_onnx(m, torch.randn(2, 3, n), tmp_path / "heal_swin_tiny.onnx")
    stats = check_parity(m, path, [torch.randn(1, 3, n), torch.randn(3, 3, n)], rtol=1e-3, atol=1e-4)
    assert stats["max_abs"] < 1e-4
