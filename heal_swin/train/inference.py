"""Run a trained model on one fisheye image: preprocessing, forward, and projection both ways.

Used by ``heal-swin predict`` and ``heal-swin evaluate``. Sphere models see the image projected
onto their grid and their prediction is back-projected onto the fisheye image; flat models see
the image itself and their prediction is projected onto the sphere, so both are compared on the
same footing. Pre/post-processing is :mod:`heal_swin.inference.processing` (what the dataset and
the service use).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heal_swin.data.classes import IGNORE_INDEX
from heal_swin.geometry import FisheyeCamera, HealpixGrid, SphereProjector
from heal_swin.inference import processing as contract
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

    def __init__(
        self, model_path: str | Path, device: str = "cpu", precision: str = "fp32", compile: bool = False
    ) -> None:
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
        # A model file records its normalisation; older files without it get the variant's.
        self.mean: list[float] = [float(v) for v in self.meta.get("mean", self.model.default_cfg["mean"])]
        self.std: list[float] = [float(v) for v in self.meta.get("std", self.model.default_cfg["std"])]
        self.resample: str = self.meta.get("resample", "bilinear")
        self.class_names: list[str] = list(self.meta.get("class_names", []))
        self.class_colours: list[list[int]] = [list(c) for c in self.meta.get("class_colours", [])]

    def _run(self, x: np.ndarray) -> torch.Tensor:
        """(C, ...) float32 model input -> (K, ...) float32 output, on the CPU."""
        with autocast(self.precision, self.device):
            out = self._forward(torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device))
        return out[0].float().cpu()

    def _postprocess(self, out: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        if self.task == "segmentation":
            probs = torch.softmax(out, dim=0).numpy()
            return contract.classes_from_logits(probs), probs
        return contract.decode_depth(
            out[0].numpy(), self.meta["depth_log_mean"], self.meta["depth_log_std"]
        ), None

    def model_input(self, image_rgb: np.ndarray, camera: FisheyeCamera) -> tuple[np.ndarray, SphereProjector]:
        """(H, W, 3) uint8 RGB -> the model's (3, N) sphere or (3, h, w) flat input, and the projector."""
        proj = SphereProjector(camera, self.grid)
        if self.kind == "sphere":
            return contract.sphere_input(image_rgb, proj, self.mean, self.std, resample=self.resample), proj
        size = self.meta.get("image_size")  # (W, H) the model was trained at
        img_size = (size[1], size[0]) if size else image_rgb.shape[:2]
        return contract.flat_input(image_rgb, img_size, self.mean, self.std), proj

    def to_domains(
        self, native: np.ndarray, proj: SphereProjector, image_hw: tuple[int, int], fill: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """A per-pixel map in the model's domain ((N,) sphere or (h, w) flat) -> ((N,) sphere, (H, W) fisheye).

        Sphere models' maps are back-projected (nearest), flat models' resized (nearest) and projected
        to the grid; ``fill`` outside the grid's footprint / where the grid does not see the image.
        """
        if self.kind == "sphere":
            return native, contract.sphere_to_image(native, proj, fill)
        h, w = image_hw
        flat = contract.resize_nearest(native, (w, h))
        sphere = contract.labels_to_sphere(flat, proj, fill)
        return sphere, np.where(proj.footprint(), flat, fill).astype(flat.dtype)

    def finish(self, out: torch.Tensor, proj: SphereProjector, image_hw: tuple[int, int]) -> Prediction:
        """(K, ...) raw model output (logits / normalised log-depth) -> the image's :class:`Prediction`."""
        native, scores = self._postprocess(out)
        fill = IGNORE_INDEX if self.task == "segmentation" else np.inf
        sphere, flat = self.to_domains(native, proj, image_hw, fill)
        if self.task != "segmentation":
            sphere = np.where(proj.valid_mask, sphere, np.inf).astype(np.float32)
        return Prediction(
            sphere=sphere, flat=flat, sphere_valid=proj.valid_mask, flat_valid=proj.footprint(), scores=scores
        )

    @torch.no_grad()
    def __call__(self, image_rgb: np.ndarray, camera: FisheyeCamera) -> Prediction:
        """Predict on one (H, W, 3) uint8 RGB image taken with ``camera``."""
        x, proj = self.model_input(image_rgb, camera)
        return self.finish(self._run(x), proj, image_rgb.shape[:2])

    def colourise(self, labels: np.ndarray) -> np.ndarray:
        """Class ids -> BGR colours (IGNORE_INDEX black)."""
        return contract.palette_of(self.class_colours)[np.asarray(labels, np.int64).clip(0, 255)]

    def info(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "kind": self.kind,
            "grid": self.grid.key,
            "model": self.model.model_name,
            "precision": self.precision,
        }
