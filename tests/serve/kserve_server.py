"""``running_service(config)``: the heal-swin service on a real uvicorn on 127.0.0.1 (a free port), in a thread.

Used by the KServe v2 client tests here and meant for other suites that run the same client test
against several servers (e.g. tritonserver and ours)::

    from tests.serve.kserve_server import running_service
    with running_service(ServeConfig(model_repository=repo)) as url:   # "127.0.0.1:PORT"
        client = tritonclient.http.InferenceServerClient(url)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from heal_swin.serve.app import create_app
from heal_swin.serve.config import ServeConfig
from heal_swin.serve.readiness import free_port, wait_until_ready

__all__ = ["free_port", "running_app", "running_service"]


@contextmanager
def running_service(config: ServeConfig, timeout: float = 60.0) -> Iterator[str]:
    """Serve ``config`` until the block ends; yields ``host:port`` once every model is ready."""
    with running_app(create_app(config), timeout) as url:
        yield url


@contextmanager
def running_app(app, timeout: float = 60.0) -> Iterator[str]:
    """Serve an app made by ``create_app`` (possibly altered by the test) on a free port; yields ``host:port``."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="heal-swin-test-server", daemon=True)
    thread.start()
    url = f"127.0.0.1:{port}"
    try:
        wait_until_ready(
            f"http://{url}", timeout, stopped=lambda: None if thread.is_alive() else "server thread ended"
        )
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
