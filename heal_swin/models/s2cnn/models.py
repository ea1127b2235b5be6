"""S2CNN segmentation / depth models with HEALPix input and output, and their registry variants.

HEALPix ``(B, C_in, N)`` -> DH grid (bandwidth ``b_in``) -> S2Convolution -> SO3Convolutions
(bandwidth schedule: decreasing then increasing; lowering the bandwidth is the pooling) ->
SO3ToS2 head (bandwidth ``b_out``) -> HEALPix ``(B, K, N)``. ReLU between layers, applied
pointwise on the grid. This follows the segmentation model of Gerken et al. (ICML 2022).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from heal_swin.geometry.healpix import DEFAULT_BASE_PIXELS, HealpixGrid

from ..registry import register_model
from .layers import S2Convolution, SO3Convolution, SO3ToS2
from .resample import DHToHealpix, HealpixToDH
from .so3 import s2_near_identity_grid, so3_near_identity_grid

__all__ = ["S2CNNDense"]

_TASKS = ("segmentation", "depth")


class S2CNNDense(nn.Module):
    """Rotation-equivariant dense prediction on a camera's HEALPix grid.

    Args:
        nside, base_pixels: the HEALPix grid of inputs and outputs.
        in_chans: input channels C_in.
        out_chans: output channels K; default ``num_classes`` for ``task="segmentation"``, 1 for
            ``"depth"``.
        b_in: bandwidth of the DH grid the input is resampled to.
        bandwidths: output bandwidth of the S2 convolution followed by that of each SO(3)
            convolution (so ``len(bandwidths) - 1`` SO(3) convolutions).
        features: channels after each of those layers (same length as ``bandwidths``).
        b_out: bandwidth of the S2 output grid before resampling back to HEALPix (default b_in).
        s2_grid, so3_grid: kernel grid parameters (keyword arguments of
            :func:`.so3.s2_near_identity_grid` / :func:`.so3.so3_near_identity_grid`).

    Shapes: ``(B, in_chans, N)`` -> ``(B, out_chans, N)``, ``N = grid.npix``. The defaults are
    ``s2cnn_seg``: the 2022 paper's layout at about half its bandwidths.
    """

    input_kind = "sphere"

    def __init__(
        self,
        nside: int = 256,
        base_pixels: Sequence[int] = DEFAULT_BASE_PIXELS,
        in_chans: int = 3,
        out_chans: int | None = None,
        b_in: int = 24,
        bandwidths: Sequence[int] = (20, 16, 12, 8, 12, 16, 20),
        features: Sequence[int] = (11, 12, 13, 14, 13, 12, 11),
        b_out: int | None = None,
        s2_grid: dict | None = None,
        so3_grid: dict | None = None,
        num_classes: int = 10,
        task: str = "segmentation",
    ) -> None:
        super().__init__()
        if task not in _TASKS:
            raise ValueError(f"task: expected one of {_TASKS}, got {task!r}")
        self.task = task
        if out_chans is None:
            out_chans = num_classes if task == "segmentation" else 1
        bandwidths, features = tuple(int(b) for b in bandwidths), tuple(int(f) for f in features)
        if len(bandwidths) < 1 or len(bandwidths) != len(features):
            raise ValueError(
                f"bandwidths and features: expected equal non-zero lengths, got {len(bandwidths)} and {len(features)}"
            )
        self.grid = HealpixGrid(nside, tuple(base_pixels))
        self.in_chans, self.out_chans = in_chans, out_chans
        self.b_in = int(b_in)
        self.b_out = self.b_in if b_out is None else int(b_out)
        self.bandwidths, self.features = bandwidths, features
        g2 = s2_near_identity_grid(**(s2_grid or {}))
        g3 = so3_near_identity_grid(**(so3_grid or {}))

        self.to_dh = HealpixToDH(self.grid, self.b_in)
        self.s2_conv = S2Convolution(in_chans, features[0], self.b_in, bandwidths[0], grid=g2)
        self.so3_convs = nn.ModuleList(
            SO3Convolution(features[i], features[i + 1], bandwidths[i], bandwidths[i + 1], grid=g3)
            for i in range(len(bandwidths) - 1)
        )
        self.head = SO3ToS2(features[-1], out_chans, bandwidths[-1], self.b_out, grid=g2)
        self.to_healpix = DHToHealpix(self.grid, self.b_out)

    def forward_dh(self, x: torch.Tensor) -> torch.Tensor:
        """DH input ``(B, C_in, 2b_in, 2b_in)`` -> DH output ``(B, K, 2b_out, 2b_out)``."""
        x = F.relu(self.s2_conv(x))
        for conv in self.so3_convs:
            x = F.relu(conv(x))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_healpix(self.forward_dh(self.to_dh(x)))


# Variants: what each changes from S2CNNDense's defaults (nside 256, DH bandwidths 24 -> 20 ... 8 ... 20 -> 24).
_TINY = {"nside": 32, "b_in": 8, "bandwidths": (6, 4, 6), "features": (6, 8, 6), "b_out": 8}
register_model(
    "s2cnn_seg_tiny", S2CNNDense, "Smallest variant (tests, quickstart): DH b 8 -> 6 -> 4 -> 6 -> 8.", **_TINY
)
register_model(
    "s2cnn_seg",
    S2CNNDense,
    "The 2022 paper's layout (~0.18 M parameters) at about half its bandwidths (CPU-friendly).",
)
register_model(
    "s2cnn_seg_paper",
    S2CNNDense,
    "Gerken et al. 2022 schedule: S2Conv 50->42, SO3Convs 42,35,27,20,27,35,42, SO3->S2 to 50 (GPU-sized).",
    b_in=50,
    bandwidths=(42, 35, 27, 20, 27, 35, 42),
    b_out=50,
)
register_model(
    "s2cnn_depth_tiny", S2CNNDense, "s2cnn_seg_tiny with a 1-channel depth head.", task="depth", **_TINY
)
register_model("s2cnn_depth", S2CNNDense, "s2cnn_seg with a 1-channel depth head.", task="depth")
