"""``model.init_from``: a run that starts from a model file's weights, as mmsegmentation's ``load_from``.

Fine-tuning's starting point, e.g. a HEAL-SWIN trained at nside 32 continued at nside 64 (its weights
do not depend on the grid). Only the weights are taken: optimizer, schedule and epochs start afresh.
A resumed run reads its own checkpoint instead and never opens the file again.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from heal_swin.io import save_json
from heal_swin.models.checkpoint import ModelFileError, load_weights_into, read_model_metadata
from heal_swin.train.config import ConfigError, TrainConfig

__all__ = ["init_header", "keep_depth_scale", "load_init_weights"]


def init_header(cfg: TrainConfig) -> dict[str, Any]:
    """The header of ``model.init_from``, checked against the recipe's model name and task."""
    try:
        header = read_model_metadata(cfg.model.init_from)
    except ModelFileError as e:
        raise ConfigError(f"model.init_from: {e}") from None
    got = (header["model_name"], header["metadata"].get("task"))
    want = (cfg.model.name, cfg.data.task)
    if got != want:
        raise ConfigError(
            f"model.init_from: {cfg.model.init_from}: expected a {want[0]} {want[1]} model, got {got[0]} {got[1]}"
        )
    return header


def keep_depth_scale(cfg: TrainConfig, header: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """A depth model predicts standardised log-depth: keep the starting model's mean / std so its output
    means what it meant. Written to the run's ``stats.json``, which a resume reads."""
    meta = header["metadata"]
    if cfg.data.task != "depth" or "depth_log_mean" not in meta:
        return stats
    scale = {k: meta[k] for k in ("depth_log_mean", "depth_log_std")}
    stats = {**stats, **scale, "depth_scale_from": cfg.model.init_from}
    save_json(cfg.run_dir / "stats.json", stats)
    return stats


def load_init_weights(model: nn.Module, cfg: TrainConfig) -> None:
    """Copy ``model.init_from``'s weights into ``model``; a tensor that does not fit is a ``ConfigError``."""
    try:
        load_weights_into(model, cfg.model.init_from)
    except ModelFileError as e:
        raise ConfigError(f"model.init_from: {e}") from None
