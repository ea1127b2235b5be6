"""Service configuration: a pydantic model loaded from YAML (``serve/config.yaml``), then overrides.

Errors keep one line naming the source and field: an unknown key lists the valid keys, a wrong
value says ``expected ..., got ...``. Overrides are ``key=value`` strings (values read as YAML,
``default_models.segmentation=NAME`` for a mapping entry) or a mapping of values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

from heal_swin.errors import InputError

__all__ = ["ConfigError", "ServeConfig", "load_config", "parse_overrides"]


class ConfigError(InputError):
    """A bad service configuration value."""


def _int(default: int, lo: int, hi: int, doc: str) -> Any:
    return Field(
        default, ge=lo, le=hi, description=doc, json_schema_extra={"expected": f"an integer in [{lo}, {hi}]"}
    )


class ServeConfig(BaseModel):
    """Settings of ``heal-swin serve`` (``serve/config.yaml`` documents the defaults)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    model_repository: Path = Field(
        Path("models"),
        description="a Triton model repository: <model>/config.pbtxt + model.json + <model>/<version>/model.onnx, cameras/<name>.json",
        json_schema_extra={"expected": "a folder path"},
    )
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="bind address",
        json_schema_extra={"expected": "a host name or address"},
    )
    port: StrictInt = _int(8000, 0, 65535, "TCP port")
    workers: StrictInt = _int(1, 1, 64, "uvicorn processes (each loads every model)")
    precision: Literal["latest", "fp32", "int8"] = Field(
        "latest",
        description="the version a request without one gets: the highest (latest, as Triton) or the highest of that precision",
        json_schema_extra={"expected": "'latest', 'fp32' or 'int8'"},
    )
    intra_op_threads: StrictInt = _int(
        0, 0, 1024, "onnxruntime threads per run; 0 = CPU cores / (workers x concurrent_batches)"
    )
    inter_op_threads: StrictInt = _int(
        1, 0, 1024, "onnxruntime inter-op threads (sequential execution uses 1)"
    )
    batching: StrictBool = Field(
        False,  # on CPU batching only adds queueing (BENCHMARKS.md); enable for GPU providers
        description="dynamic micro-batching across concurrent requests",
        json_schema_extra={"expected": "true or false"},
    )
    max_batch_size: StrictInt = _int(8, 1, 1024, "a micro-batch runs when it holds this many samples")
    max_wait_ms: float = Field(
        5.0, ge=0, le=10_000, description="... or when its first request waited this long",
        json_schema_extra={"expected": "a number of milliseconds in [0, 10000]"},
    )  # fmt: skip
    concurrent_batches: StrictInt = _int(2, 1, 64, "model runs in flight at once, batched or not")
    max_upload_bytes: StrictInt = _int(20 * 1024 * 1024, 1024, 1 << 34, "request bodies above this get 413")
    max_image_pixels: StrictInt = _int(
        4096 * 4096, 1, 1 << 31, "decoded images above this many pixels get 413"
    )
    max_infer_batch: StrictInt = _int(64, 1, 65536, "KServe v2: the largest batch (dimension 0) of a request")
    max_tensor_elements: StrictInt = _int(
        16 * 1024 * 1024,
        1,
        1 << 34,
        "KServe v2: the most tensor elements per request, inputs and outputs each (413 above)",
    )
    providers: list[Literal["TensorRT", "CUDA", "CPU"]] = Field(
        default_factory=lambda: ["CPU"],
        description="onnxruntime execution providers in order of preference; unavailable ones are skipped (one warning), CPU is the last resort",
        json_schema_extra={"expected": "a list of TensorRT, CUDA, CPU"},
    )
    warmup: StrictBool = Field(
        True, description="run every model (and precompute the registered cameras' maps) before reporting ready",
        json_schema_extra={"expected": "true or false"},
    )  # fmt: skip
    memory_budget_bytes: StrictInt = _int(
        6 << 30,
        64 << 20,
        1 << 40,
        "the process's memory: start-up refuses a config whose worst case does not fit (heal_swin.serve.memory)",
    )
    cache_bytes: StrictInt = _int(
        1 << 30, 1 << 20, 1 << 40, "sampling maps and other precomputed arrays kept in memory (LRU by bytes)"
    )
    max_inflight_requests: StrictInt = _int(
        2, 1, 1024, "inference requests processed at once (raise it with batching)"
    )
    max_queued_requests: StrictInt = _int(
        16, 0, 65536, "inference requests waiting for a slot; more get 503 + Retry-After"
    )
    queue_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="a queued request waiting longer gets 503 + Retry-After",
        json_schema_extra={"expected": "a number of seconds in (0, 3600]"},
    )  # fmt: skip
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="a request body must arrive within this (408)",
        json_schema_extra={"expected": "a number of seconds in (0, 3600]"},
    )
    body_idle_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="... and never stall longer than this (408)",
        json_schema_extra={"expected": "a number of seconds in (0, 3600]"},
    )
    default_models: dict[Literal["segmentation", "depth"], str] = Field(
        default_factory=dict, description="task -> model name used when a request names none",
        json_schema_extra={"expected": "a mapping {segmentation|depth: model name}"},
    )  # fmt: skip
    cors_origins: list[str] = Field(
        default_factory=list,
        description="browser origins allowed to call the API",
        json_schema_extra={"expected": "a list of origins"},
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info",
        description="uvicorn's",
        json_schema_extra={"expected": "one of critical, error, warning, info, debug, trace"},
    )

    @field_validator("max_wait_ms", "queue_timeout_s", "body_timeout_s", "body_idle_s", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("not a number")  # noqa: TRY004 - pydantic reports ValueErrors as validation errors
        return v

    # ------------------------------------------------------------ derived
    @property
    def preferred_precision(self) -> str | None:
        """The precision whose highest version is a model's default; None: the highest version."""
        return None if self.precision == "latest" else self.precision

    @property
    def session_threads(self) -> int:
        """onnxruntime intra-op threads per run (``intra_op_threads``, or cores / (workers x concurrent runs))."""
        if self.intra_op_threads:
            return self.intra_op_threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores // (self.workers * self.concurrent_batches))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (what :meth:`from_dict` reads back)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>") -> ServeConfig:
        """Validated settings; :class:`ConfigError` naming ``source`` and the first bad field."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        known = list(cls.model_fields)
        unknown = sorted(str(k) for k in data if k not in cls.model_fields)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {unknown}; valid: {sorted(known)}")
        try:
            return cls(**dict(data))
        except ValidationError as e:
            raise config_error(e, source, data) from None


def config_error(e: ValidationError, source: str, data: Mapping[str, Any]) -> ConfigError:
    """The first error of ``e`` as one line: ``source: field 'x': expected ..., got ...``."""
    err = e.errors()[0]
    name = str(err["loc"][0]) if err.get("loc") else "?"
    field = ServeConfig.model_fields.get(name)
    extra = field.json_schema_extra if field is not None and isinstance(field.json_schema_extra, dict) else {}
    expected = extra.get("expected") or err.get("msg", "a valid value")
    got = data.get(name, err.get("input")) if isinstance(data, Mapping) else err.get("input")
    return ConfigError(f"{source}: field {name!r}: expected {expected}, got {got!r}")


def parse_overrides(items: Sequence[str], source: str = "override") -> dict[str, Any]:
    """``["port=9000", "default_models.depth=d"]`` -> ``{"port": 9000, "default_models": {"depth": "d"}}`` (YAML values)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{source} {item!r}: expected key=value")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        head, _, sub = key.partition(".")
        if sub:
            if (
                head not in ServeConfig.model_fields
                or ServeConfig.model_fields[head].default_factory is not dict
            ):
                raise ConfigError(
                    f"{source} {item!r}: {head!r} is not a mapping setting; valid: {sorted(ServeConfig.model_fields)}"
                )
            out.setdefault(head, {})[sub] = value
        else:
            out[key] = value
    return out


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | Sequence[str] | None = None
) -> ServeConfig:
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
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the config file ({e})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
        data.update(loaded)
    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return ServeConfig.from_dict(data, source)
