"""Start ``heal-swin serve`` as a process and wait until it answers ``GET /v2/health/ready`` with 200
(scripts, tests, benchmarks).

Client-side helpers: :func:`wait_until_ready` polls a base URL with the standard library (no HTTP client
dependency) or any client object with ``.get(path)`` (an ``httpx.Client``, FastAPI's ``TestClient``);
:func:`serve_process` runs the CLI on a free port for the length of a ``with`` block.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ServiceNotReady", "free_port", "serve_command", "serve_process", "wait_until_ready"]

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(repository: str | Path, port: int, *options: str) -> list[str]:
    """``python -m heal_swin.cli serve --model-repository REPO --port PORT --log-level warning OPTIONS...``."""
    return [sys.executable, "-m", "heal_swin.cli", "serve", "--model-repository", str(repository),
            "--port", str(port), "--log-level", "warning", *options]  # fmt: skip


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate, then kill after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def serve_process(
    repository: str | Path,
    *options: str,
    timeout: float = 60.0,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``heal-swin serve`` on a free port until the block ends; yields ``(base URL, process)`` once ready.

    The process's output is piped; if it exits while starting, its last 2000 characters are the error.
    """
    port = free_port()
    proc = subprocess.Popen(
        serve_command(repository, port, *options), cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def stopped() -> str | None:
        return (
            None if proc.poll() is None else f"exit {proc.returncode}: {proc.stdout.read().decode()[-2000:]}"
        )

    try:
        wait_until_ready(url, timeout, stopped=stopped, interval=0.1)
        yield url, proc
    finally:
        stop_process(proc)
