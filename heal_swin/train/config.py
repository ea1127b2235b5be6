"""Training recipes: pydantic models loaded from YAML and validated at load time.

``load_config("train/quickstart.yaml", ["trainer.max_epochs=3", "optim.lr=5e-4"])`` returns a
``TrainConfig``; an unknown key or a value of the wrong type is a ``ConfigError`` naming the file,
the dotted key, and expected vs got (one line). Values are checked strictly (no ``"3"`` for an
integer, no ``1`` for a boolean), except that an integer or a numeric string is a float: PyYAML
reads ``5e-4`` (no dot) as a string.

A recipe may start from others, as mmsegmentation configs do: ``_base_: quickstart.yaml`` (or a
list, merged in order; paths relative to the recipe's folder) loads the base first and merges the
recipe on top of it, mappings key by key and anything else (lists included) replaced whole. A run's
``config.yaml`` holds the merged recipe, so a run never depends on its recipe's bases.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from heal_swin.errors import InputError

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainerConfig",
    "config_to_dict",
    "load_config",
]


class ConfigError(InputError):
    """An invalid training recipe or override."""


def _yaml_float(v: Any) -> Any:
    if isinstance(v, str):  # "5e-4": PyYAML's reading of a float written without a dot
        try:
            return float(v)
        except ValueError:
            return v
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


Float = Annotated[float, BeforeValidator(_yaml_float)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())


class DataConfig(_Section):
    """Which dataset, which view, and how it is batched."""

    dataset: Literal["synthetic", "woodscape", "synwoodscape"] = "synthetic"
    root: str = "data/synthetic"
    variant: str | None = None  # SynWoodScape class merge: "large" or "large_plus_AD"
    task: Literal["segmentation", "depth"] = "segmentation"
    view: Literal["sphere", "flat"] = "sphere"
    nside: int = 32
    base_pixels: list[int] = Field(default_factory=lambda: list(range(8)))
    surround: bool = False  # one sample per frame: its cameras fused on the vehicle sphere (heal_swin.data.surround); base_pixels 0..11
    resample: Literal["bilinear", "area"] = "bilinear"  # sphere view: image -> grid (labels, depth: nearest)
    image_size: list[int] | None = None  # [width, height] to resize to before projecting (None: native)
    cameras: list[str] | None = None
    batch_size: int = 4
    eval_batch_size: int | None = None
    num_workers: int = 0
    augment: bool = True
    rot90: bool = False  # sphere view, with augment: also rotate by random multiples of 90° about the optical axis (SphereRandomRot90)
    rot180: bool = False  # flat view, with augment: also turn image, labels and calibration by 180° with p = 0.5 (Rotate180)
    train_split: str = "train"
    val_split: str = "val"
    limit_train: int | None = None  # use only the first N training samples (quick runs)
    limit_val: int | None = None


class ModelConfig(_Section):
    """A registry model; ``options`` are overrides for ``create_model`` (nside, classes, ... are filled in)."""

    name: str = "heal_swin_tiny"
    options: dict[str, Any] = Field(default_factory=dict)
    # A heal-swin model file (.safetensors) whose weights start the run, as mmseg's load_from: same
    # architecture, other data settings allowed (e.g. a model trained at nside 32 fine-tuned at 64).
    init_from: str | None = None


class OptimConfig(_Section):
    """Optimizer (timm's factory), learning-rate schedule (timm's) and loss settings.

    ``weight_decay`` applies to weight matrices only: biases, LayerNorm weights, relative-position
    tables and cosine-attention temperatures are not decayed. ``schedule: cosine`` decays the LR
    to ``min_lr`` over the run after ``warmup_steps`` of linear warm-up (per optimizer step).
    """

    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: Float = 1e-3
    weight_decay: Float = 0.0
    schedule: Literal["none", "cosine"] = "none"
    warmup_steps: int = 0
    min_lr: Float = 0.0
    class_weights: Literal["inverse_log", "median_frequency", "none"] = "inverse_log"
    depth_loss: Literal["mse", "l1"] = "mse"
    grad_clip: Float | None = 1.0


class TrainerConfig(_Section):
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


class TrainConfig(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.trainer.out_dir) / self.trainer.name


# ------------------------------------------------------- error messages
def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _describe(typing.get_args(tp)[0])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict or (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _members(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) is Annotated:
        return _members(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _locate(loc: tuple[Any, ...], tree: Any) -> tuple[str, Any, Any]:
    """Pydantic's error location -> (dotted key, declared type there, the value given there)."""
    tp: Any = TrainConfig
    key, value = "", tree
    for part in loc:
        model = next((m for m in _members(tp) if isinstance(m, type) and issubclass(m, BaseModel)), None)
        if isinstance(part, str) and model is not None and part in model.model_fields:
            tp = model.model_fields[part].annotation
        elif isinstance(part, int) and any(typing.get_origin(m) is list for m in _members(tp)):
            tp = typing.get_args(next(m for m in _members(tp) if typing.get_origin(m) is list))[0]
        elif isinstance(part, str) and model is not None:  # an unknown key of a section
            tp = None
        else:
            continue  # a union member's tag ("int", "str"): the key is the union's
        key = f"{key}[{part}]" if isinstance(part, int) else (f"{key}.{part}" if key else part)
        value = value[part] if isinstance(value, (dict, list)) and _has(value, part) else None
    return key, tp, value


def _has(node: dict | list, part: Any) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and 0 <= part < len(node)


def _config_error(e: ValidationError, tree: dict[str, Any], source: str) -> ConfigError:
    err = e.errors()[0]
    key, tp, value = _locate(tuple(err["loc"]), tree)
    if err["type"] == "extra_forbidden":
        section = key.rpartition(".")[0]
        _, section_tp, _ = _locate(tuple(err["loc"][:-1]), tree)
        valid = sorted(section_tp.model_fields) if section_tp is not None else []
        return ConfigError(
            f"{source}: unknown key '{key}'; valid keys{' of ' + section if section else ''}: {valid}"
        )
    return ConfigError(f"{source}: key '{key or '<root>'}': expected {_describe(tp)}, got {value!r}")


def _set_dotted(tree: dict, dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: key '{dotted}': '{k}' is not a section")
    node[keys[-1]] = value


BASE_KEY = "_base_"


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: nested mappings merged key by key, other values replaced."""
    out = dict(base)
    for k, v in top.items():
        if v is None and isinstance(out.get(k), dict):  # an empty section ("trainer:") changes nothing
            continue
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


Origins = dict[tuple[str, ...], str]  # key path -> the file (chain) or override that set it


def _origins(tree: Any, source: str, prefix: tuple[str, ...] = ()) -> Origins:
    out: Origins = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out[(*prefix, str(k))] = source
            out.update(_origins(v, source, (*prefix, str(k))))
    return out


def _set_origin(origins: Origins, key: tuple[str, ...], value: Any, source: str) -> None:
    """``key`` replaced whole by ``value`` from ``source``: what was under it came from elsewhere."""
    for k in [k for k in origins if k[: len(key)] == key]:
        del origins[k]
    origins[key] = source
    origins.update(_origins(value, source, key))


def _read_recipe(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Origins]:
    """The recipe at ``path`` as a tree, its ``_base_`` recipes merged under it, and where each key
    of the tree was set (so an error in a base names the base)."""
    source = " -> ".join(str(p) for p in (*chain, path))
    if not path.is_file():
        raise ConfigError(f"{source}: no such config file")
    if path.resolve() in {p.resolve() for p in chain}:
        raise ConfigError(f"{source}: the recipe inherits from itself")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(tree).__name__}")
    bases = tree.pop(BASE_KEY, None)
    if bases is None:
        return tree, _origins(tree, source)
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) for b in bases):
        raise ConfigError(
            f"{source}: key '{BASE_KEY}': expected a file name or a list of them, got {bases!r}"
        )
    merged: dict[str, Any] = {}
    origins: Origins = {}
    for base in bases:
        base_tree, base_origins = _read_recipe(path.parent / base, (*chain, path))
        _overlay(origins, base_origins, base_tree, merged)
        merged = _merge(merged, base_tree)
    _overlay(origins, _origins(tree, source), tree, merged)
    return _merge(merged, tree), origins


def _overlay(origins: Origins, top: Origins, tree: dict[str, Any], under: dict[str, Any]) -> None:
    """``origins`` (of ``under``) updated for ``_merge(under, tree)``, ``top`` being ``tree``'s origins:
    a mapping merges key by key, so does an empty section over one; anything else replaces."""
    for key in sorted(top, key=len):
        value = _get(tree, key)
        if isinstance(value, dict) or (value is None and isinstance(_get(under, key), dict)):
            origins.setdefault(key, top[key])
        else:
            _set_origin(origins, key, None, top[key])


def _get(tree: dict[str, Any], key: tuple[str, ...]) -> Any:
    node: Any = tree
    for k in key:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Load a recipe (or the defaults when ``path`` is None), with its ``_base_`` recipes merged
    under it, and apply ``key.sub=value`` overrides."""
    tree: dict[str, Any] = {}
    origins: Origins = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        tree, origins = _read_recipe(Path(path))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        _set_dotted(tree, key.strip(), value, f"override {item!r}")
        _set_origin(origins, tuple(key.strip().split(".")), value, f"override {item!r}")
    tree = {k: v for k, v in tree.items() if v is not None}  # "trainer:" with nothing under it: the defaults
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as e:
        raise _config_error(e, tree, _origin_of(e, origins, source)) from None


def _origin_of(e: ValidationError, origins: Origins, default: str) -> str:
    """The file (or override) that set the first invalid key: its longest recorded prefix."""
    loc = tuple(str(p) for p in e.errors()[0]["loc"])
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            return origins[loc[:n]]
    return default


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The recipe as plain data (what ``config.yaml`` of a run holds)."""
    return cfg.model_dump()
