"""The service's memory budget: cache budgets in bytes, admission of requests, the worst-case estimate.

``memory_budget_bytes`` bounds the process: at start-up the service checks that the worst case
fits (models, caches, and every admitted request at its largest) and refuses a config that does
not, naming the parts. What keeps it there at run time:

* the caches it fills are bounded in bytes (``cache_bytes``), through :mod:`heal_swin.cache` when
  the geometry's map cache is byte-bounded there, else by entries of the worst-case size;
* :class:`Admission`: at most ``max_inflight_requests`` inference requests are processed at once
  (bodies above 1 MiB in all but one of the slots) and ``max_queued_requests`` more wait (their
  bodies read, each at most ``max_upload_bytes``); beyond that 503 + Retry-After before the body is read;
* per request: ``max_upload_bytes``, ``max_image_pixels``, ``max_infer_batch``, ``max_tensor_elements``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from heal_swin.serve.config import ConfigError, ServeConfig
from heal_swin.serve.errors import BusyError

__all__ = [
    "Admission",
    "apply_cache_budget",
    "cache_bytes_in_use",
    "is_inference",
    "rss_bytes",
    "worst_case_bytes",
]

log = logging.getLogger("heal_swin.serve")

# Bytes a request costs at most, per unit of its limits: deliberate over-estimates; bench/bench_serve.py
# measures the server's RSS under the worst request mix against the budget (BENCHMARKS.md).
_PER_UPLOAD_BYTE = 2  # the body, and its copy when multipart parsing spools it
_PER_IMAGE_PIXEL = (
    120  # decoded BGR, mask/overlay, PNG encoding and, for a new size, computing its maps (~100 measured)
)
_PER_TENSOR_ELEMENT = 12  # v2: input + output float32 and a copy (JSON output text is streamed in slices)
_BACKWARD_MAP_BYTES_PER_PIXEL = 40  # the largest cache entry: back-projection maps of one image size
_RUNTIME_BYTES = 160 << 20  # Python, numpy, OpenCV, onnxruntime, FastAPI before any model


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from /proc; 0 where /proc is absent."""
    try:
        fields = Path(f"/proc/{pid or 'self'}/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _byte_caches():
    try:
        from heal_swin import cache  # the byte-bounded LRUs, where the geometry has them
    except ImportError:
        return None
    return cache if hasattr(cache, "configure_memory") and "geometry.maps" in cache.memory_caches() else None


def apply_cache_budget(config: ServeConfig) -> str:
    """Bound the process-wide caches the service fills by ``cache_bytes``; returns how, for the log."""
    total = config.cache_bytes
    cache = _byte_caches()
    if cache is not None:
        caches = cache.memory_caches()
        small = {
            name: min(c.max_bytes, total // 16) for name, c in caches.items() if name.startswith("inference.")
        }
        for name, n in small.items():
            cache.configure_memory(name, max(1, n))
        maps = max(1, total - sum(small.values()))
        cache.configure_memory("geometry.maps", maps)
        return f"sampling maps {maps >> 20} MiB, " + ", ".join(f"{k} {v >> 20} MiB" for k, v in small.items())
    from heal_swin.geometry import projector

    # An entry-counted cache: as many entries as the largest one (maps of a max_image_pixels image) allows.
    entries = max(1, total // (_BACKWARD_MAP_BYTES_PER_PIXEL * config.max_image_pixels))
    projector.set_memory_cache_size(entries)
    return f"sampling maps: {entries} calibration(s) (entry-counted cache)"


def cache_bytes_in_use() -> int | None:
    cache = _byte_caches()
    return None if cache is None else sum(c.nbytes for c in cache.memory_caches().values())


def worst_case_bytes(config: ServeConfig, model_bytes: int) -> dict[str, int]:
    """The parts of the worst case that ``memory_budget_bytes`` must hold."""
    per_request = _PER_UPLOAD_BYTE * config.max_upload_bytes + max(
        _PER_IMAGE_PIXEL * config.max_image_pixels, _PER_TENSOR_ELEMENT * config.max_tensor_elements
    )
    return {
        "runtime": _RUNTIME_BYTES,
        "models": 2 * model_bytes,  # the file and onnxruntime's arena
        "caches": config.cache_bytes,
        "requests in flight": config.max_inflight_requests * per_request,
        "queued requests": config.max_queued_requests * config.max_upload_bytes,
    }


def check_budget(config: ServeConfig, model_bytes: int) -> dict[str, int]:
    parts = worst_case_bytes(config, model_bytes)
    total = sum(parts.values())
    if total > config.memory_budget_bytes:
        detail = ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in parts.items())
        raise ConfigError(
            f"memory_budget_bytes: the worst case needs {total / 2**20:.0f} MiB ({detail}), above the budget of "
            f"{config.memory_budget_bytes / 2**20:.0f} MiB; raise it or lower cache_bytes, max_inflight_requests, "
            "max_queued_requests, max_upload_bytes, max_image_pixels or max_tensor_elements"
        )
    return parts


def is_inference(scope: dict) -> bool:
    """Requests that run a model: every POST under /v1/ and the v2 infer routes."""
    path = scope.get("path", "")
    return scope.get("method") == "POST" and (
        path.startswith("/v1/") or (path.startswith("/v2/models/") and path.endswith("/infer"))
    )


class Admission:
    """At most ``running`` requests processed and ``waiting`` more admitted; others are refused (503).

    Requests with a body above ``heavy_bytes`` (large frames, big v2 batches) may hold at most
    ``running - 1`` of the slots, so one is always left for small requests: a few huge uploads slow
    the service down but cannot starve the ordinary ones.
    """

    def __init__(self, running: int, waiting: int, wait_s: float, heavy_bytes: int = 1 << 20) -> None:
        self.running = running
        self.waiting = waiting
        self.wait_s = wait_s
        self.heavy_bytes = heavy_bytes
        self.admitted = 0  # reading their body, queued or running
        self._slots: asyncio.Semaphore | None = None
        self._heavy: asyncio.Semaphore | None = None

    def enter(self) -> None:
        """Admit a request before its body is read, or raise BusyError (503 + Retry-After)."""
        if self.admitted >= self.running + self.waiting:
            raise BusyError(
                f"busy: {self.running} requests running and {self.waiting} queued (max_inflight_requests, "
                "max_queued_requests); retry after the Retry-After seconds"
            )
        self.admitted += 1

    def leave(self) -> None:
        self.admitted -= 1

    @asynccontextmanager
    async def slot(self, body_bytes: int = 0) -> AsyncIterator[None]:
        """One of the ``running`` slots; BusyError if none frees up within ``wait_s``."""
        if self._slots is None:  # created on the serving loop
            self._slots = asyncio.Semaphore(self.running)
            self._heavy = asyncio.Semaphore(max(1, self.running - 1))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        held: list[asyncio.Semaphore] = []
        try:
            for sem in ([self._heavy] if body_bytes > self.heavy_bytes else []) + [self._slots]:
                await asyncio.wait_for(sem.acquire(), max(0.0, deadline - loop.time()))
                held.append(sem)
        except (asyncio.TimeoutError, TimeoutError):
            for sem in held:
                sem.release()
            raise BusyError(
                f"busy: no model-run slot freed up within {self.wait_s:g} s; retry after the Retry-After seconds"
            ) from None
        try:
            yield
        finally:
            for sem in held:
                sem.release()
