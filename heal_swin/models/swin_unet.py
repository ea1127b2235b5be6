"""Flat Swin-UNet baseline on ``(B, C, H, W)`` images, built on timm's Swin blocks.

The same UNet design as :mod:`heal_swin.models.heal_swin` (patch embedding, windowed blocks with
every odd block shifted, patch merging, mirrored decoder with patch expanding and skip
connections, per-pixel head) with flat windows: timm's ``SwinTransformerBlock`` (v1: pre-norm,
relative position bias table) or ``SwinTransformerV2Block`` (``v2=True``: scaled cosine attention,
post-norm, continuous position bias). timm's stage class is not used because it fixes the shift
at half a window, while the paper's flat model uses window 8 with shift 2.
Blocks precompute their shift masks for the fixed ``img_size`` (export-ready).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import PatchEmbed, trunc_normal_
from timm.models.swin_transformer import PatchMerging, SwinTransformerBlock
from timm.models.swin_transformer_v2 import SwinTransformerV2Block
from torch import nn

from heal_swin.models.registry import register_model
from heal_swin.models.unet import SwinUNetSkeleton, drop_path_rates

__all__ = ["FlatPatchExpand", "SwinUNet"]


class FlatPatchExpand(nn.Module):
    """``(B, H, W, C) -> (B, f*H, f*W, C_out)``: Linear C -> f*f*C_out, pixel-shuffle, LN."""

    def __init__(self, dim: int, out_dim: int, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.out_dim = out_dim
        self.expand = nn.Linear(dim, factor * factor * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        f = self.factor
        x = self.expand(x).reshape(b, h, w, f, f, self.out_dim).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(b, h * f, w * f, self.out_dim))


class SwinUNet(SwinUNetSkeleton):
    """Flat Swin-UNet. ``(B, in_chans, H, W) -> (B, out_chans, H, W)`` for a fixed ``img_size``.

    The defaults are Swin-T's sizes with the paper's flat windows (8, shift 2) and v1 blocks;
    registry variants state what they change.

    Args:
        img_size: ``(H, W)``; each level's size must divide by 2 (``H / patch / 2**(levels-1)``).
        task / num_classes / out_chans / depth_log_variance: as in ``HealSwinUNet``.
        patch_size: pixels per token side; window_size / shift_size: flat window side and shift.
        v2: timm's Swin-v2 blocks (cosine attention, post-norm) instead of v1.
        skip: ``"stage_output"`` or ``"stage_input"`` (Swin-Unet's), see :mod:`heal_swin.models.unet`.
    """

    input_kind = "flat"
    no_decay_keywords = (
        "relative_position_bias_table",
        "logit_scale",
        "cpb_mlp",
    )  # cpb_mlp: Swin-v2's bias MLP

    def __init__(
        self,
        img_size: Sequence[int] = (64, 64),
        in_chans: int = 3,
        num_classes: int = 10,
        task: str = "segmentation",
        out_chans: int | None = None,
        depth_log_variance: bool = False,
        patch_size: int = 2,
        window_size: int = 8,
        shift_size: int = 2,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        v2: bool = False,
        skip: str = "stage_output",
    ) -> None:
        super().__init__()
        if task not in ("segmentation", "depth"):
            raise ValueError(f"task: expected 'segmentation' or 'depth', got {task!r}")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        img_size = tuple(int(s) for s in img_size)
        levels = len(depths)
        step = patch_size * 2 ** (levels - 1)
        if img_size[0] % step or img_size[1] % step:
            raise ValueError(f"img_size {img_size} must be divisible by patch_size * 2**(levels-1) = {step}")
        self.img_size = img_size
        self.task = task
        if out_chans is None:
            out_chans = num_classes if task == "segmentation" else 1 + int(depth_log_variance)
        self.out_chans = out_chans
        self.in_chans = in_chans
        res = [(img_size[0] // patch_size >> i, img_size[1] // patch_size >> i) for i in range(levels)]
        dims = [embed_dim * 2**i for i in range(levels)]
        dpr_at = drop_path_rates(depths, drop_path_rate)
        block_cls = SwinTransformerV2Block if v2 else SwinTransformerBlock

        def stage(i: int) -> nn.Sequential:
            return nn.Sequential(
                *[
                    block_cls(
                        dim=dims[i],
                        input_resolution=res[i],
                        num_heads=num_heads[i],
                        window_size=window_size,
                        shift_size=shift_size if j % 2 else 0,
                        mlp_ratio=mlp_ratio,
                        qkv_bias=qkv_bias,
                        proj_drop=drop_rate,
                        attn_drop=attn_drop_rate,
                        drop_path=dpr_at[i][j],
                    )
                    for j in range(depths[i])
                ]
            )

        self._build_unet(
            skip=skip,
            patch_embed=lambda: PatchEmbed(img_size, patch_size, in_chans, embed_dim, output_fmt="NHWC"),
            drop_rate=drop_rate,
            dims=dims,
            stage=stage,
            merge=lambda i: PatchMerging(dims[i - 1], dims[i]),
            expand=lambda i: FlatPatchExpand(dims[i + 1], dims[i]),
            final_expand=lambda: FlatPatchExpand(embed_dim, embed_dim, factor=patch_size),
            linear=nn.Linear,
            out_chans=out_chans,
        )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W) -> (B, out_chans, H, W)``."""
        x = self.forward_decoder(*self.forward_features(x))  # tokens (B, H, W, C)
        return self.head(x).permute(0, 3, 1, 2)


# Variants: what each changes from SwinUNet's defaults (Swin-T sizes, window 8, shift 2, v1 blocks).
register_model(
    "swin_unet_tiny",
    SwinUNet,
    "Tiny flat Swin-UNet for tests and CPU runs.",
    window_size=4,
    embed_dim=16,
    depths=(2, 2),
    num_heads=(2, 4),
    mlp_ratio=2.0,
    drop_path_rate=0.0,
)
register_model(
    "swin_unet_small",
    SwinUNet,
    "Small flat Swin-UNet (3 levels, embed 48), the flat counterpart of heal_swin_small.",
    img_size=(320, 384),
    embed_dim=48,
    depths=(2, 2, 2),
    num_heads=(3, 6, 12),
    v2=True,
)
register_model(
    "swin_unet_paper",
    SwinUNet,
    "The paper's flat baseline: 640x768 input, patch 2, window 8, shift 2, Swin-v2 blocks, Swin-Unet's skips.",
    img_size=(640, 768),
    drop_rate=0.1,
    attn_drop_rate=0.1,
    v2=True,
    skip="stage_input",
)
