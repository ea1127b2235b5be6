"""HEAL window attention against timm's flat window attention (independent implementations).

A window of ``w = s*s`` nested pixels is an ``s x s`` square of its base face; nested position
``j`` sits at face coordinates ``(x, y)`` (bit de-interleave). Laid out row-major with row ``x``
and column ``y``, the same tokens form timm's flat window, and with the weights copied timm's
``WindowAttention`` (Swin-v1: scaled dot product + bias table) and the v2 one (cosine attention
with its learned temperature + continuous position bias) must compute our outputs, reordered.
The bias table is random, so swapping the roles of x and y (or any other relabelling error) fails.
"""

from __future__ import annotations

import math

import pytest
import torch
from timm.models.swin_transformer import WindowAttention
from timm.models.swin_transformer_v2 import WindowAttention as WindowAttentionV2

from heal_swin.models.hp_attention import HealWindowAttention
from heal_swin.models.hp_windows import window_face_xy


def _flat_order(window: int) -> torch.Tensor:
    """``idx`` with ``flat_tokens = nested_tokens[..., idx, :]`` (row-major, row = face x)."""
    s = math.isqrt(window)
    xy = window_face_xy(window)
    return torch.from_numpy(xy[:, 0] * s + xy[:, 1]).argsort()


def _pair(window: int, cosine: bool, dim: int = 24, heads: int = 3):
    torch.manual_seed(0)
    s = math.isqrt(window)
    ours = HealWindowAttention(dim, heads, window, cosine=cosine)
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.3)
        if cosine:
            ours.logit_scale.copy_(torch.log(torch.tensor([5.0, 10.0, 20.0])).view(3, 1, 1))
    if not cosine:
        ref = WindowAttention(dim, heads, window_size=s)
        ref.load_state_dict(
            {
                "qkv.weight": ours.qkv.weight,
                "qkv.bias": ours.qkv.bias,
                "proj.weight": ours.proj.weight,
                "proj.bias": ours.proj.bias,
                "relative_position_bias_table": ours.relative_position_bias_table,
            },
            strict=False,
        )
        return ours, ref
    ref = WindowAttentionV2(dim, window_size=(s, s), num_heads=heads)
    with torch.no_grad():
        for p in ref.cpb_mlp.parameters():
            p.normal_(0, 0.5)
        ref.qkv.weight.copy_(ours.qkv.weight)
        ours.qkv.bias[dim : 2 * dim] = 0  # timm v2 has no key bias
        ref.q_bias.copy_(ours.qkv.bias[:dim])
        ref.v_bias.copy_(ours.qkv.bias[2 * dim :])
        ref.proj.load_state_dict(ours.proj.state_dict())
        ref.logit_scale.copy_(ours.logit_scale)
        # Our table holds the bias values; timm v2 computes them from its continuous-position MLP.
        table = 16 * torch.sigmoid(ref.cpb_mlp(ref.relative_coords_table).view(-1, heads))
        ours.relative_position_bias_table.copy_(table)
    return ours, ref


@pytest.mark.parametrize("window", [4, 16, 64])
@pytest.mark.parametrize("cosine", [False, True], ids=["v1", "v2-cosine"])
@pytest.mark.parametrize("masked", [False, True])
def test_unshifted_heal_window_attention_equals_timm(window: int, cosine: bool, masked: bool) -> None:
    ours, ref = _pair(window, cosine)
    b, nw, dim = 2, 3, 24
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, nw, window, dim, generator=g)
    mask = None
    if masked:  # an additive mask per window (0 allowed, -inf not), each token may see itself
        allowed = torch.rand(nw, window, window, generator=g) > 0.4
        allowed |= torch.eye(window, dtype=torch.bool)
        mask = torch.zeros(nw, window, window).masked_fill(~allowed, float("-inf"))
    idx = _flat_order(window)
    x_flat = x[:, :, idx].reshape(b * nw, window, dim)
    mask_flat = None if mask is None else mask[:, idx][:, :, idx]
    want = ref(x_flat, mask_flat).detach().reshape(b, nw, window, dim)
    written = ours(x, mask).detach()[:, :, idx]  # training / export formulation
    with torch.no_grad():
        fused = ours(x, mask)[:, :, idx]  # eager inference (SDPA, fused linear)
    torch.testing.assert_close(written, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused, want, rtol=1e-5, atol=1e-5)


def test_transposed_layout_does_not_match() -> None:
    """The check above can fail: the flat layout with row = face y instead of x does not match."""
    ours, ref = _pair(16, cosine=False)
    s = 4
    xy = window_face_xy(16)
    wrong = torch.from_numpy(xy[:, 1] * s + xy[:, 0]).argsort()
    x = torch.randn(1, 2, 16, 24)
    want = ref(x[:, :, wrong].reshape(2, 16, 24)).detach()
    got = ours(x).detach()[:, :, wrong].reshape(2, 16, 24)
    assert (got - want).abs().max() > 1e-3
