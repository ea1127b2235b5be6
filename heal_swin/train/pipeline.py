"""Training runs: datasets + registry model + Lightning, from one ``TrainConfig``.

A run lives in ``<trainer.out_dir>/<trainer.name>/``::

    config.yaml              the resolved recipe
    stats.json               class counts / depth normaliser from the training split
    checkpoints/last.ckpt    Lightning checkpoint (every N steps and each epoch; atomic) for --resume
    logs/                    CSV + TensorBoard (+ MLflow when configured)
    model.safetensors        the trained model + metadata (what evaluate/predict/export read)
    metrics.json             final validation metrics (with the majority-class baseline)
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from heal_swin.allocator import retain_freed_memory
from heal_swin.data.classes import IGNORE_INDEX
from heal_swin.data.datasets import FisheyeDataset
from heal_swin.data.transforms import Compose, FlatAugment, Rotate180, SphereRandomFlip, SphereRandomRot90
from heal_swin.geometry import HealpixGrid
from heal_swin.io import save_json
from heal_swin.models import default_cfg, model_config
from heal_swin.models.checkpoint import save_model
from heal_swin.train.config import ConfigError, TrainConfig, config_to_dict
from heal_swin.train.init_from import init_header, keep_depth_scale, load_init_weights
from heal_swin.train.losses import DepthNormalizer, class_weights_from_counts
from heal_swin.train.resumable import ResumableSampler, ResumeState, SeededItems
from heal_swin.train.tasks import DepthTask, SegmentationTask

__all__ = ["build_dataset", "build_loaders", "build_task", "dataset_stats", "format_metrics", "train"]

_SPEC_NAMES = {"synthetic": "synthetic", "woodscape": "woodscape", "synwoodscape": "synwoodscape"}


def _spec_name(cfg: TrainConfig) -> str:
    name = _SPEC_NAMES[cfg.data.dataset]
    if cfg.data.dataset == "synwoodscape" and cfg.data.variant:
        name = f"synwoodscape-{cfg.data.variant}"
    return name


def grid_of(cfg: TrainConfig) -> HealpixGrid:
    return HealpixGrid(cfg.data.nside, tuple(cfg.data.base_pixels))


def build_dataset(
    cfg: TrainConfig, split: str, train: bool = False, view: str | None = None
) -> FisheyeDataset:
    """The configured dataset for ``split``; training augmentation only when ``train``."""
    d = cfg.data
    view = view or d.view
    grid = grid_of(cfg)
    transform = sphere_transform = None
    if d.rot90 and d.view == "flat":
        raise ConfigError(
            "data.rot90: quarter-turn augmentation is for the sphere view, got data.view 'flat' (data.rot180 turns flat images)"
        )
    if d.rot180 and d.view != "flat":
        raise ConfigError(
            f"data.rot180: half-turn augmentation is for the flat view, got data.view '{d.view}' (data.rot90 turns the sphere)"
        )
    if train and d.augment:
        if view == "flat":
            # A 90° turn is no permutation of a non-square image; 180° is, of any (issue 14 item 6).
            transform = Compose(FlatAugment(), Rotate180()) if d.rot180 else FlatAugment()
        else:
            # Mirroring the sphere is an exact pixel permutation; photometric jitter on the flat image.
            transform = FlatAugment(hflip=0.0)
            sphere_transform = SphereRandomFlip(grid)
            if d.rot90:  # exact quarter turns about the optical axis (issue 14 item 6)
                sphere_transform = Compose(SphereRandomFlip(grid), SphereRandomRot90(grid))
    root = Path(d.root)
    if not root.exists():
        raise ConfigError(
            f"data.root: dataset folder {root} does not exist (for the synthetic benchmark run 'heal-swin data synth --out {root}')"
        )
    norm = default_cfg(cfg.model.name)  # the model's input normalisation (one place: its registry entry)
    if d.surround:
        return _surround_dataset(cfg, split, train and d.augment, norm["mean"], norm["std"])
    return FisheyeDataset(
        root,
        spec=_spec_name(cfg),
        mean=norm["mean"],
        std=norm["std"],
        split=split,
        view=view,  # type: ignore[arg-type]
        grid=grid,
        resample=d.resample,
        cameras=d.cameras,
        size=tuple(d.image_size) if d.image_size else None,
        strips="ignore" if d.dataset == "woodscape" else "keep",
        transform=transform,
        sphere_transform=sphere_transform,
        seed=cfg.trainer.seed,
    )


def _surround_dataset(
    cfg: TrainConfig, split: str, augment: bool, mean: list[float], std: list[float]
) -> Any:
    """``data.surround``: frames on the vehicle sphere; augmentation is rig-consistent (colour per camera, the rig mirror)."""
    from heal_swin.data.surround import SURROUND_CAMERAS, SurroundDataset

    d = cfg.data
    if list(d.base_pixels) != list(range(12)):
        raise ConfigError(
            f"data.base_pixels: the vehicle sphere (data.surround) needs all 12 base pixels 0..11, got {list(d.base_pixels)}"
        )
    return SurroundDataset(
        d.root, spec=_spec_name(cfg), split=split, nside=d.nside, cameras=d.cameras or SURROUND_CAMERAS,
        size=tuple(d.image_size) if d.image_size else None, strips="ignore" if d.dataset == "woodscape" else "keep",
        photometric=1.0 if augment else 0.0, mirror=0.5 if augment else 0.0, seed=cfg.trainer.seed, mean=mean, std=std,
    )  # fmt: skip


def _subset(ds: FisheyeDataset, limit: int | None) -> Any:
    if limit is None or limit >= len(ds):
        return ds
    return torch.utils.data.Subset(ds, range(limit))


def _collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return torch.utils.data.default_collate(batch)


def build_loaders(cfg: TrainConfig) -> tuple[DataLoader, DataLoader, FisheyeDataset, ResumableSampler]:
    """Training loader (resumable order, per-item seeded augmentation) and validation loader."""
    d = cfg.data
    train_ds = build_dataset(cfg, d.train_split, train=True)
    val_ds = build_dataset(cfg, d.val_split)
    if len(train_ds) == 0:
        raise ConfigError(f"data.train_split: no samples in split {d.train_split!r} of {d.root}")
    if len(val_ds) == 0:
        raise ConfigError(f"data.val_split: no samples in split {d.val_split!r} of {d.root}")
    train_items = SeededItems(_subset(train_ds, d.limit_train))
    sampler = ResumableSampler(len(train_items), seed=cfg.trainer.seed)
    common = {"num_workers": d.num_workers, "persistent_workers": d.num_workers > 0, "collate_fn": _collate}
    # Loaders get their own generators: worker seeds must not draw from torch's global RNG,
    # or a resumed run would see a different dropout stream than an uninterrupted one.
    train_dl = DataLoader(
        train_items,
        batch_size=d.batch_size,
        sampler=sampler,
        generator=torch.Generator().manual_seed(cfg.trainer.seed),
        **common,
    )
    val_dl = DataLoader(
        _subset(val_ds, d.limit_val),
        batch_size=d.eval_batch_size or d.batch_size,
        shuffle=False,
        generator=torch.Generator().manual_seed(cfg.trainer.seed + 1),
        **common,
    )
    return train_dl, val_dl, train_ds, sampler


def dataset_stats(cfg: TrainConfig, max_samples: int = 200) -> dict[str, Any]:
    """Class pixel counts (segmentation) or the log-depth normaliser (depth) of the training split.

    Computed on the training view without augmentation, on up to ``max_samples`` evenly spaced
    samples; cached in the run folder so a resumed run uses the same numbers.
    """
    path = cfg.run_dir / "stats.json"
    if path.exists():
        return json.loads(path.read_text())
    ds = build_dataset(cfg, cfg.data.train_split)
    n = len(ds) if cfg.data.limit_train is None else min(len(ds), cfg.data.limit_train)
    idx = np.unique(np.linspace(0, n - 1, min(n, max_samples)).astype(int))
    stats: dict[str, Any] = {"samples_used": len(idx)}
    if cfg.data.task == "segmentation":
        counts = np.zeros(ds.num_classes, dtype=np.int64)
        for i in idx:
            lab = ds[int(i)]["label"].numpy().reshape(-1)
            lab = lab[lab != IGNORE_INDEX]
            counts += np.bincount(lab, minlength=ds.num_classes)[: ds.num_classes]
        stats["class_counts"] = counts.tolist()
    else:
        depths = [ds[int(i)]["depth"].numpy().reshape(-1) for i in idx]
        norm = DepthNormalizer.fit(np.concatenate(depths))
        stats.update(norm.state())
    save_json(path, stats)
    return stats


def build_task(
    cfg: TrainConfig,
    stats: dict[str, Any],
    class_names: list[str],
    class_colours: list[list[int]],
    dataset_name: str,
) -> L.LightningModule:
    d = cfg.data
    opts = dict(cfg.model.options)
    params = model_config(cfg.model.name)
    # Fill in what the data decides, unless the recipe set it explicitly.
    if "nside" in params and "nside" not in opts:
        opts["nside"] = d.nside
    if "base_pixels" in params and "base_pixels" not in opts:
        opts["base_pixels"] = list(d.base_pixels)
    if "task" in params:
        opts.setdefault("task", d.task)
    if d.task == "segmentation" and "num_classes" in params:
        opts.setdefault("num_classes", len(class_names))
    if d.view == "flat" and "img_size" in params and "img_size" not in opts and d.image_size:
        opts["img_size"] = [d.image_size[1], d.image_size[0]]
    model_cfg = default_cfg(
        cfg.model.name, **opts
    )  # also validates the option names, with the registry's message
    metadata: dict[str, Any] = {
        "task": d.task,
        "dataset": dataset_name,
        "view": d.view,
        "mean": model_cfg["mean"],
        "std": model_cfg["std"],
        "nside": d.nside,
        "base_pixels": list(d.base_pixels),
        "resample": d.resample,
        "image_size": d.image_size,
        "surround": d.surround,
    }
    optim = cfg.optim.model_dump()
    if d.task == "segmentation":
        counts = np.asarray(stats["class_counts"])
        weights = class_weights_from_counts(counts, cfg.optim.class_weights).tolist()
        metadata.update(class_names=class_names, class_colours=class_colours, ignore_index=IGNORE_INDEX)
        return SegmentationTask(
            cfg.model.name,
            opts,
            class_names,
            optim,
            class_weights=weights,
            ignore_index=IGNORE_INDEX,
            void_class=0,
            metadata=metadata,
        )
    metadata.update(depth_log_mean=stats["depth_log_mean"], depth_log_std=stats["depth_log_std"])
    return DepthTask(
        cfg.model.name, opts, optim, stats["depth_log_mean"], stats["depth_log_std"], metadata=metadata
    )


def _loggers(cfg: TrainConfig) -> list[Any]:
    """CSV + TensorBoard (+ MLflow) loggers of the run.

    Every start of a run (the first and each ``--resume``) writes its CSV log to a new
    ``logs/csv/version_<n>/``: Lightning's CSVLogger deletes the ``metrics.csv`` of a version it
    reopens, so a resume never reuses one, and the versions in order are the whole history (steps
    after the last checkpoint of a killed start appear again in the next version). Rows are
    flushed at every logging step, so a ``kill -9`` loses at most the step in progress.
    TensorBoard keeps ``version_0`` (it only ever adds event files).
    """
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    log_dir = cfg.run_dir / "logs"
    previous = [p.name.removeprefix("version_") for p in (log_dir / "csv").glob("version_*")]
    version = max((int(v) for v in previous if v.isdigit()), default=-1) + 1
    loggers: list[Any] = [CSVLogger(str(log_dir), name="csv", version=version, flush_logs_every_n_steps=1)]
    try:
        loggers.append(
            TensorBoardLogger(str(log_dir), name="tensorboard", version=0, default_hp_metric=False)
        )
    except ModuleNotFoundError:  # tensorboard is optional; CSV always works
        pass
    uri = cfg.trainer.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        try:
            from lightning.pytorch.loggers import MLFlowLogger

            loggers.append(
                MLFlowLogger(
                    experiment_name=cfg.trainer.mlflow_experiment, run_name=cfg.trainer.name, tracking_uri=uri
                )
            )
        except ModuleNotFoundError:
            print("mlflow is not installed: MLflow logging skipped")
    return loggers


def _callbacks(cfg: TrainConfig, sampler: ResumableSampler | None = None) -> list[Any]:
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt_dir = cfg.run_dir / "checkpoints"
    # Lightning writes checkpoints atomically (buffer, then an fsspec transaction rename).
    # One ModelCheckpoint cannot save both every N steps and every epoch, so two do, and both write
    # the same last.ckpt (no version counter: otherwise the second writes last-v1.ckpt, which
    # --resume never reads). Whichever saved most recently is what --resume continues from.
    every_steps = ModelCheckpoint(
        dirpath=str(ckpt_dir),
        every_n_train_steps=cfg.trainer.checkpoint_every_n_steps,
        save_top_k=0,
        save_last=True,
        enable_version_counter=False,
    )
    every_epoch = ModelCheckpoint(
        dirpath=str(ckpt_dir),
        every_n_epochs=1,
        save_top_k=0,
        save_last=True,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    cbs: list[Any] = [every_steps, every_epoch]
    if sampler is not None:
        cbs.append(ResumeState(sampler, cfg.data.batch_size))
    if cfg.trainer.progress_bar:
        from lightning.pytorch.callbacks import TQDMProgressBar

        cbs.append(TQDMProgressBar(refresh_rate=max(1, cfg.trainer.log_every_n_steps)))
    return cbs


def build_trainer(cfg: TrainConfig, sampler: ResumableSampler | None = None) -> L.Trainer:
    t = cfg.trainer
    return L.Trainer(
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,  # type: ignore[arg-type]
        logger=_loggers(cfg),
        callbacks=_callbacks(cfg, sampler),
        use_distributed_sampler=False,  # ResumableSampler shards itself
        log_every_n_steps=t.log_every_n_steps,
        check_val_every_n_epoch=t.val_every_n_epochs,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        deterministic=t.deterministic,
        gradient_clip_val=cfg.optim.grad_clip,
        default_root_dir=str(cfg.run_dir),
        num_sanity_val_steps=0,
    )


def train(cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train (or resume) a run; returns the final validation metrics (also in ``metrics.json``)."""
    retain_freed_memory()  # opt-in (HEAL_SWIN_RETAIN_FREED_MEMORY=1): steps reuse pages (heal_swin.allocator)
    run = cfg.run_dir
    last = run / "checkpoints" / "last.ckpt"
    if not resume and last.exists():
        raise ConfigError(
            f"trainer.name: run folder {run} already has a checkpoint; pass --resume to continue it or choose another trainer.name"
        )
    if resume and not last.exists():
        raise ConfigError(f"--resume: no checkpoint at {last}")
    init = init_header(cfg) if cfg.model.init_from and not resume else None
    run.mkdir(parents=True, exist_ok=True)
    cfg_path = run / "config.yaml"
    if not cfg_path.exists():
        from heal_swin.io import atomic_open

        with atomic_open(cfg_path, "w") as f:
            yaml.safe_dump(config_to_dict(cfg), f, sort_keys=False)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    t0 = time.perf_counter()
    train_dl, val_dl, train_ds, sampler = build_loaders(cfg)
    stats = dataset_stats(cfg)
    if init is not None:
        stats = keep_depth_scale(cfg, init, stats)
    classes = train_ds.classes
    task = build_task(
        cfg, stats, list(classes.names), [list(c) for c in classes.colors_bgr], train_ds.spec.name
    )
    if init is not None:
        load_init_weights(task.model, cfg)
    if cfg.trainer.compile:
        task.compile_model()
    trainer = build_trainer(cfg, sampler)
    with warnings.catch_warnings():
        # ResumeState restores the position inside the epoch (exact resumption), which Lightning
        # cannot see: it would warn that a mid-epoch resume of this loader is unreliable.
        warnings.filterwarnings("ignore", message=".*ended before the epoch ended and your dataloader")
        trainer.fit(task, train_dl, val_dl, ckpt_path=str(last) if resume else None, weights_only=True)
    # Final validation with the final weights (every DDP process takes part), then the model file.
    trainer.validate(task, val_dl, verbose=False)
    if trainer.global_rank != 0:
        return {}
    summary = dict(task.last_summary)
    summary["train_seconds"] = time.perf_counter() - t0
    summary["steps"] = int(trainer.global_step)
    summary["epochs"] = int(trainer.current_epoch)
    save_model(run / "model.safetensors", task.model, task.metadata)
    save_json(run / "metrics.json", summary)
    return summary


def format_metrics(summary: dict[str, Any], task: str) -> str:
    """A plain-text table of the final metrics."""
    lines = []
    if task == "segmentation":
        lines.append(f"{'metric':32s} {'value':>8s}")
        for key in (
            "miou",
            "miou_no_void",
            "pixel_accuracy",
            "majority_baseline_miou",
            "majority_baseline_miou_no_void",
        ):
            if key in summary:
                lines.append(f"{key:32s} {summary[key]:8.4f}")
        lines.append("")
        lines.append(f"{'class':32s} {'IoU':>8s}")
        for name, v in summary.get("per_class_iou", {}).items():
            lines.append(f"{name:32s} {'-' if v is None else format(v, '8.4f'):>8s}")
    else:
        for key, v in summary.items():
            if isinstance(v, float):
                lines.append(f"{key:32s} {v:10.4f}")
    return "\n".join(lines)
