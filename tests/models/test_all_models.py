"""Every registered model, from ``list_models()``: forward, backward, ONNX parity, default config.

A new variant is tested here without writing a test for it. Each runs at a small size: the
variant's own depths, heads, windows, shifts, blocks and skips, on the smallest grid / image its
levels allow and at width 8 per head (Swin-UNets), or with its bandwidth schedule scaled to an
input bandwidth of 8 (S2CNN, whose cost is set by the bandwidths).
"""

from __future__ import annotations

import copy

import pytest
import torch

from heal_swin.models import create_model, list_models, model_config
from heal_swin.models.registry import IMAGENET_MEAN, IMAGENET_STD, get_variant

ALL = list_models()


def small(name: str) -> dict:
    """Overrides that shrink variant ``name`` to a few-second test size, keeping its layout."""
    cfg = model_config(name)
    kind = get_variant(name).cls.input_kind
    if "depths" in cfg:  # a Swin-UNet
        levels = len(cfg["depths"])
        o: dict = {"embed_dim": 8 * cfg["num_heads"][0]}
        if kind == "sphere":
            patch_levels = (cfg["patch_size"].bit_length() - 1) // 2
            o["nside"] = 2 ** (patch_levels + levels - 1)
        else:
            side = 2 * cfg["patch_size"] * 2 ** (levels - 1)
            o["img_size"] = (side, side)
        return o
    # S2CNN: the schedule's shape at input bandwidth 8, on nside 8.
    f = 8 / cfg["b_in"]
    b_out = cfg["b_out"] if cfg["b_out"] is not None else cfg["b_in"]
    return {
        "nside": 8,
        "b_in": 8,
        "b_out": max(2, round(b_out * f)),
        "bandwidths": tuple(max(2, round(b * f)) for b in cfg["bandwidths"]),
    }


def _input(model: torch.nn.Module, batch: int) -> torch.Tensor:
    if model.default_cfg["input_kind"] == "sphere":
        return torch.randn(batch, 3, model.grid.npix)
    return torch.randn(batch, 3, *model.img_size)


def test_every_family_is_registered() -> None:
    families = {get_variant(n).cls.__name__ for n in ALL}
    assert families == {"HealSwinUNet", "SwinUNet", "S2CNNDense"}
    assert len(ALL) >= 11


@pytest.mark.parametrize("name", ALL)
def test_default_cfg_describes_the_model(name: str) -> None:
    overrides = small(name)
    m = create_model(name, **overrides)
    cfg = m.default_cfg
    assert cfg["input_kind"] == type(m).input_kind
    assert (cfg["mean"], cfg["std"]) == (list(IMAGENET_MEAN), list(IMAGENET_STD))
    assert cfg["in_chans"] == 3 and cfg["task"] == m.task
    if cfg["input_kind"] == "sphere":
        assert (cfg["nside"], tuple(cfg["base_pixels"])) == (m.grid.nside, m.grid.base_pixels)
        assert cfg["img_size"] is None
    else:
        assert tuple(cfg["img_size"]) == m.img_size and cfg["nside"] is None


@pytest.mark.parametrize("name", ALL)
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    m = create_model(name, **small(name)).train()
    x = _input(m, 2)
    y = m(x)
    spatial = x.shape[2:]
    assert y.shape == (2, m.out_chans, *spatial) and torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    no_grad = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad
    assert sum(float(p.grad.abs().sum()) for p in m.parameters()) > 0
    # Eval mode: the fused inference path (no gradients) is as close to a float64 evaluation as
    # the written-out path is (deep random Swin-v2 stacks amplify float32 rounding to ~1e-3).
    m.eval()
    with torch.no_grad():
        fast = m(x)
    written = m(x).detach()
    exact = copy.deepcopy(m).double()(x.double()).detach()
    err_fast, err_written = (fast - exact).abs().max(), (written - exact).abs().max()
    assert err_fast <= 2 * err_written + 1e-6, (float(err_fast), float(err_written))
    assert err_written <= 1e-2 * exact.abs().max()


@pytest.mark.parametrize("name", ALL)
def test_onnx_parity(name: str, tmp_path) -> None:
    """onnxruntime runs the exported graph as accurately as torch runs the model: both are held
    against a float64 evaluation (deep random stacks amplify float32 rounding, so a fixed
    tolerance between the two float32 runs would test the seed, not the export)."""
    import numpy as np
    import onnxruntime as ort

    from heal_swin.export.onnx_export import export_onnx

    torch.manual_seed(0)
    m = create_model(name, **small(name)).eval()
    path = export_onnx(m, _input(m, 2), tmp_path / f"{name}.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exact_model = copy.deepcopy(m).double()
    for batch in (1, 3):
        x = _input(m, batch)
        with torch.no_grad():
            ours = m(x).numpy()
            exact = exact_model(x.double()).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        assert got.shape == ours.shape
        err_onnx, err_torch = np.abs(got - exact).max(), np.abs(ours - exact).max()
        scale = np.abs(exact).max()
        # Within a small factor of torch's own rounding (onnxruntime blocks its GEMMs differently);
        # a wrong graph is off by O(scale).
        assert err_onnx <= 4 * err_torch + 1e-5 * scale, (float(err_onnx), float(err_torch), float(scale))
        assert err_onnx <= 1e-2 * scale
