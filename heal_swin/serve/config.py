"""Service configuration: a dataclass loaded from YAML (``serve/config.yaml``) plus CLI overrides.

Every field is validated where it enters; a bad value raises :class:`ConfigError` naming the
field, expected vs got.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from heal_swin.errors import InputError

__all__ = ["ConfigError", "ServeConfig", "load_config"]


class ConfigError(InputError):
    """A bad service configuration value."""


@dataclass
class ServeConfig:
    """Settings of ``heal-swin serve`` (see ``serve/config.yaml`` for the documented defaults).

    Attributes:
        model_repository: a Triton model repository: ``<model>/config.pbtxt`` + ``model.json`` +
            ``<model>/<version>/model.onnx``, and ``cameras/<name>.json``.
        host, port, workers: uvicorn's (each worker process loads every model).
        precision: the version a request without one gets: ``latest`` (the highest version, as Triton),
            ``fp32`` or ``int8`` (the highest version of that precision; fp32 if a model has no int8 one).
        intra_op_threads: onnxruntime threads per session run; 0 = CPU cores / (workers x concurrent_batches).
        inter_op_threads: onnxruntime inter-op threads (sequential execution uses 1).
        batching: dynamic micro-batching across concurrent requests.
        max_batch_size, max_wait_ms: a batch runs when full or when its first request waited this long.
        concurrent_batches: model runs in flight at once, batched or not (each run gets
            ``intra_op_threads`` threads; 2 single-threaded runs can beat 1 two-threaded run on small models).
        max_upload_bytes: request bodies above this get 413.
        max_image_pixels: decoded images above this many pixels get 413.
        warmup: run every model once per batch size 1 and max_batch_size (and precompute the maps of the
            registered cameras) before reporting ready.
        projector_cache_size: calibrations whose sampling maps stay in memory (LRU).
        default_models: task -> model name used when a request names none (default: the first sphere model
            of that task by name, else the first flat one).
        cors_origins: browser origins allowed to call the API (none by default).
        log_level: uvicorn's.
    """

    model_repository: Path = Path("models")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    precision: str = "latest"
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    batching: bool = False  # on CPU batching only adds queueing (BENCHMARKS.md); enable for GPU providers
    max_batch_size: int = 8
    max_wait_ms: float = 5.0
    concurrent_batches: int = 2
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    warmup: bool = True
    projector_cache_size: int = 16
    default_models: dict[str, str] = field(default_factory=dict)
    cors_origins: list[str] = field(default_factory=list)
    log_level: str = "info"

    @property
    def preferred_precision(self) -> str | None:
        """The precision whose highest version is a model's default; None: the highest version."""
        return None if self.precision == "latest" else self.precision

    def validate(self, source: str = "<config>") -> ServeConfig:
        def bad(name: str, expected: str, got: Any) -> ConfigError:
            return ConfigError(f"{source}: field {name!r}: expected {expected}, got {got!r}")

        self.model_repository = Path(self.model_repository)
        if not isinstance(self.host, str) or not self.host:
            raise bad("host", "a host name or address", self.host)
        for name, lo, hi in (
            ("port", 0, 65535),
            ("workers", 1, 64),
            ("intra_op_threads", 0, 1024),
            ("inter_op_threads", 0, 1024),
            ("max_batch_size", 1, 1024),
            ("concurrent_batches", 1, 64),
            ("max_upload_bytes", 1024, 1 << 34),
            ("max_image_pixels", 1, 1 << 31),
            ("projector_cache_size", 1, 4096),
        ):
            val = getattr(self, name)
            if not isinstance(val, int) or isinstance(val, bool) or not lo <= val <= hi:
                raise bad(name, f"an integer in [{lo}, {hi}]", val)
        if not isinstance(self.max_wait_ms, (int, float)) or isinstance(self.max_wait_ms, bool) or not 0 <= self.max_wait_ms <= 10_000:
            raise bad("max_wait_ms", "a number of milliseconds in [0, 10000]", self.max_wait_ms)
        for name in ("batching", "warmup"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "true or false", getattr(self, name))
        if self.precision not in ("latest", "fp32", "int8"):
            raise bad("precision", "'latest', 'fp32' or 'int8'", self.precision)
        if not isinstance(self.default_models, dict) or not all(
            k in ("segmentation", "depth") and isinstance(v, str) for k, v in self.default_models.items()
        ):
            raise bad("default_models", "a mapping {segmentation|depth: model name}", self.default_models)
        if not isinstance(self.cors_origins, list) or not all(isinstance(o, str) for o in self.cors_origins):
            raise bad("cors_origins", "a list of origins", self.cors_origins)
        if self.log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
            raise bad("log_level", "one of critical, error, warning, info, debug, trace", self.log_level)
        return self

    @property
    def session_threads(self) -> int:
        """onnxruntime intra-op threads per run (``intra_op_threads``, or cores / (workers x concurrent runs))."""
        if self.intra_op_threads:
            return self.intra_op_threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores // (self.workers * self.concurrent_batches))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_repository"] = str(self.model_repository)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<config>") -> ServeConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {unknown}; valid: {sorted(known)}")
        return cls(**dict(data)).validate(source)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> ServeConfig:
    """Settings from a YAML file (optional), then ``overrides`` (values that are ``None`` are skipped)."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        import yaml

        path = Path(path)
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
        data.update(loaded)
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
    return ServeConfig.from_dict(data, source)
