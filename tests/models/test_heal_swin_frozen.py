"""The optimised HEAL-SWIN computes what commit baf9257 computed, for the same weights.

``data/heal_swin_baf9257.safetensors`` holds, for three configurations (Swin-v2 blocks with ring
shifts, Swin-v1 blocks with grid shifts on three levels, v2 with roll shifts on all 12 faces),
the weights, a batch-2 input, baf9257's eval-mode output, and the parameter gradients of
``sum(output * cotangent)`` in training mode. Every path of the current code (eager inference
with the fused kernels, the written-out training path, bfloat16) is checked against it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from heal_swin.models.heal_swin import HealSwinUNet

FROZEN = Path(__file__).parent / "data" / "heal_swin_baf9257.safetensors"


def _load(case: str) -> tuple[HealSwinUNet, dict[str, torch.Tensor]]:
    with safe_open(str(FROZEN), "pt") as f:
        cfg = ast.literal_eval(f.metadata()["cases"])[case]
        tensors = {k[len(case) + 1 :]: f.get_tensor(k) for k in f.keys() if k.startswith(case + ".")}  # noqa: SIM118 - safe_open is not iterable
    model = HealSwinUNet(**cfg)
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("state.")}
    model.load_state_dict(state, strict=True)
    return model, tensors


CASES = ["v2_ring", "v1_grid", "v2_roll12"]


@pytest.mark.parametrize("case", CASES)
def test_inference_equals_baf9257(case: str) -> None:
    model, t = _load(case)
    model.eval()
    with torch.no_grad():
        y = model(t["input"])  # eager inference: fused linear, flash attention, cached masks
        y_again = model(t["input"])  # second call runs on the cached masks
        y_one = model(t["input"][1:])  # batch 1: the unlooped fused path
    torch.testing.assert_close(y, t["output"], rtol=1e-4, atol=2e-5)
    torch.testing.assert_close(y_again, y, rtol=0, atol=0)
    torch.testing.assert_close(y_one, t["output"][1:], rtol=1e-4, atol=2e-5)
    # with gradients on, the written-out path gives the same numbers
    torch.testing.assert_close(model(t["input"]).detach(), t["output"], rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("case", CASES)
def test_gradients_equal_baf9257(case: str) -> None:
    model, t = _load(case)
    model.train()
    (model(t["input"]) * t["cotangent"]).sum().backward()
    for name, p in model.named_parameters():
        ref = t["grad." + name]
        tol = 1e-4 * ref.abs().max().item() + 1e-6
        torch.testing.assert_close(p.grad, ref, rtol=1e-3, atol=tol, msg=lambda m, n=name: f"{n}: {m}")


def test_cached_mask_follows_weight_updates() -> None:
    model, t = _load("v2_ring")
    model.eval()
    with torch.no_grad():
        before = model(t["input"])
        for blk in model.encoder[0]:
            blk.attn.relative_position_bias_table.add_(0.5)  # in place: the cache must notice
        after = model(t["input"])
    with torch.enable_grad():
        reference = model(t["input"]).detach()  # the written-out path never caches
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, reference, rtol=1e-4, atol=2e-5)


def test_cached_mask_follows_a_fused_adamw_step() -> None:
    """PyTorch's fused AdamW changes parameters without bumping their version counter; the
    inference after a training step (Lightning's validation) must still see the new bias."""
    model, t = _load("v2_ring")
    model.eval()
    with torch.no_grad():
        model(t["input"])  # fills the caches
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    model(t["input"]).square().mean().backward()
    opt.step()
    with torch.no_grad():
        after = model(t["input"])
    reference = model(t["input"]).detach()  # the written-out path never caches
    assert not torch.allclose(after, t["output"], atol=1e-3)
    torch.testing.assert_close(after, reference, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("case", CASES)
def test_bfloat16_autocast_fused_matches_written_out(case: str) -> None:
    """bf16 rounding is the only difference: the fused inference path is no worse than autocast
    over the written-out path, and both track float32 (tightly for v1 blocks; Swin-v2's cosine
    attention at temperature 10 amplifies bf16's 3-digit rounding on these random weights)."""
    model, t = _load(case)
    model.eval()
    ref = t["output"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            fused = model(t["input"]).float()
        written = model(t["input"]).float().detach()
    err_fused, err_written = (fused - ref).abs().max(), (written - ref).abs().max()
    assert err_fused <= 1.5 * err_written + 1e-3
    corr = torch.corrcoef(torch.stack([fused.flatten(), ref.flatten()]))[0, 1]
    assert corr > (0.999 if case == "v1_grid" else 0.9)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN")
def test_eager_inference_takes_the_fused_kernels() -> None:
    """The speed of eager inference rests on two kernels; losing either silently is a regression."""
    from torch.profiler import profile

    from heal_swin.models.fused import fused_inference_available

    assert fused_inference_available()
    model, t = _load("v2_ring")
    model.eval()
    with torch.no_grad(), profile() as prof:
        model(t["input"][:1])
    ops = {e.key for e in prof.key_averages()}
    assert "mkldnn::_linear_pointwise" in ops and "aten::addmm" not in ops
    assert any("flash_attention" in k for k in ops) and "aten::_safe_softmax" not in ops


def test_fused_kernel_probe_tolerates_rounding_and_rejects_a_wrong_kernel() -> None:
    import torch.nn.functional as F

    from heal_swin.models.fused import fused_kernel_agrees

    def exact(x, w, b, *_):
        return F.gelu(F.linear(x, w, b))

    def rounded(x, w, b, *_):  # what one Zen 4 CPU's oneDNN returns: ~1e-6 off
        return exact(x, w, b) + 1.1e-6

    def tanh_gelu(x, w, b, *_):
        return F.gelu(F.linear(x, w, b), approximate="tanh")

    def missing(*_):
        raise RuntimeError("no such kernel")

    assert fused_kernel_agrees(exact) and fused_kernel_agrees(rounded)
    assert not fused_kernel_agrees(tanh_gelu) and not fused_kernel_agrees(missing)


def test_cosine_normalise_gradient_is_exact() -> None:
    from heal_swin.models.fused import cosine_normalise

    x = torch.randn(3, 4, 2, 5, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(2, 1, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, s: cosine_normalise(a, s), (x, scale))
    with torch.no_grad():  # the plain formulation computes the same values
        torch.testing.assert_close(cosine_normalise(x, scale), x / x.norm(dim=-1, keepdim=True) * scale)


@pytest.mark.parametrize("case", ["v2_ring", "v1_grid"])
def test_compiled_inference_equals_baf9257_on_the_fused_attention(case: str) -> None:
    """``torch.compile`` inference (batch 2: the per-window shift mask repeats over the images) gives
    baf9257's outputs and calls the fused attention kernel, not the written-out softmax."""
    from torch.profiler import profile

    torch._dynamo.reset()
    model, t = _load(case)
    model.eval()
    compiled = torch.compile(model)
    with torch.no_grad():
        y = compiled(t["input"])
        with profile() as prof:
            compiled(t["input"])
    # inductor reorders float32 sums (the written-out attention compiled was 2.8e-5 off too)
    torch.testing.assert_close(y, t["output"], rtol=1e-4, atol=1e-4)
    ops = {e.key for e in prof.key_averages()}
    assert any("flash_attention" in k for k in ops), sorted(ops)


def test_tiled_mlp_gradient_is_exact_over_several_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    from heal_swin.models import fused

    monkeypatch.setattr(fused, "_TILE_BYTES", 1)  # the smallest tile: 64 rows, so 200 rows = 4 tiles
    assert len(fused._tiles(200, 12)) == 4
    g = torch.Generator().manual_seed(0)
    args = [
        torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True)
        for s in ((2, 100, 5), (12, 5), (12,), (5, 12), (5,))
    ]
    assert torch.autograd.gradcheck(fused.mlp_tiled, args)
    x, w1, b1, w2, b2 = args
    with torch.no_grad():  # an independent formulation of the same function
        torch.testing.assert_close(fused.mlp_tiled(*args), F.gelu(x @ w1.T + b1) @ w2.T + b2)


@pytest.mark.parametrize("case", ["v2_ring", "v1_grid"])
def test_gradients_equal_baf9257_through_the_tiled_mlp(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from heal_swin.models import fused

    monkeypatch.setattr(fused, "_TILE_FROM_BYTES", 0)  # tile even these small activations
    monkeypatch.setattr(fused, "_TILE_BYTES", 1)
    calls = []
    apply = fused._TiledMlp.apply
    monkeypatch.setattr(fused._TiledMlp, "apply", lambda *a: calls.append(1) or apply(*a))
    model, t = _load(case)
    model.train()
    (model(t["input"]) * t["cotangent"]).sum().backward()
    assert len(calls) == sum(isinstance(m, fused.Mlp) for m in model.modules())
    for name, p in model.named_parameters():
        ref = t["grad." + name]
        tol = 1e-4 * ref.abs().max().item() + 1e-6
        torch.testing.assert_close(p.grad, ref, rtol=1e-3, atol=tol, msg=lambda m, n=name: f"{n}: {m}")


def test_tiled_mlp_only_where_it_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small activations (cache-resident), active dropout, bfloat16 and inference take the plain path."""
    from heal_swin.models import fused

    mlp = fused.Mlp(8, 32)
    x = torch.randn(4, 8)
    assert not fused._tiled_applies(x, mlp)  # 4 x 32 floats: far below the threshold
    monkeypatch.setattr(fused, "_TILE_FROM_BYTES", 0)
    assert fused._tiled_applies(x, mlp)
    with torch.no_grad():
        assert not fused._tiled_applies(x, mlp)
    assert not fused._tiled_applies(x.bfloat16(), mlp)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused._tiled_applies(x, mlp)
    dropping = fused.Mlp(8, 32, drop=0.1).train()
    assert not fused._tiled_applies(x, dropping)
    assert fused._tiled_applies(x, dropping.eval())


def test_bf16_autocast_on_a_cpu_without_onednn_bf16_takes_the_plain_linear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """oneDNN cannot build a bf16 inner product without AVX512_BF16/AMX (it raises): fall back."""
    from heal_swin.models import fused

    fused.fused_inference_available()  # probed (and cached) before the kernel is replaced
    monkeypatch.setattr(fused, "onednn_bf16_available", lambda: False)

    def refuse(*a: object) -> None:
        raise AssertionError("the fused bf16 kernel was called")

    monkeypatch.setattr(fused.torch.ops.mkldnn, "_linear_pointwise", refuse, raising=False)
    lin = fused.FusedLinear(8, 16, activation="gelu")
    x = torch.randn(3, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = lin(x)
        ref = F.gelu(F.linear(x, lin.weight, lin.bias))
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, ref)
