"""Lightning modules for segmentation and depth, model-agnostic (any registry model).

Batches are dicts from :mod:`heal_swin.data.datasets`: ``image`` ``(B, C, N)`` on the sphere or
``(B, C, H, W)`` flat, ``label`` ``(B, N | H, W)`` with ``ignore_index`` where unsupervised,
``depth`` in metres (``inf`` invalid) and ``valid`` masks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler

from heal_swin.models import create_model
from heal_swin.train.losses import DepthLoss, DepthNormalizer, SegmentationLoss
from heal_swin.train.metrics import ConfusionMatrix, DepthErrors, segmentation_summary

__all__ = ["DepthTask", "SegmentationTask", "build_optimizer", "make_optimizer", "make_scheduler"]


_TIMM_NAMES = {
    "adam": "adam",
    "adamw": "adamw",
    "sgd": "momentum",
}  # "momentum": SGD, momentum 0.9, no Nesterov


def make_optimizer(
    model: torch.nn.Module | Iterable[torch.nn.Parameter],
    kind: str,
    lr: float,
    weight_decay: float,
    allow_fused: bool = True,
) -> torch.optim.Optimizer:
    """timm's optimizer factory: Adam / AdamW (PyTorch's fused single-kernel step where every
    parameter allows it) or SGD with momentum 0.9.

    Weight decay applies to weight matrices only: timm leaves out every parameter of at most one
    dimension (biases, LayerNorm weights) and the names matched by ``model.no_weight_decay()``
    (relative-position tables, cosine-attention temperatures, Swin-v2's position-bias MLP).
    """
    if isinstance(model, torch.nn.Module):
        params = [p for p in model.parameters() if p.requires_grad]
    else:  # plain parameters: no grouping, everything decays
        params = model = [p for p in model if p.requires_grad]
    kwargs: dict[str, Any] = {}
    # The fused step updates all of a parameter's state in one pass (~5x faster than the
    # per-parameter loop on CPU); it needs floating-point parameters on CPU or CUDA.
    if (
        kind in ("adam", "adamw")
        and allow_fused
        and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    ):
        kwargs["fused"] = True
    return create_optimizer_v2(
        model, opt=_TIMM_NAMES[kind], lr=lr, weight_decay=weight_decay, filter_bias_and_bn=True, **kwargs
    )


def make_scheduler(opt: torch.optim.Optimizer, optim: dict[str, Any], total_steps: int) -> Scheduler | None:
    """timm's schedulers, stepped per optimizer step: ``warmup_steps`` of linear warm-up from 0,
    then cosine decay to ``min_lr`` at ``total_steps`` (``schedule: cosine``) or the constant LR."""
    warmup = int(optim.get("warmup_steps", 0))
    common = {"warmup_t": warmup, "warmup_lr_init": 0.0, "t_in_epochs": False}
    if optim["schedule"] == "cosine":
        return CosineLRScheduler(
            opt,
            t_initial=max(total_steps - warmup, 1),
            lr_min=float(optim.get("min_lr", 0.0)),
            warmup_prefix=True,
            **common,
        )
    if warmup > 0:  # warm-up, then constant: a step schedule that never decays
        return StepLRScheduler(opt, decay_t=max(total_steps, 1) + warmup, decay_rate=1.0, **common)
    return None


def build_optimizer(module: L.LightningModule, optim: dict[str, Any]) -> Any:
    """Optimizer (+ optional warm-up / cosine schedule per step) from an ``OptimConfig`` dict."""
    # Lightning refuses to clip gradients of a fused optimizer under mixed precision (the fused
    # step would unscale them itself), so clipped mixed-precision runs take the unfused step.
    trainer = module._trainer
    mixed = trainer is not None and "mixed" in str(trainer.precision)
    clipped = trainer is not None and trainer.gradient_clip_val not in (None, 0)
    opt = make_optimizer(
        module.model,
        optim["optimizer"],
        optim["lr"],
        optim["weight_decay"],
        allow_fused=not (mixed and clipped),
    )
    total = (
        max(int(module.trainer.estimated_stepping_batches), 1)
        if optim["schedule"] != "none" or optim.get("warmup_steps")
        else 1
    )
    sched = make_scheduler(opt, optim, total)
    if sched is None:
        return opt
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _Task(L.LightningModule):
    def __init__(
        self, model_name: str, model_options: dict[str, Any], optim: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        super().__init__()
        self.model = create_model(model_name, **model_options)
        self.optim = optim
        self.metadata = metadata

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def compile_model(self) -> None:
        """Run training and validation through ``torch.compile(self.model)`` (compiled at the first
        batch). The compiled wrapper is kept outside the module tree: checkpoints and the saved
        model keep plain parameter names."""
        object.__setattr__(self, "_compiled", torch.compile(self.model))

    def net(self, x: torch.Tensor) -> torch.Tensor:
        compiled = self.__dict__.get("_compiled")
        return compiled(x) if compiled is not None else self.model(x)

    def configure_optimizers(self) -> Any:
        return build_optimizer(self, self.optim)

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        # timm's schedulers set the LR from the number of optimizer steps taken (so a resumed
        # run continues the curve exactly); Lightning calls this after every optimizer step.
        scheduler.step_update(num_updates=self.global_step)


class SegmentationTask(_Task):
    """Cross-entropy (class-weighted, ``ignore_index``) training; confusion-matrix validation."""

    def __init__(
        self,
        model_name: str,
        model_options: dict[str, Any],
        class_names: list[str],
        optim: dict[str, Any],
        class_weights: list[float] | None = None,
        ignore_index: int = 255,
        void_class: int | None = 0,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model_name, model_options, optim, metadata or {})
        self.save_hyperparameters()
        self.class_names = list(class_names)
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.loss = SegmentationLoss(weights, ignore_index=ignore_index)
        self.val_confusion = ConfusionMatrix(len(class_names), ignore_index=ignore_index)
        self.void_class = void_class
        self.last_summary: dict[str, Any] = {}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self.net(batch["image"])
        loss = self.loss(logits, batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.net(batch["image"])
        self.log("val/loss", self.loss(logits, batch["label"]), batch_size=logits.shape[0], sync_dist=True)
        self.val_confusion.update(logits.argmax(1), batch["label"])

    def on_validation_epoch_end(self) -> None:
        summary = segmentation_summary(self.val_confusion.compute(), self.class_names, self.void_class)
        self.val_confusion.reset()
        self.last_summary = summary
        self.log("val/miou", summary["miou"], prog_bar=True, sync_dist=False)
        if "miou_no_void" in summary:
            self.log("val/miou_no_void", summary["miou_no_void"], sync_dist=False)
        self.log("val/pixel_accuracy", summary["pixel_accuracy"], sync_dist=False)


class DepthTask(_Task):
    """Normalised log-depth regression (MSE or L1; Gaussian NLL with a log-variance head)."""

    def __init__(
        self,
        model_name: str,
        model_options: dict[str, Any],
        optim: dict[str, Any],
        depth_log_mean: float,
        depth_log_std: float,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model_name, model_options, optim, metadata or {})
        self.save_hyperparameters()
        self.normalizer = DepthNormalizer(depth_log_mean, depth_log_std)
        self.loss = DepthLoss(self.normalizer, optim.get("depth_loss", "mse"))
        self.val_errors = DepthErrors()
        self.last_summary: dict[str, Any] = {}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        pred = self.net(batch["image"])
        loss = self.loss(pred, batch["depth"], batch.get("valid"))
        self.log("train/loss", loss, prog_bar=True, batch_size=pred.shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        pred = self.net(batch["image"])
        self.log(
            "val/loss",
            self.loss(pred, batch["depth"], batch.get("valid")),
            batch_size=pred.shape[0],
            sync_dist=True,
        )
        self.val_errors.update(self.normalizer.denormalize(pred[:, 0]), batch["depth"], batch.get("valid"))

    def on_validation_epoch_end(self) -> None:
        errors = self.val_errors.compute()
        self.val_errors.reset()
        self.last_summary = errors
        for k, v in errors.items():
            self.log(f"val/{k}", v, prog_bar=k == "abs_rel", sync_dist=False)
