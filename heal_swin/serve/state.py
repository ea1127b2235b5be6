"""The state of one service app: repository, onnxruntime sessions, batchers, caches, metrics.

One :class:`ServiceState` is built by :func:`heal_swin.serve.app.create_app` and stored on
``app.state.service``; routers reach it through :func:`get_state`. Nothing here changes another
module's globals: every cache the service fills is its own or bounded by its owner.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Depends, Request

from heal_swin.errors import InputError
from heal_swin.geometry import CalibrationError, FisheyeCamera, ImageSizeError
from heal_swin.inference import processing as pl
from heal_swin.serve.batching import MicroBatcher
from heal_swin.serve.config import ServeConfig
from heal_swin.serve.errors import NotReadyError, WrongTaskError
from heal_swin.serve.images import decode_image
from heal_swin.serve.memory import Admission, apply_cache_budget, cache_bytes_in_use, check_budget, rss_bytes
from heal_swin.serve.metrics import Metrics
from heal_swin.serve.repository import ModelEntry, ModelRepository
from heal_swin.serve.runtime import PROVIDERS, ModelRuntime, available_providers, ort_version
from heal_swin.serve.schemas import ModelSummary

__all__ = ["Prepared", "RunStats", "ServiceState", "StateDep", "get_state"]

log = logging.getLogger("heal_swin.serve")


@dataclass
class Prepared:
    """A decoded request: the image (H, W, 3) BGR uint8, its camera (None for flat models) and the model input."""

    image: np.ndarray
    camera: FisheyeCamera | None
    x: np.ndarray


@dataclass
class RunStats:
    """Model runs of one version (Triton's statistics extension): samples, runs, seconds, last run (ms since epoch)."""

    inferences: int = 0
    executions: int = 0
    seconds: float = 0.0
    last_ms: int = 0


class ServiceState:
    """Repository, sessions (every version of every model), batchers, caches and metrics of one app."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.repo = ModelRepository(config.model_repository, precision=config.preferred_precision)
        self.metrics = Metrics()
        threads, inter = config.session_threads, config.inter_op_threads
        # Every version has a session; the default version's is the one /v1 uses.
        self.version_runtimes: dict[tuple[str, int], ModelRuntime] = {
            (name, v): ModelRuntime(e, threads, inter, config.providers)
            for name, versions in self.repo.versions.items()
            for v, e in versions.items()
        }
        self._warn_providers()
        self.runtimes: dict[str, ModelRuntime] = {
            name: self.version_runtimes[name, e.version] for name, e in self.repo.models.items()
        }
        max_batch = config.max_batch_size if config.batching else 1
        self.stats: dict[tuple[str, int], RunStats] = {}
        self.version_batchers: dict[tuple[str, int], MicroBatcher] = {}
        for (name, v), rt in self.version_runtimes.items():
            default = rt is self.runtimes[name]
            self.version_batchers[name, v] = MicroBatcher(
                rt.run
                if rt.single_tensor
                else rt.run_feeds,  # several tensors: {name: array} per request, not batched
                max_batch=max_batch if default and rt.single_tensor else 1,
                max_wait_ms=config.max_wait_ms,
                on_batch=lambda size, sec, key=(name, v): self._observe(key, size, sec),
                name=name if default else f"{name}/{v}",
                concurrent_batches=config.concurrent_batches,
                concurrency=config.concurrent_batches,
            )
        self.batchers = {
            name: self.version_batchers[name, rt.entry.version] for name, rt in self.runtimes.items()
        }
        self.cameras = pl.LRU(
            256
        )  # parsed calibration uploads by hash (small objects; the maps are cached by bytes)
        model_bytes = sum(_file_bytes(rt.entry.onnx_path) for rt in self.version_runtimes.values())
        self.memory_parts = check_budget(config, model_bytes)
        log.info(
            "memory budget %d MiB; caches: %s", config.memory_budget_bytes >> 20, apply_cache_budget(config)
        )
        self.admission = Admission(
            config.max_inflight_requests, config.max_queued_requests, config.queue_timeout_s
        )
        self.metrics.watch_memory(rss_bytes, cache_bytes_in_use)
        self.warm_error: str | None = None
        for name in self.runtimes:
            self.metrics.ready.labels(name).set(0)

    def _observe(self, key: tuple[str, int], size: int, seconds: float) -> None:
        self.metrics.observe_batch(key[0], size, seconds)
        st = self.stats.setdefault(key, RunStats())
        st.inferences += size
        st.executions += 1
        st.seconds += seconds
        st.last_ms = int(time.time() * 1000)

    def _warn_providers(self) -> None:
        """One warning line when a configured execution provider does not run the models here."""
        if not self.version_runtimes:
            return
        used = sorted({p for rt in self.version_runtimes.values() for p in rt.providers})
        missing = [p for p in self.config.providers if PROVIDERS[p] not in used]
        if missing:
            log.warning(
                "execution provider(s) %s not available here (onnxruntime %s offers %s); the models run on %s",
                ", ".join(missing), ort_version(), ", ".join(available_providers()), ", ".join(used),
            )  # fmt: skip

    @property
    def ready(self) -> bool:
        return all(rt.ready for rt in self.version_runtimes.values())

    def warm_up(self) -> None:
        """Run every model at batch 1 (and max batch when batching), precompute the registered cameras' maps."""
        try:
            sizes = (1, self.config.max_batch_size) if self.config.batching else (1,)
            for name, rt in self.runtimes.items():
                if self.config.warmup:
                    for cam in self.repo.cameras.values():
                        if rt.manifest is not None and rt.manifest.input_kind == "sphere":
                            proj = pl.projector_for(cam, rt.manifest)
                            proj.forward_maps, proj.backward_maps()
                    log.info("model %s warmed up in %.2f s", name, rt.warm_up(sizes))
                else:
                    rt.ready = True
                self.metrics.ready.labels(name).set(1)
            for other in self.version_runtimes.values():  # versions only asked for by number: batch 1
                if other.ready:
                    continue
                if self.config.warmup:
                    other.warm_up((1,))
                else:
                    other.ready = True
        except Exception as e:  # reported by /v2/health/ready, logged with its traceback
            self.warm_error = f"warm-up failed: {e}"
            log.exception("warm-up failed")

    # ------------------------------------------------------------ lookups
    def entry_for(self, task: str, name: str | None) -> ModelEntry:
        entry = self.repo.model(name) if name else self.repo.default_model(task, self.config.default_models)
        if not self.serves_v1(entry.name):
            raise WrongTaskError(
                f"model {entry.name!r} is not a heal-swin {task} model with a fisheye pipeline (no model.json, or "
                f"another interface); call it over KServe v2: /v2/models/{entry.name}/infer"
            )
        if entry.manifest.task != task:
            other = "/v1/depth" if entry.manifest.task == "depth" else "/v1/segment"
            raise WrongTaskError(f"model {entry.name!r} is a {entry.manifest.task} model; use {other}")
        return entry

    def serves_v1(self, name: str) -> bool:
        """A model with our manifest whose ONNX interface is the manifest's: float32 (B, 3, ...) in, one output."""
        rt = self.runtimes[name]
        m = rt.manifest
        return (
            m is not None and rt.single_tensor and rt.inputs[0].datatype == "FP32"
            and list(rt.inputs[0].shape[1:]) == list(m.input_shape[1:])
        )  # fmt: skip

    def runtime(self, name: str) -> ModelRuntime:
        rt = self.runtimes[name]
        if not rt.ready:
            raise NotReadyError(self.warm_error or f"model {name!r} is warming up; retry shortly")
        return rt

    def v2_model(
        self, name: str, version: str | None, ready: bool = False
    ) -> tuple[ModelEntry, ModelRuntime, MicroBatcher]:
        """A model version (default: the model's default version); NotReadyError if ``ready`` and still warming up."""
        entry = self.repo.model(name, version)
        key = (entry.name, entry.version)
        rt = self.version_runtimes[key]
        if ready and not rt.ready:
            raise NotReadyError(
                self.warm_error or f"model {name!r} (version {entry.version}) is warming up; retry shortly"
            )
        return entry, rt, self.version_batchers[key]

    def summary(self, name: str) -> ModelSummary:
        """What /v1/models says about a model's default version (models with a manifest)."""
        rt = self.runtimes[name]
        m = rt.manifest
        return ModelSummary(
            name=name, model_name=m.model_name, task=m.task, input_kind=m.input_kind, nside=m.nside,
            base_pixels=m.base_pixels, img_size=m.img_size, class_names=m.class_names, class_colours=m.class_colours,
            precision=rt.entry.precision, ready=rt.ready,
        )  # fmt: skip

    # ------------------------------------------------------------ requests
    def camera_from_upload(self, data: bytes) -> FisheyeCamera:
        def parse() -> FisheyeCamera:
            # Size, nesting and value limits of the geometry's calibration reader (CalibrationError: 422).
            return FisheyeCamera.from_json_text(data, source="calibration upload")

        return self.cameras.get(hashlib.sha256(data).hexdigest(), parse)

    def prepare(
        self, entry: ModelEntry, data: bytes, calib: bytes | None, camera_name: str | None, resize: bool
    ) -> Prepared:
        """Decode the upload, find its camera (upload or registered name) and compute the model input."""
        m = entry.manifest
        if calib is not None and camera_name:
            raise InputError("give either a calibration upload or a registered camera name, not both")
        camera = None
        if calib is not None:
            camera = self.camera_from_upload(calib)
        elif camera_name:
            camera = self.repo.camera(camera_name)
        elif m.input_kind == "sphere":
            raise InputError(
                f"model {entry.name!r} works on the sphere: send a 'calibration' file (WoodScape JSON) "
                f"or the name of a registered 'camera' ({', '.join(self.repo.cameras) or 'none registered'})"
            )
        image = decode_image(data, self.config.max_image_pixels)
        h, w = image.shape[:2]
        if camera is not None and (w, h) != camera.image_size:
            if not resize:
                raise ImageSizeError(
                    f"image size {w}x{h} does not match the calibration {camera.name or camera.source!r} "
                    f"({camera.width}x{camera.height}); send an image of that size or resize=true to scale the calibration"
                )
            try:
                camera = camera.scaled(w, h)
            except (CalibrationError, ValueError) as e:
                raise ImageSizeError(f"calibration cannot be scaled to {w}x{h}: {e}") from None
        return Prepared(image, camera, pl.model_input(image, m, camera))


def _file_bytes(onnx_path) -> int:
    """The model file and its external weights (``model.onnx.data``), if any."""
    return sum(p.stat().st_size for p in onnx_path.parent.glob(onnx_path.name + "*") if p.is_file())


def get_state(request: Request) -> ServiceState:
    """FastAPI dependency: the app's :class:`ServiceState`."""
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]  # a route parameter ``state: StateDep``
