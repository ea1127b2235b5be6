"""How far a model (or a deep ensemble) is from equivariance under exact rotations about the optical axis.

For an input x and a rotation R that permutes the model's input pixels exactly, the error is that
of f(R x) against R f(x):

- sphere models on a grid closed under quarter turns (base pixels 0-7): R = rotation by k x 90°
  about the pole (:func:`heal_swin.data.transforms.sphere_rotation_index`), k = 1, 2, 3;
- flat models: R = rotation of the model's input image by 180° about its centre
  (``torch.rot90(x, 2)``), an exact permutation of any H x W image. It is the camera's 180° roll
  about the optical axis only where the principal point is at the image centre (our synthetic
  cameras are offset by a few pixels); 90° is not a permutation of a non-square image.

Metrics (over pixels valid in both x and R x): segmentation — ``argmax_changed``, the fraction of
pixels whose argmax differs, and ``prob_tv``, the mean total-variation distance
``0.5 * sum_k |p_k(Rx) - (R p(x))_k|`` in [0, 1]; depth — ``rel_diff``, the mean of
``|d(Rx) - R d(x)| / R d(x)`` (metres). A deep ensemble is measured as the mean of its members'
probabilities (segmentation) / log-depths (depth), as :mod:`heal_swin.train.ensemble` predicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from heal_swin.data.transforms import sphere_rotation_index
from heal_swin.geometry import HealpixGrid

__all__ = ["ensemble_forward", "equivariance_error", "rotation_of", "rotations_for"]

Forward = Callable[[torch.Tensor], torch.Tensor]


def rotation_of(kind: str, k: int, grid: HealpixGrid | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exact rotation acting on the last axis (sphere, (..., N)) or last two axes (flat, (..., H, W))."""
    if kind == "sphere":
        idx = torch.from_numpy(np.array(sphere_rotation_index(grid, k), np.int64))  # a writable copy
        return lambda t: t.index_select(-1, idx.to(t.device))
    if k % 2:
        raise ValueError(f"flat models: only the 180 degree rotation (k=2) permutes the image, got k={k}")
    return lambda t: torch.rot90(t, 2, dims=(-2, -1))


def rotations_for(kind: str) -> tuple[int, ...]:
    """Quarter turns measured: 1, 2, 3 on the sphere, 2 (180°) on the flat image."""
    return (1, 2, 3) if kind == "sphere" else (2,)


def ensemble_forward(
    models: Sequence[torch.nn.Module], task: str, depth_log: tuple[float, float] = (0.0, 1.0)
) -> Forward:
    """(B, C, ...) input -> (B, K, ...) mean softmax probabilities, or (B, ...) mean log-depth (log metres).

    ``depth_log``: the models' ``(depth_log_mean, depth_log_std)``; their raw output is normalised
    log-depth ``(log d - mean) / std``.
    """
    lm, ls = float(depth_log[0]), float(depth_log[1])

    @torch.no_grad()
    def f(x: torch.Tensor) -> torch.Tensor:
        outs = [m(x).float() for m in models]
        if task == "segmentation":
            return torch.stack([torch.softmax(o, dim=1) for o in outs]).mean(0)
        return torch.stack([o[:, 0] * ls + lm for o in outs]).mean(0)

    return f


@torch.no_grad()
def equivariance_error(
    f: Forward,
    x: torch.Tensor,
    rotate: Callable[[torch.Tensor], torch.Tensor],
    task: str,
    valid: torch.Tensor | None = None,
) -> dict[str, float]:
    """Error of f(R x) vs R f(x) for a batch ``x`` (B, C, ...); ``valid`` (B, ...) bool pixels of x that see the image.

    ``f`` returns probabilities (B, K, ...) for segmentation, log-depth in log metres (B, ...) for
    depth (see :func:`ensemble_forward`).
    """
    y_rot_in = f(rotate(x))
    rot_y = rotate(f(x))
    shape = y_rot_in.shape[:1] + y_rot_in.shape[2:] if task == "segmentation" else y_rot_in.shape
    mask = torch.ones(shape, dtype=torch.bool) if valid is None else valid & rotate(valid)
    if task == "segmentation":
        changed = (y_rot_in.argmax(1) != rot_y.argmax(1))[mask]
        tv = 0.5 * (y_rot_in - rot_y).abs().sum(1)[mask]
        return {"argmax_changed": float(changed.double().mean()), "prob_tv": float(tv.double().mean())}
    a, b = torch.exp(y_rot_in.double()), torch.exp(rot_y.double())
    return {"rel_diff": float(((a - b).abs() / b)[mask].mean())}
