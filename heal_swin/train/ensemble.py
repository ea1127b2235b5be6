"""Deep ensembles of model files: one prediction and a per-pixel disagreement (uncertainty) map.

Members run through :class:`~heal_swin.train.inference.Predictor` (each with its own
preprocessing); their outputs are combined in the models' native domain and then go through the
first member's post-processing and projections, so an ensemble's prediction is made exactly as a
single model's is.

- Segmentation: the mean of the members' softmax probabilities; uncertainty = the fraction of
  members whose argmax differs from the ensemble's argmax (0 when all agree; 1 where the mean's
  argmax is no member's).
- Depth: the mean of the members' log-depth; uncertainty = the standard deviation across members
  of log-depth (natural log of metres; 0.1 ~ members differ by ~10 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heal_swin.errors import InputError
from heal_swin.geometry import FisheyeCamera
from heal_swin.train.inference import Prediction, Predictor

__all__ = ["EnsemblePrediction", "EnsemblePredictor", "UncertaintySummary", "combine_outputs"]


@dataclass
class EnsemblePrediction(Prediction):
    """A :class:`Prediction` plus ``uncertainty_sphere`` (N,) and ``uncertainty_flat`` (H, W) (NaN: no prediction)."""

    uncertainty_sphere: np.ndarray | None = None
    uncertainty_flat: np.ndarray | None = None


def _log_depth(p: Predictor, out: torch.Tensor) -> torch.Tensor:
    """(1, ...) normalised model output -> (...) natural log of metres (members may differ in normalisation)."""
    return out[0].double() * float(p.meta["depth_log_std"]) + float(p.meta["depth_log_mean"])


def combine_outputs(
    members: Sequence[Predictor], outputs: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Members' raw (K, ...) outputs -> (the ensemble's raw output in the first member's convention, (...) uncertainty).

    Segmentation: ``log(mean softmax)`` (its softmax is the mean probability); depth: the mean
    log-depth re-normalised with the first member's statistics.
    """
    first = members[0]
    if first.task == "segmentation":
        probs = torch.stack([torch.softmax(o.double(), dim=0) for o in outputs])  # (M, K, ...)
        mean = probs.mean(0)
        votes = probs.argmax(1)  # (M, ...)
        disagree = (votes != mean.argmax(0)[None]).double().mean(0)
        return torch.log(mean.clamp_min(1e-300)).float(), disagree.float()
    logd = torch.stack([_log_depth(p, o) for p, o in zip(members, outputs)])  # (M, ...)
    mean = logd.mean(0)
    std = logd.std(0, unbiased=False)
    z = (mean - float(first.meta["depth_log_mean"])) / float(first.meta["depth_log_std"])
    return z[None].float(), std.float()


def _signature(p: Predictor) -> dict[str, Any]:
    sig = {"task": p.task, "input kind": p.kind, "grid": p.grid.key, "classes": p.class_names}
    if p.kind == "flat":
        sig["image_size"] = list(p.meta.get("image_size") or [])
    return sig


def _input_key(p: Predictor) -> tuple:
    """What :meth:`Predictor.model_input` depends on besides the image and camera."""
    size = tuple(p.meta.get("image_size") or ())
    return (p.kind, p.grid.key, tuple(p.mean), tuple(p.std), p.resample, size)


class EnsemblePredictor:
    """Several model files of the same task, input kind, grid and classes, used like one :class:`Predictor`."""

    def __init__(self, model_paths: Sequence[str | Path], **predictor_kwargs: Any) -> None:
        if not model_paths:
            raise InputError("--ensemble: no model files given")
        self.members = [Predictor(p, **predictor_kwargs) for p in model_paths]
        self.paths = [str(p) for p in model_paths]
        ref = _signature(self.members[0])
        for path, m in zip(self.paths[1:], self.members[1:]):
            sig = _signature(m)
            for key, want in ref.items():
                if sig[key] != want:
                    raise InputError(
                        f"--ensemble: {path}: {key} {sig[key]!r} does not match {self.paths[0]} ({want!r})"
                    )
        first = self.members[0]
        self.task, self.kind, self.grid, self.meta = first.task, first.kind, first.grid, first.meta
        self.class_names, self.class_colours = first.class_names, first.class_colours

    @torch.no_grad()
    def __call__(self, image_rgb: np.ndarray, camera: FisheyeCamera) -> EnsemblePrediction:
        """Predict on one (H, W, 3) uint8 RGB image; adds the disagreement map on both domains."""
        outputs, proj = [], None
        inputs: dict[tuple, np.ndarray] = {}  # members trained alike share one projected input
        for m in self.members:
            key = _input_key(m)
            if key not in inputs:
                inputs[key], proj = m.model_input(image_rgb, camera)
            outputs.append(m._run(inputs[key]))
        out, unc = combine_outputs(self.members, outputs)
        first = self.members[0]
        pred = first.finish(out, proj, image_rgb.shape[:2])
        u_sphere, u_flat = first.to_domains(unc.numpy(), proj, image_rgb.shape[:2], np.nan)
        u_sphere = np.where(pred.sphere_valid, u_sphere, np.nan).astype(np.float32)
        return EnsemblePrediction(
            **pred.__dict__, uncertainty_sphere=u_sphere, uncertainty_flat=u_flat.astype(np.float32)
        )

    def colourise(self, labels: np.ndarray) -> np.ndarray:
        return self.members[0].colourise(labels)

    def info(self) -> dict[str, Any]:
        info = self.members[0].info()
        info["model"] = f"ensemble of {len(self.members)} x {info['model']}"
        info["members"] = self.paths
        return info


class UncertaintySummary:
    """Mean uncertainty on correct vs wrong sphere pixels, accumulated over images.

    Segmentation: correct = predicted class equals the label (ignore-labelled pixels skipped);
    depth: correct = ``max(pred / true, true / pred) < 1.25`` (the delta_1 criterion).
    """

    def __init__(self, task: str, ignore_index: int) -> None:
        self.task, self.ignore = task, ignore_index
        self.sums = np.zeros(2)  # wrong, correct
        self.counts = np.zeros(2, np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray, uncertainty: np.ndarray) -> None:
        """(N,) prediction, (N,) label / metres, (N,) uncertainty (NaN: not scored)."""
        if self.task == "segmentation":
            ok = (target != self.ignore) & np.isfinite(uncertainty)
            correct = pred == target
        else:
            ok = (
                np.isfinite(target) & np.isfinite(pred) & (target > 0) & (pred > 0) & np.isfinite(uncertainty)
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                correct = np.maximum(pred / target, target / pred) < 1.25
        for c in (0, 1):
            sel = ok & (correct == bool(c))
            self.sums[c] += float(uncertainty[sel].sum())
            self.counts[c] += int(sel.sum())

    def summary(self) -> dict[str, float | int]:
        mean = np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan)
        return {
            "mean_uncertainty_correct": float(mean[1]),
            "mean_uncertainty_wrong": float(mean[0]),
            "pixels_correct": int(self.counts[1]),
            "pixels_wrong": int(self.counts[0]),
        }
