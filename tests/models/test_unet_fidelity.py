"""The paper-faithful options: decoder skips (``stage_input`` / ``stage_output``) and the ring-shift direction.

Skips are checked against a UNet forward written out by hand, level by level, over the model's
own submodules; the shift direction against healpy's RING numbering.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
import torch

from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.models import create_model, model_config
from heal_swin.models.hp_windows import build_shift


def _hand_forward_3_levels(m: torch.nn.Module, x: torch.Tensor, skip: str) -> torch.Tensor:
    """A 3-level Swin-UNet written out without loops: tokens -> (B, *spatial, C) at full resolution."""
    e0_in = m.patch_embed(x)
    e0_out = m.encoder[0](e0_in)
    e1_in = m.merges[0](e0_out)
    e1_out = m.encoder[1](e1_in)
    e2_in = m.merges[1](e1_out)
    bottleneck = m.norm(m.encoder[2](e2_in))
    s0, s1 = (e0_in, e1_in) if skip == "stage_input" else (e0_out, e1_out)
    d1 = m.decoder[1](m.skip_proj[1](torch.cat([m.expands[1](bottleneck), s1], dim=-1)))
    d0 = m.decoder[0](m.skip_proj[0](torch.cat([m.expands[0](d1), s0], dim=-1)))
    return m.head(m.final_expand(m.norm_up(d0)))


CASES = [
    ("heal_swin_tiny", {"nside": 8, "depths": (2, 2, 2), "num_heads": (2, 4, 8), "embed_dim": 8}),
    ("swin_unet_tiny", {"img_size": (16, 16), "depths": (2, 2, 2), "num_heads": (2, 4, 8), "embed_dim": 8}),
    (
        "swin_unet_tiny",
        {"img_size": (16, 16), "depths": (2, 2, 2), "num_heads": (2, 4, 8), "embed_dim": 8, "v2": True},
    ),
]


@pytest.mark.parametrize("name, overrides", CASES, ids=["heal", "flat-v1", "flat-v2"])
@pytest.mark.parametrize("skip", ["stage_input", "stage_output"])
def test_skip_modes_equal_a_hand_written_unet(name: str, overrides: dict, skip: str) -> None:
    torch.manual_seed(0)
    m = create_model(name, skip=skip, **overrides).eval()
    x = torch.randn(2, 3, m.grid.npix) if hasattr(m, "grid") else torch.randn(2, 3, *m.img_size)
    with torch.no_grad():
        got = m(x)
        tokens = _hand_forward_3_levels(m, x, skip)  # (B, N, K) or (B, H, W, K)
    want = tokens.transpose(1, 2) if tokens.dim() == 3 else tokens.permute(0, 3, 1, 2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, overrides", CASES[:2], ids=["heal", "flat"])
def test_skip_modes_share_weights_but_differ(name: str, overrides: dict) -> None:
    torch.manual_seed(0)
    a = create_model(name, skip="stage_output", **overrides).eval()
    b = create_model(name, skip="stage_input", **overrides).eval()
    assert a.state_dict().keys() == b.state_dict().keys()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, a.grid.npix) if hasattr(a, "grid") else torch.randn(1, 3, *a.img_size)
    with torch.no_grad():
        assert (a(x) - b(x)).abs().max() > 1e-3


def test_paper_variants_use_the_papers_skips_and_shift_direction() -> None:
    assert (
        model_config("heal_swin_paper")["skip"] == "stage_input"
        and model_config("heal_swin_paper")["shift_sign"] == "paper"
    )
    assert model_config("swin_unet_paper")["skip"] == "stage_input"
    for name in ("heal_swin_tiny", "heal_swin_small", "swin_unet_tiny", "swin_unet_small"):
        assert model_config(name)["skip"] == "stage_output", name  # unchanged variants keep their numbers
    with pytest.raises(ValueError, match="skip"):
        create_model("heal_swin_tiny", skip="encoder")
    with pytest.raises(ValueError, match="shift_sign"):
        create_model("heal_swin_tiny", shift_sign=2)


@pytest.mark.parametrize("shift", [1, 3, 8])
def test_ring_shift_direction_against_healpy(shift: int) -> None:
    """On all 12 faces the RING order is one spiral: position p takes the pixel ``shift`` rings
    indices further (ours) or earlier (``shift < 0``, the paper's code's direction)."""
    nside = 8
    grid = HealpixGrid(nside, tuple(range(12)))
    ring_of = hp.nest2ring(nside, grid.global_index)  # grid position -> RING index
    npix = grid.npix
    ours = build_shift(nside, grid.base_pixels, 64, "ring", shift)
    ref = build_shift(nside, grid.base_pixels, 64, "ring", -shift)
    np.testing.assert_array_equal(ring_of[ours.perm], (ring_of + shift) % npix)
    np.testing.assert_array_equal(ring_of[ref.perm], (ring_of - shift) % npix)
    np.testing.assert_array_equal(ref.perm, ours.inv)  # the reference's shift undoes ours


def test_shift_sign_reaches_every_shifted_block() -> None:
    a = create_model("heal_swin_tiny", nside=8, shift="ring", shift_size=2)
    b = create_model("heal_swin_tiny", nside=8, shift="ring", shift_size=2, shift_sign=-1)
    shifted = [(x, y) for x, y in zip(a.modules(), b.modules()) if getattr(x, "shift_perm", None) is not None]
    assert shifted
    for x, y in shifted:
        assert torch.equal(y.shift_perm, x.shift_inv)


@pytest.mark.parametrize(("shift", "sign"), [("ring", -1), ("roll", 1)])
def test_paper_shift_sign_is_the_paper_codes_direction_per_shift(shift: str, sign: int) -> None:
    """``shift_sign="paper"`` is the reference code's direction: ring runs backwards, roll forwards."""
    kw = {"nside": 8, "shift": shift, "shift_size": 2}
    paper = create_model("heal_swin_tiny", shift_sign="paper", **kw)
    explicit = create_model("heal_swin_tiny", shift_sign=sign, **kw)
    other = create_model("heal_swin_tiny", shift_sign=-sign, **kw)
    perms = [
        [m.shift_perm for m in net.modules() if getattr(m, "shift_perm", None) is not None]
        for net in (paper, explicit, other)
    ]
    assert perms[0] and all(torch.equal(p, q) for p, q in zip(perms[0], perms[1]))
    assert not all(torch.equal(p, q) for p, q in zip(perms[0], perms[2]))
