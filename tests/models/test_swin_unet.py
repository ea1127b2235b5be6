"""Flat Swin-UNet baseline: registry, shapes, gradients, paper config, ONNX parity."""

from __future__ import annotations

import pytest
import torch

from heal_swin.models import create_model, list_models, model_config
from heal_swin.models.swin_unet import FlatPatchExpand


def test_registry() -> None:
    assert {"swin_unet_tiny", "swin_unet_small", "swin_unet_paper"} <= set(list_models("swin_unet_*"))
    m = create_model("swin_unet_tiny", num_classes=4)
    assert m.input_kind == "flat"
    cfg = model_config("swin_unet_paper")
    flat = (cfg["img_size"], cfg["patch_size"], cfg["window_size"], cfg["shift_size"])
    assert flat == ((640, 768), 2, 8, 2)


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("img_size,depths", [((64, 64), (2, 2)), ((32, 48), (2, 2, 2))])
def test_shapes(v2: bool, batch: int, img_size, depths) -> None:
    heads = tuple(2**i for i in range(len(depths)))
    m = create_model(
        "swin_unet_tiny", img_size=img_size, depths=depths, num_heads=heads, v2=v2, num_classes=5
    )
    with torch.no_grad():
        y = m.eval()(torch.randn(batch, 3, *img_size))
    assert y.shape == (batch, 5, *img_size)
    assert torch.isfinite(y).all()


def test_shifted_blocks_use_the_requested_shift() -> None:
    m = create_model("swin_unet_tiny", img_size=(64, 64), window_size=4, shift_size=1)
    assert m.encoder[0][1].shift_size == (1, 1) and m.encoder[0][0].shift_size == (0, 0)
    assert m.encoder[0][1].attn_mask is not None  # precomputed buffer, export-ready


def test_depth_head_and_bad_size() -> None:
    m = create_model("swin_unet_tiny", task="depth", depth_log_variance=True)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)
    with pytest.raises(ValueError, match="divisible"):
        create_model("swin_unet_tiny", img_size=(62, 64))


def test_patch_expand_pixel_shuffle() -> None:
    ex = FlatPatchExpand(4, 2, factor=2).double()
    x = torch.zeros(1, 3, 3, 4, dtype=torch.float64)
    x[0, 1, 2] = torch.randn(4, dtype=torch.float64)
    nz = (ex(x)[0].abs().sum(-1) > 0).nonzero().tolist()
    assert nz == [[2, 4], [2, 5], [3, 4], [3, 5]]


@pytest.mark.parametrize("v2", [False, True])
def test_gradients_reach_every_parameter(v2: bool) -> None:
    torch.manual_seed(0)
    m = create_model("swin_unet_tiny", v2=v2, drop_path_rate=0.1, drop_rate=0.1).train()
    m(torch.randn(2, 3, 64, 64)).square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


def test_paper_parameter_count_is_close_to_heal_swin() -> None:
    with torch.device("meta"):
        flat = create_model("swin_unet_paper")
        flat_v1 = create_model("swin_unet_paper", v2=False)
    n_flat = sum(p.numel() for p in flat.parameters())
    n_v1 = sum(p.numel() for p in flat_v1.parameters())
    assert abs(n_flat - 41_279_688) / 41_279_688 < 0.01  # "same size" as HEAL-SWIN
    assert n_flat == 41_371_620 and n_v1 == 41_279_460


def test_onnx_parity_dynamic_batch(tmp_path) -> None:
    from heal_swin.export.onnx_export import check_parity, export_onnx

    torch.manual_seed(0)
    m = create_model("swin_unet_tiny", img_size=(32, 32)).eval()
    path = export_onnx(m, torch.randn(2, 3, 32, 32), tmp_path / "swin_unet_tiny.onnx")
    inputs = [torch.randn(1, 3, 32, 32), torch.randn(3, 3, 32, 32)]
    stats = check_parity(m, path, inputs, rtol=1e-3, atol=1e-4)
    assert stats["max_abs"] < 1e-4
