"""HEAL-SWIN: a Swin-UNet whose windows, shifts, merging and expanding live in the NESTED index.

Carlsson et al., "HEAL-SWIN: A Vision Transformer On The Sphere", CVPR 2024.

Input ``(B, C_in, N)`` on a :class:`HealpixGrid` ``(nside, base_pixels)`` in NESTED order,
output ``(B, K, N)``: segmentation logits, or depth (1 channel, + log-variance when asked).

Levels: patch embedding turns ``patch_size`` (a power of 4) nested pixels into one token, so
level 0 lives on ``HealpixGrid(nside / sqrt(patch_size))``; each patch merging goes one step up
the quad-tree (4 nested children -> 1). Every level attends in windows of
``min(window_size, nside_l**2)`` nested tokens (:mod:`heal_swin.models.hp_windows`), every odd
block of a level in shifted windows. The decoder mirrors the encoder with patch expanding
(1 -> 4 children) and skip connections from each encoder level (its blocks' output, or with
``skip="stage_input"`` their input); the UNet skeleton is :mod:`heal_swin.models.unet`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import DropPath, trunc_normal_
from torch import nn

from heal_swin.geometry.healpix import HealpixGrid
from heal_swin.models import hp_windows
from heal_swin.models.fused import FusedLinear, Mlp, permute_tokens
from heal_swin.models.hp_attention import HealWindowAttention
from heal_swin.models.registry import register_model
from heal_swin.models.unet import SwinUNetSkeleton, drop_path_rates

__all__ = [
    "HealPatchEmbed",
    "HealPatchExpand",
    "HealPatchMerging",
    "HealStage",
    "HealSwinBlock",
    "HealSwinUNet",
    "HealWindowAttention",
]


class HealSwinBlock(nn.Module):
    """One (shifted-)window transformer block on a HEALPix level. ``(B, N, C) -> (B, N, C)``.

    ``post_norm=True`` is Swin-v2's placement ``x + LN(attn(x))``; otherwise pre-norm.
    """

    def __init__(
        self,
        grid: HealpixGrid,
        dim: int,
        num_heads: int,
        window_size: int,
        shift: str | None = None,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        cosine_attn: bool = False,
        post_norm: bool = False,
        rel_pos_bias: bool = True,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.window = hp_windows.effective_window(window_size, grid.nside)
        self.post_norm = post_norm
        spec = None
        if shift is not None:
            spec = hp_windows.build_shift(grid.nside, grid.base_pixels, self.window, shift, shift_size)
        self.shift = shift if spec is not None else None
        if spec is not None:
            self.register_buffer("shift_perm", torch.from_numpy(spec.perm.copy()), persistent=False)
            self.register_buffer("shift_inv", torch.from_numpy(spec.inv.copy()), persistent=False)
            # The additive mask (0 where attention is allowed, -inf elsewhere) is built once here,
            # not on every forward.
            allowed = None
            if spec.allowed is not None:
                allowed = torch.zeros(spec.allowed.shape).masked_fill(
                    ~torch.from_numpy(spec.allowed.copy()), float("-inf")
                )
            self.register_buffer("attn_allowed", allowed, persistent=False)
        else:
            self.shift_perm = self.shift_inv = self.attn_allowed = None
        self.norm1 = nn.LayerNorm(dim)
        self.attn = HealWindowAttention(
            dim, num_heads, self.window, qkv_bias, attn_drop, drop, cosine_attn, rel_pos_bias
        )
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift_perm is not None:
            x = permute_tokens(x, self.shift_perm, self.shift_inv)
        y = self.attn(hp_windows.window_partition(x, self.window), self.attn_allowed)
        y = hp_windows.window_reverse(y)
        if self.shift_inv is not None:
            y = permute_tokens(y, self.shift_inv, self.shift_perm)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            x = x + self.drop_path1(self.norm1(self._attend(x)))
            return x + self.drop_path2(self.norm2(self.mlp(x)))
        x = x + self.drop_path1(self._attend(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))

    def extra_repr(self) -> str:
        return f"nside={self.grid.nside}, window={self.window}, shift={self.shift}"


class HealStage(nn.Sequential):
    """``depth`` blocks on one level; odd blocks use shifted windows."""

    def __init__(
        self, grid: HealpixGrid, dim: int, depth: int, num_heads: int, drop_path: Sequence[float], **kw
    ) -> None:
        shift, shift_size = kw.pop("shift"), kw.pop("shift_size")
        super().__init__(
            *[
                HealSwinBlock(
                    grid,
                    dim,
                    num_heads,
                    shift=shift if i % 2 else None,
                    shift_size=shift_size,
                    drop_path=drop_path[i],
                    **kw,
                )
                for i in range(depth)
            ]
        )


class HealPatchEmbed(nn.Module):
    """``(B, C_in, N) -> (B, N / p, D)``: ``p`` consecutive nested pixels -> one token."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, norm: bool = False) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = FusedLinear(in_chans * patch_size, embed_dim)
        self.norm = nn.LayerNorm(embed_dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        x = x.reshape(b, c, n // self.patch_size, self.patch_size).permute(0, 2, 1, 3)
        return self.norm(self.proj(x.reshape(b, n // self.patch_size, c * self.patch_size)))


class HealPatchMerging(nn.Module):
    """``(B, N, C) -> (B, N / 4, 2C)``: the 4 nested children of each parent, LN, Linear 4C -> 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = FusedLinear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return self.reduction(self.norm(x.reshape(b, n // 4, 4 * c)))


class HealPatchExpand(nn.Module):
    """``(B, N, C) -> (B, N * f, C_out)``: Linear C -> f * C_out, split into the f nested children, LN."""

    def __init__(self, dim: int, out_dim: int, factor: int = 4) -> None:
        super().__init__()
        self.factor = factor
        self.out_dim = out_dim
        self.expand = FusedLinear(dim, factor * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return self.norm(self.expand(x).reshape(b, n * self.factor, self.out_dim))


class HealSwinUNet(SwinUNetSkeleton):
    """HEAL-SWIN UNet. ``(B, in_chans, N) -> (B, out_chans, N)`` on ``HealpixGrid(nside, base_pixels)``.

    The defaults are Swin-T's sizes (embed 96, depths 2-2-6-2, heads 3-6-12-24) with HEAL-SWIN's
    windows (64 nested tokens, ring shift 4); registry variants state what they change.

    Args:
        nside, base_pixels: the input grid (NESTED).
        in_chans: input channels.
        task: ``"segmentation"`` (``num_classes`` logits) or ``"depth"`` (1 channel, or 2 with
            ``depth_log_variance``: depth and its log-variance). ``out_chans`` overrides both.
        patch_size: nested pixels per token (a power of 4).
        window_size: tokens per window (a power of 4), capped at one base face per level.
        shift: ``"ring"``, ``"grid"``, ``"roll"`` or None (no shifted windows).
        shift_size: ring / nested positions for ``ring`` / ``roll`` (capped at half a window).
        shift_sign: direction of ``ring`` / ``roll``: +1, a window position takes the token
            ``shift_size`` places further along the order (ours); -1 the other way; ``"paper"``
            the HEAL-SWIN paper code's direction for the chosen shift (``ring`` -1, ``roll`` +1).
        embed_dim, depths, num_heads, mlp_ratio, qkv_bias: Swin sizes; the decoder mirrors
            ``depths`` / ``num_heads`` except at the bottleneck.
        drop_rate, attn_drop_rate, drop_path_rate: dropout, attention dropout, stochastic depth
            (linearly increasing over the encoder's blocks; the decoder reuses the level's rates).
        cosine_attn, post_norm: Swin-v2 scaled cosine attention and post-norm placement.
        rel_pos_bias: relative position bias on the window's face coordinates.
        patch_norm: LayerNorm after the patch embedding.
        skip: decoder skips from each encoder level's ``"stage_output"`` or ``"stage_input"``
            (the paper's code and Swin-Unet), see :mod:`heal_swin.models.unet`.
    """

    input_kind = "sphere"

    def __init__(
        self,
        nside: int = 32,
        base_pixels: Sequence[int] = tuple(range(8)),
        in_chans: int = 3,
        num_classes: int = 10,
        task: str = "segmentation",
        out_chans: int | None = None,
        depth_log_variance: bool = False,
        patch_size: int = 4,
        window_size: int = 64,
        shift: str | None = "ring",
        shift_size: int = 4,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        cosine_attn: bool = False,
        post_norm: bool = False,
        rel_pos_bias: bool = True,
        patch_norm: bool = False,
        skip: str = "stage_output",
        shift_sign: int | str = 1,
    ) -> None:
        super().__init__()
        if task not in ("segmentation", "depth"):
            raise ValueError(f"task: expected 'segmentation' or 'depth', got {task!r}")
        if shift is not None and shift not in hp_windows.SHIFT_METHODS:
            raise ValueError(f"shift: expected one of {hp_windows.SHIFT_METHODS} or None, got {shift!r}")
        if shift_sign == "paper":
            shift_sign = -1 if shift == "ring" else 1
        if shift_sign not in (1, -1):
            raise ValueError(f"shift_sign: expected 1, -1 or 'paper', got {shift_sign!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        if not hp_windows._is_power_of_4(int(patch_size)):
            raise ValueError(f"patch_size: expected a power of 4, got {patch_size}")
        hp_windows.effective_window(window_size, 1)  # validates window_size
        self.grid = HealpixGrid(nside, tuple(base_pixels))
        levels = len(depths)
        patch_levels = (int(patch_size).bit_length() - 1) // 2
        if self.grid.order < patch_levels + levels - 1:
            raise ValueError(
                f"nside {nside} is too small for patch_size {patch_size} and {levels} levels: "
                f"need nside >= {2 ** (patch_levels + levels - 1)}"
            )
        self.task = task
        if out_chans is None:
            out_chans = num_classes if task == "segmentation" else 1 + int(depth_log_variance)
        self.out_chans = out_chans
        self.in_chans = in_chans
        self.grids = [self.grid.coarser(patch_levels + i) for i in range(levels)]
        dims = [embed_dim * 2**i for i in range(levels)]
        dpr_at = drop_path_rates(depths, drop_path_rate)
        kw = {
            "window_size": window_size,
            "shift": shift,
            "shift_size": shift_size * shift_sign,
            "mlp_ratio": mlp_ratio,
            "qkv_bias": qkv_bias,
            "drop": drop_rate,
            "attn_drop": attn_drop_rate,
            "cosine_attn": cosine_attn,
            "post_norm": post_norm,
            "rel_pos_bias": rel_pos_bias,
        }
        self._build_unet(
            skip=skip,
            patch_embed=lambda: HealPatchEmbed(in_chans, embed_dim, patch_size, norm=patch_norm),
            drop_rate=drop_rate,
            dims=dims,
            stage=lambda i: HealStage(self.grids[i], dims[i], depths[i], num_heads[i], dpr_at[i], **kw),
            merge=lambda i: HealPatchMerging(dims[i - 1]),
            expand=lambda i: HealPatchExpand(dims[i + 1], dims[i]),
            final_expand=lambda: HealPatchExpand(embed_dim, embed_dim, factor=patch_size),
            linear=FusedLinear,
            out_chans=out_chans,
        )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, N) -> (B, out_chans, N)``."""
        x = self.forward_decoder(*self.forward_features(x))
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():
            # (K, C) @ (B, C, N): the logits come out channel-first, without a transposing copy
            # (inner dimension K) before the loss and again in the backward.
            return torch.matmul(self.head.weight, x.transpose(1, 2))
        return self.head(x).transpose(1, 2)


# Variants: what each changes from HealSwinUNet's defaults (Swin-T sizes, window 64, ring shift 4).
register_model(
    "heal_swin_tiny",
    HealSwinUNet,
    "Tiny HEAL-SWIN for tests and CPU runs (~30 k parameters): 2 levels, embed 16, window 16.",
    nside=16,
    window_size=16,
    shift_size=2,
    embed_dim=16,
    depths=(2, 2),
    num_heads=(2, 4),
    mlp_ratio=2.0,
    drop_path_rate=0.0,
    cosine_attn=True,
    post_norm=True,
)
register_model(
    "heal_swin_small",
    HealSwinUNet,
    "Small HEAL-SWIN (3 levels, embed 48, window 64): quick experiments on one GPU.",
    nside=64,
    embed_dim=48,
    depths=(2, 2, 2),
    num_heads=(3, 6, 12),
    cosine_attn=True,
    post_norm=True,
)
register_model(
    "heal_swin_paper",
    HealSwinUNet,
    "The paper's WoodScape configuration (41,279,688 parameters with 3 inputs, 10 classes): Swin-v2 blocks, "
    "dropout 0.1, the paper code's skips (each encoder stage's input) and shift directions.",
    nside=256,
    drop_rate=0.1,
    attn_drop_rate=0.1,
    cosine_attn=True,
    post_norm=True,
    skip="stage_input",
    shift_sign="paper",
)
