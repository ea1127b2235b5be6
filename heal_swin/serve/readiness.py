"""Wait until a service answers ``GET /v2/health/ready`` with 200 (scripts, tests, benchmarks).

A client-side helper: it polls a base URL with the standard library (no HTTP client dependency) or
any client object with ``.get(path)`` (an ``httpx.Client``, FastAPI's ``TestClient``).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = ["ServiceNotReady", "wait_until_ready"]

READY_PATH = "/v2/health/ready"


class ServiceNotReady(RuntimeError):
    """The service stopped, or was not ready before the timeout."""


def _ready(target: str | Any) -> bool:
    if isinstance(target, str):
        try:
            with urllib.request.urlopen(target.rstrip("/") + READY_PATH, timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False  # not listening yet, or answering 503 while models load
    return target.get(READY_PATH).status_code == 200


def wait_until_ready(
    target: str | Any,
    timeout: float = 60.0,
    *,
    stopped: Callable[[], str | None] | None = None,
    interval: float = 0.05,
) -> None:
    """Return once ``target`` (``"http://host:port"`` or a client) is ready; raise :class:`ServiceNotReady`
    after ``timeout`` seconds, or as soon as ``stopped()`` returns a reason (e.g. the server process exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        reason = stopped() if stopped is not None else None
        if reason:
            raise ServiceNotReady(f"the service stopped while starting: {reason}")
        if _ready(target):
            return
        if time.monotonic() > deadline:
            raise ServiceNotReady(f"the service was not ready after {timeout:g} s")
        time.sleep(interval)
