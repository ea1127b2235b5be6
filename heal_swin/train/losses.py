"""Losses: class-weighted cross-entropy for segmentation, normalised log-depth regression."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DepthLoss", "DepthNormalizer", "SegmentationLoss", "class_weights_from_counts"]


def class_weights_from_counts(
    counts: np.ndarray, method: Literal["inverse_log", "median_frequency", "none"] = "inverse_log"
) -> torch.Tensor:
    """Per-class weights from training-set pixel counts ``(K,)``.

    ``inverse_log`` is ENet's ``1 / ln(1.02 + p)`` (bounded, so rare classes do not explode);
    ``median_frequency`` is ``median(p) / p``. Classes absent from the training set get weight 0.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.sum() <= 0:
        raise ValueError(
            f"counts: expected a 1-D array with a positive sum, got shape {c.shape}, sum {c.sum()}"
        )
    p = c / c.sum()
    if method == "none":
        w = np.ones_like(p)
    elif method == "inverse_log":
        w = 1.0 / np.log(1.02 + p)
    elif method == "median_frequency":
        w = np.where(p > 0, np.median(p[p > 0]) / np.where(p > 0, p, 1), 0.0)
    else:
        raise ValueError(f"method: expected inverse_log, median_frequency or none, got {method!r}")
    w = np.where(c > 0, w, 0.0)
    return torch.as_tensor(w / w[c > 0].mean(), dtype=torch.float32)


class SegmentationLoss(nn.Module):
    """Cross-entropy over ``(B, K, ...)`` logits and ``(B, ...)`` targets, ignoring ``ignore_index``."""

    def __init__(
        self, weights: torch.Tensor | None = None, ignore_index: int = 255, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.register_buffer("weights", weights if weights is not None else None, persistent=False)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if bool((target != self.ignore_index).any()):
            return F.cross_entropy(
                logits,
                target,
                weight=self.weights,
                ignore_index=self.ignore_index,
                label_smoothing=self.label_smoothing,
            )
        return logits.sum() * 0.0  # an all-ignored batch: zero loss, graph kept for DDP


class DepthNormalizer:
    """Metres <-> standardised log-depth ``z = (ln d - mean) / std``; the model predicts ``z``."""

    def __init__(self, log_mean: float, log_std: float) -> None:
        if not np.isfinite(log_mean) or not np.isfinite(log_std) or log_std <= 0:
            raise ValueError(
                f"depth normaliser: expected finite mean and positive std, got {log_mean}, {log_std}"
            )
        self.log_mean, self.log_std = float(log_mean), float(log_std)

    @classmethod
    def fit(cls, depths: np.ndarray) -> DepthNormalizer:
        d = np.asarray(depths, dtype=np.float64)
        d = np.log(d[np.isfinite(d) & (d > 0)])
        if d.size == 0:
            raise ValueError("depth normaliser: no valid depth values to fit")
        return cls(float(d.mean()), float(max(d.std(), 1e-3)))

    def normalize(self, depth: torch.Tensor) -> torch.Tensor:
        return (torch.log(depth.clamp_min(1e-6)) - self.log_mean) / self.log_std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return torch.exp(z * self.log_std + self.log_mean)

    def state(self) -> dict[str, float]:
        return {"depth_log_mean": self.log_mean, "depth_log_std": self.log_std}


class DepthLoss(nn.Module):
    """L1 or MSE on standardised log-depth over valid pixels.

    ``pred``: ``(B, 1, ...)`` (or ``(B, 2, ...)`` with a log-variance channel: Gaussian NLL instead);
    ``target``: metres ``(B, ...)``, invalid = non-finite or <= 0, plus the optional ``valid`` mask.
    """

    def __init__(self, normalizer: DepthNormalizer, kind: Literal["l1", "mse"] = "mse") -> None:
        super().__init__()
        if kind not in ("l1", "mse"):
            raise ValueError(f"depth loss: expected 'l1' or 'mse', got {kind!r}")
        self.normalizer = normalizer
        self.kind = kind

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        ok = torch.isfinite(target) & (target > 0)
        if valid is not None:
            ok &= valid.bool()
        if not bool(ok.any()):
            return pred.sum() * 0.0
        z = self.normalizer.normalize(torch.where(ok, target, torch.ones_like(target)))
        mu = pred[:, 0]
        diff = (mu - z)[ok]
        if pred.shape[1] == 2:  # heteroscedastic: Gaussian negative log-likelihood with log-variance
            log_var = pred[:, 1][ok].clamp(-10, 10)
            return (0.5 * (diff**2 * torch.exp(-log_var) + log_var)).mean()
        return diff.abs().mean() if self.kind == "l1" else (diff**2).mean()
