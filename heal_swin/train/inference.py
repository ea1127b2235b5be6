"""Run a trained model on one fisheye image: preprocessing, forward, and projection both ways.

Used by ``heal-swin predict`` and ``heal-swin evaluate``. Sphere models see the image projected
onto their grid and their prediction is back-projected onto the fisheye image; flat models see
the image itself and their prediction is projected onto the sphere, so both are compared on the
same footing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heal_swin.data.classes import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
from heal_swin.geometry import FisheyeCamera, HealpixGrid, SphereProjector
from heal_swin.models.checkpoint import load_model
from heal_swin.train.acceleration import autocast, check_precision, compile_model

__all__ = ["Prediction", "Predictor"]


@dataclass
class Prediction:
    """One image's result. Segmentation: class ids; depth: metres (``inf`` = no prediction).

    Attributes:
        sphere: (N,) on the predictor's grid (NESTED); flat: (H, W) on the fisheye image.
        sphere_valid: (N,) grid pixels that see the image; flat_valid: (H, W) image pixels inside the grid.
        scores: (K, N) or (K, H, W) class probabilities (segmentation, native domain of the model).
    """

    sphere: np.ndarray
    flat: np.ndarray
    sphere_valid: np.ndarray
    flat_valid: np.ndarray
    scores: np.ndarray | None = None


class Predictor:
    """A model file (``model.safetensors``) ready to run on fisheye images.

    ``precision="bf16"`` runs the model under bfloat16 autocast; ``compile=True`` through
    ``torch.compile`` with frozen weights (compiled at the first image).
    """

    def __init__(self, model_path: str | Path, device: str = "cpu", precision: str = "fp32", compile: bool = False) -> None:
        self.precision = check_precision(precision, device)
        self.model, self.meta = load_model(model_path, map_location=device)
        self.model.eval()
        self.device = device
        self._forward = compile_model(self.model, inference=True) if compile else self.model
        self.task: str = self.meta.get("task", "segmentation")
        self.kind: str = getattr(self.model, "input_kind", "sphere")
        nside = self.meta.get("nside") or self.model.model_config.get("nside")
        base = self.meta.get("base_pixels") or self.model.model_config.get("base_pixels", list(range(8)))
        self.grid = getattr(self.model, "grid", None) or HealpixGrid(int(nside), tuple(base))
        self.mean = np.asarray(self.meta.get("mean", IMAGENET_MEAN), np.float32)
        self.std = np.asarray(self.meta.get("std", IMAGENET_STD), np.float32)
        self.class_names: list[str] = list(self.meta.get("class_names", []))
        self.class_colours: list[list[int]] = [list(c) for c in self.meta.get("class_colours", [])]

    def _normalise(self, rgb: np.ndarray) -> np.ndarray:
        """(..., 3) uint8 RGB -> float32 normalised."""
        return (rgb.astype(np.float32) / 255.0 - self.mean) / self.std

    def _run(self, x: np.ndarray) -> torch.Tensor:
        """(C, ...) float32 model input -> (K, ...) float32 output, on the CPU."""
        with autocast(self.precision, self.device):
            out = self._forward(torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device))
        return out[0].float().cpu()

    def _postprocess(self, out: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        if self.task == "segmentation":
            probs = torch.softmax(out, dim=0)
            return probs.argmax(0).numpy().astype(np.uint8), probs.numpy()
        z = out[0].double()
        metres = torch.exp(z * self.meta["depth_log_std"] + self.meta["depth_log_mean"])
        return metres.float().numpy(), None

    @torch.no_grad()
    def __call__(self, image_rgb: np.ndarray, camera: FisheyeCamera) -> Prediction:
        """Predict on one (H, W, 3) uint8 RGB image taken with ``camera``."""
        proj = SphereProjector(camera, self.grid)
        footprint = proj.footprint()
        fill = IGNORE_INDEX if self.task == "segmentation" else np.inf
        if self.kind == "sphere":
            x = self._normalise(proj.to_sphere(image_rgb))  # (N, 3)
            x[~proj.valid_mask] = 0.0
            out = self._run(x.T)
            sphere, scores = self._postprocess(out)
            flat = proj.to_image(sphere, "nearest", fill=fill)
        else:
            size = self.meta.get("image_size")
            h, w = image_rgb.shape[:2]
            img = image_rgb
            if size and (w, h) != tuple(size):
                import cv2

                img = cv2.resize(image_rgb, tuple(size), interpolation=cv2.INTER_AREA)
            x = self._normalise(img).transpose(2, 0, 1)
            out = self._run(x)
            flat, scores = self._postprocess(out)
            if flat.shape != (h, w):
                import cv2

                flat = cv2.resize(flat, (w, h), interpolation=cv2.INTER_NEAREST)
            sphere = proj.to_sphere(flat, "nearest", fill=fill)
            flat = np.where(footprint, flat, fill).astype(flat.dtype)
        if self.task != "segmentation":
            sphere = np.where(proj.valid_mask, sphere, np.inf).astype(np.float32)
        return Prediction(sphere=sphere, flat=flat, sphere_valid=proj.valid_mask, flat_valid=footprint, scores=scores)

    def colourise(self, labels: np.ndarray) -> np.ndarray:
        """Class ids -> BGR colours (IGNORE_INDEX black)."""
        palette = np.zeros((256, 3), np.uint8)
        palette[: len(self.class_colours)] = np.asarray(self.class_colours, np.uint8).reshape(-1, 3)
        return palette[np.asarray(labels, np.int64).clip(0, 255)]

    def info(self) -> dict[str, Any]:
        return {"task": self.task, "kind": self.kind, "grid": self.grid.key, "model": self.model.model_name, "precision": self.precision}
