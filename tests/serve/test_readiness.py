"""wait_until_ready: returns on 200, names a stopped server, times out on one that never gets ready."""

from __future__ import annotations

import pytest

from heal_swin.serve.readiness import ServiceNotReady, wait_until_ready
from tests.serve.conftest import free_port


class _Client:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.calls = statuses, 0

    def get(self, path: str):
        assert path == "/v2/health/ready"
        self.calls += 1
        status = self.statuses[min(self.calls, len(self.statuses)) - 1]
        return type("R", (), {"status_code": status})()


def test_returns_once_ready() -> None:
    c = _Client([503, 503, 200])
    wait_until_ready(c, 5, interval=0)
    assert c.calls == 3


def test_a_stopped_server_is_named() -> None:
    with pytest.raises(ServiceNotReady, match="stopped while starting: exit 3"):
        wait_until_ready(_Client([503]), 5, stopped=lambda: "exit 3", interval=0)


def test_times_out_on_503_and_on_a_closed_port() -> None:
    with pytest.raises(ServiceNotReady, match="not ready after 0.2 s"):
        wait_until_ready(_Client([503]), 0.2, interval=0.01)
    with pytest.raises(ServiceNotReady, match="not ready after 0.2 s"):
        wait_until_ready(f"http://127.0.0.1:{free_port()}", 0.2, interval=0.01)
