"""Training recipes: plain dataclasses loaded from YAML and validated at load time.

``load_config("train/quickstart.yaml", ["trainer.max_epochs=3", "optim.lr=5e-4"])`` returns a
``TrainConfig``; an unknown key or a value of the wrong type is a ``ConfigError`` naming the file,
the dotted key, and expected vs got.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from heal_swin.errors import InputError

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "OptimConfig", "TrainerConfig", "TrainConfig", "load_config", "config_to_dict"]


class ConfigError(InputError):
    """An invalid training recipe or override."""


@dataclass
class DataConfig:
    """Which dataset, which view, and how it is batched."""

    dataset: Literal["synthetic", "woodscape", "synwoodscape"] = "synthetic"
    root: str = "data/synthetic"
    variant: str | None = None  # SynWoodScape class merge: "large" or "large_plus_AD"
    task: Literal["segmentation", "depth"] = "segmentation"
    view: Literal["sphere", "flat"] = "sphere"
    nside: int = 32
    base_pixels: list[int] = field(default_factory=lambda: list(range(8)))
    surround: bool = False  # one sample per frame: its cameras fused on the vehicle sphere (heal_swin.data.surround); base_pixels 0..11
    resample: Literal["bilinear", "area"] = "bilinear"  # sphere view: image -> grid (labels, depth: nearest)
    image_size: list[int] | None = None  # [width, height] to resize to before projecting (None: native)
    cameras: list[str] | None = None
    batch_size: int = 4
    eval_batch_size: int | None = None
    num_workers: int = 0
    augment: bool = True
    train_split: str = "train"
    val_split: str = "val"
    limit_train: int | None = None  # use only the first N training samples (quick runs)
    limit_val: int | None = None


@dataclass
class ModelConfig:
    """A registry model; ``options`` are overrides for ``create_model`` (nside, classes, ... are filled in)."""

    name: str = "heal_swin_tiny"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Literal["none", "cosine"] = "none"
    warmup_steps: int = 0
    class_weights: Literal["inverse_log", "median_frequency", "none"] = "inverse_log"
    depth_loss: Literal["mse", "l1"] = "mse"
    grad_clip: float | None = 1.0


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    max_steps: int = -1
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"  # Lightning's: "32-true", or "bf16-mixed" (bfloat16 autocast; needs AVX512_BF16/AMX on a CPU)
    compile: bool = False  # torch.compile the model for training and validation
    out_dir: str = "runs"
    name: str = "run"
    checkpoint_every_n_steps: int = 50
    log_every_n_steps: int = 10
    val_every_n_epochs: int = 1
    progress_bar: bool = True
    deterministic: bool = True
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "heal-swin"


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.trainer.out_dir) / self.trainer.name


# --------------------------------------------------------------- validation
def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{source}: key '{where}': expected {_describe(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, where, source)
            except ConfigError:
                continue
        raise bad
    if tp is type(None):
        if value is not None:
            raise bad
        return None
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        (arg,) = typing.get_args(tp)
        return [_coerce(v, arg, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, source)
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is bool or tp is str:
        if not isinstance(value, tp):
            raise bad
        return value
    raise bad


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: key '{prefix or '<root>'}': expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{source}: unknown key '{where}'; valid keys{' of ' + prefix if prefix else ''}: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k, source) for k, v in data.items()}
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: key '{dotted}': '{k}' is not a section")
    node[keys[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Load a recipe (or the defaults when ``path`` is None) and apply ``key.sub=value`` overrides."""
    tree: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{source}: no such config file")
        try:
            tree = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level, got {type(tree).__name__}")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw), f"override {item!r}")
    return _build(TrainConfig, tree, "", source)


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
