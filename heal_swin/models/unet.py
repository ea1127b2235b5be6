"""The Swin-UNet skeleton shared by HEAL-SWIN and the flat Swin-UNet.

Patch embedding -> encoder levels (level ``i`` = [patch merging from level ``i-1``] + blocks) ->
norm -> decoder levels from the deepest but one up (patch expanding, concatenate the level's
skip, Linear ``2C -> C``, blocks) -> norm -> final patch expanding -> per-token head. The
families differ only in their token layout and blocks, which they pass in as modules.

``skip`` picks what the decoder gets from encoder level ``i``:

* ``"stage_output"``: the output of the level's blocks (ours until now);
* ``"stage_input"``: the input of the level's blocks, i.e. the patch embedding (level 0) or the
  patch merging's output. This is what Swin-Unet (Cao et al. 2021) and the HEAL-SWIN paper's
  code do (their encoder layer is "blocks, then merging", and the skip is taken before it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["SKIP_MODES", "SwinUNetSkeleton", "drop_path_rates"]

SKIP_MODES: tuple[str, ...] = ("stage_output", "stage_input")


def drop_path_rates(depths: Sequence[int], rate: float) -> list[list[float]]:
    """Stochastic-depth rate of every encoder block, linear over all blocks, grouped by level."""
    dpr = np.linspace(0, rate, sum(depths)).tolist()  # numpy: also works under a meta device
    return [dpr[sum(depths[:i]) : sum(depths[: i + 1])] for i in range(len(depths))]


class SwinUNetSkeleton(nn.Module):
    """Holds and runs the UNet; subclasses build the parts with :meth:`_build_unet`.

    Tokens are ``(B, *spatial, C)`` throughout; concatenation and projections act on the last dim.
    """

    skip: str
    #: Parameter-name parts that are never weight-decayed (besides all 1-D parameters).
    no_decay_keywords: tuple[str, ...] = ("relative_position_bias_table", "logit_scale")

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """fnmatch patterns of parameters timm's optimizer factory leaves out of weight decay."""
        return {f"*{k}*" for k in self.no_decay_keywords}

    def _build_unet(
        self,
        *,
        skip: str,
        patch_embed: Callable[[], nn.Module],
        drop_rate: float,
        dims: Sequence[int],
        stage: Callable[[int], nn.Module],
        merge: Callable[[int], nn.Module],
        expand: Callable[[int], nn.Module],
        final_expand: Callable[[], nn.Module],
        linear: Callable[..., nn.Module],
        out_chans: int,
    ) -> None:
        """Builds and registers the parts, in a fixed order: parameter names are the model files'
        format, and construction order decides which random numbers initialise what (so a seed
        gives the same model as before). ``stage(i)`` builds level ``i``'s blocks, ``merge(i)``
        merges level ``i-1`` into level ``i``, ``expand(i)`` expands level ``i+1`` into ``i``;
        the other factories take no argument."""
        if skip not in SKIP_MODES:
            raise ValueError(f"skip: expected one of {SKIP_MODES}, got {skip!r}")
        self.skip = skip
        levels = len(dims)
        self.patch_embed = patch_embed()
        self.pos_drop = nn.Dropout(drop_rate)
        self.merges = nn.ModuleList([merge(i) for i in range(1, levels)])
        self.encoder = nn.ModuleList([stage(i) for i in range(levels)])
        self.norm = nn.LayerNorm(dims[-1])
        self.expands = nn.ModuleList([expand(i) for i in range(levels - 1)])
        self.skip_proj = nn.ModuleList([linear(2 * dims[i], dims[i]) for i in range(levels - 1)])
        self.decoder = nn.ModuleList([stage(i) for i in range(levels - 1)])
        self.norm_up = nn.LayerNorm(dims[0])
        self.final_expand = final_expand()
        self.head = linear(dims[0], out_chans, bias=False)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Input -> (normalised bottleneck tokens, the skip of every level but the deepest)."""
        x = self.pos_drop(self.patch_embed(x))
        skips = []
        for i, stage in enumerate(self.encoder):
            if i > 0:
                x = self.merges[i - 1](x)
            if self.skip == "stage_input":
                skips.append(x)
            x = stage(x)
            if self.skip == "stage_output":
                skips.append(x)
        return self.norm(x), skips[:-1]

    def forward_decoder(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """Bottleneck tokens + skips -> full-resolution tokens ``(B, *spatial, embed_dim)``."""
        for i in reversed(range(len(self.decoder))):
            x = self.expands[i](x)
            x = self.skip_proj[i](torch.cat([x, skips[i]], dim=-1))
            x = self.decoder[i](x)
        return self.final_expand(self.norm_up(x))
