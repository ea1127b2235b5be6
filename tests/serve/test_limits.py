"""Service hardening on a real uvicorn: a bug is a JSON 500 on a connection that stays usable, body
limits by any transfer encoding, stalled uploads, 405 + Allow, the request queue (503 + Retry-After)
and the memory budget."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import numpy as np
import pytest

from heal_swin.serve.app import create_app
from heal_swin.serve.config import ConfigError, ServeConfig
from heal_swin.serve.memory import worst_case_bytes
from tests.serve.conftest import write_model
from tests.serve.kserve_server import running_app, running_service


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory, frame):
    root = tmp_path_factory.mktemp("limits_repo")
    write_model(root, "seg8", "segmentation", "sphere", nside=8)
    (root / "cameras").mkdir()
    (root / "cameras" / "front.json").write_bytes(frame[3])
    return root


def _files(frame, camera="front"):
    return {"image": ("f.png", frame[2], "image/png")}, {"camera": camera}


def _local_port(r: httpx.Response) -> int:
    return r.extensions["network_stream"].get_extra_info("client_addr")[1]


def test_internal_error_is_json_500_and_the_connection_stays_usable(small_repo, frame):
    app = create_app(ServeConfig(model_repository=small_repo, warmup=False))
    state = app.state.service
    original = state.prepare

    def buggy(entry, data, calib, camera, resize):
        if camera == "front_bug":  # a stand-in for a bug deep in the pipeline
            raise ZeroDivisionError("a bug")
        return original(entry, data, calib, camera, resize)

    state.prepare = buggy
    with running_app(app) as url, httpx.Client(base_url=f"http://{url}", timeout=30) as c:
        files, _ = _files(frame)
        ports = []
        for camera, status in (("front_bug", 500), ("front", 200), ("front_bug", 500), ("front", 200)):
            r = c.post("/v1/segment", files=files, data={"camera": camera})
            assert r.status_code == status, (camera, r.status_code, r.text[:200])
            assert r.headers.get("connection", "").lower() != "close"
            if status == 500:
                assert r.json() == {"error": "internal error (ZeroDivisionError); see the service log"}
            ports.append(_local_port(r))
        assert len(set(ports)) == 1, ports  # one keep-alive connection served all four
        text = c.get("/metrics").text
        assert 'heal_swin_request_errors_total{kind="internal"} 2.0' in text
        assert 'route="/v1/segment",status="500"} 2.0' in text


def test_body_limits_by_transport_stalls_and_405(small_repo, frame):
    cfg = ServeConfig(
        model_repository=small_repo, warmup=False, max_upload_bytes=100_000, body_idle_s=0.5, body_timeout_s=2
    )
    with running_service(cfg) as url:
        base = f"http://{url}"
        big = b"{" + b" " * 150_000 + b"}"
        r1 = httpx.post(base + "/v2/models/seg8/infer", content=big)  # Content-Length
        r2 = httpx.post(
            base + "/v2/models/seg8/infer", content=(big[i : i + 8192] for i in range(0, len(big), 8192))
        )  # chunked
        assert (
            r2.request.headers.get("transfer-encoding") == "chunked"
            and "content-length" not in r2.request.headers
        )
        assert r1.status_code == r2.status_code == 413
        assert (
            "above the limit of 100000 bytes" in r1.json()["error"]
            and "above the limit of 100000 bytes" in r2.json()["error"]
        )
        files, data = _files(frame)
        big_image = {"image": ("f.png", frame[2] + b"\0" * 120_000, "image/png")}
        r3 = httpx.post(base + "/v1/segment", files=big_image, data=data)
        assert r3.status_code == 413
        # a stalled upload: headers promise 1000 bytes, 10 arrive
        host, port = url.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(
                b'POST /v2/models/seg8/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"inputs"'
            )
            t0 = time.monotonic()
            reply = s.recv(4096).decode()
            waited = time.monotonic() - t0
            while chunk := s.recv(4096):  # the server closes the connection after the 408
                reply += chunk.decode()
        assert reply.startswith("HTTP/1.1 408") and "request body not received in time" in reply, reply
        assert waited > 0.3, waited  # the timeout fired, not an immediate refusal
        # 405 names the allowed methods
        r = httpx.get(base + "/v1/segment")
        assert r.status_code == 405 and r.headers["allow"] == "POST" and "error" in r.json()
        r = httpx.post(base + "/v2/health/live")
        assert r.status_code == 405 and r.headers["allow"] == "GET"
        # the service still answers
        assert httpx.post(base + "/v1/segment", files=files, data=data).status_code == 200


def test_queue_full_is_503_with_retry_after(small_repo, frame, monkeypatch):
    from heal_swin.serve import runtime

    release = threading.Event()
    original = runtime.ModelRuntime.run

    def slow(self, batch):
        release.wait(20)
        return original(self, batch)

    monkeypatch.setattr(runtime.ModelRuntime, "run", slow)
    cfg = ServeConfig(
        model_repository=small_repo,
        warmup=False,
        max_inflight_requests=1,
        max_queued_requests=1,
        queue_timeout_s=1,
    )
    files, data = _files(frame)
    with running_service(cfg) as url:
        base = f"http://{url}"
        results: dict[int, httpx.Response] = {}

        def call(i: int) -> None:
            results[i] = httpx.post(base + "/v1/segment", files=files, data=data, timeout=30)

        first = threading.Thread(target=call, args=(0,))
        first.start()
        time.sleep(0.5)  # running, holding the only slot
        queued = threading.Thread(target=call, args=(1,))
        queued.start()
        time.sleep(0.3)  # admitted, waiting for the slot
        r = httpx.post(base + "/v1/segment", files=files, data=data)  # running 1 + queued 1: full
        assert (
            r.status_code == 503
            and r.headers["retry-after"] == "1"
            and "max_queued_requests" in r.json()["error"]
        )
        queued.join(10)  # the queued one gives up after queue_timeout_s
        assert (
            results[1].status_code == 503
            and "within 1 s" in results[1].json()["error"]
            and results[1].headers["retry-after"] == "1"
        )
        release.set()
        first.join(20)
        assert results[0].status_code == 200
        assert httpx.post(base + "/v1/segment", files=files, data=data).status_code == 200  # free again
        assert httpx.get(base + "/v2/health/live").status_code == 200  # never queued


def test_memory_budget_is_checked_and_the_caches_are_bounded(small_repo):
    with pytest.raises(ConfigError) as e:
        create_app(ServeConfig(model_repository=small_repo, memory_budget_bytes=512 << 20, warmup=False))
    msg = str(e.value)
    assert (
        msg.startswith("memory_budget_bytes: the worst case needs ")
        and "above the budget of 512 MiB" in msg
        and "caches 1024 MiB" in msg
    )
    cfg = ServeConfig(model_repository=small_repo, memory_budget_bytes=1 << 30, cache_bytes=64 << 20, max_image_pixels=1 << 20,
                      max_tensor_elements=1 << 20, max_upload_bytes=4 << 20, warmup=False)  # fmt: skip
    parts = worst_case_bytes(cfg, 0)
    assert parts["caches"] == 64 << 20 and parts["queued requests"] == 16 * (4 << 20)
    app = create_app(cfg)
    from heal_swin.serve.memory import _byte_caches

    cache = _byte_caches()
    if cache is not None:
        assert cache.memory_caches()["geometry.maps"].max_bytes <= 64 << 20
    else:
        from heal_swin.geometry import projector

        assert projector.memory_cache_size() == max(1, (64 << 20) // (40 << 20))
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        text = c.get("/metrics").text
    rss = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("heal_swin_process_resident_bytes ")
    )
    assert 10 << 20 < rss < 1 << 40
    assert np.isfinite(rss)


def test_heavy_requests_leave_one_slot_for_small_ones():
    import asyncio

    from heal_swin.errors import InputError
    from heal_swin.serve.memory import Admission

    async def main() -> None:
        adm = Admission(running=2, waiting=8, wait_s=0.2, heavy_bytes=1000)
        release = asyncio.Event()
        entered: list[str] = []

        async def hold(name: str, size: int) -> str:
            try:
                async with adm.slot(size):
                    entered.append(name)
                    await release.wait()
                return "ran"
            except InputError as e:
                return str(e)

        heavy1 = asyncio.create_task(hold("heavy1", 5000))
        await asyncio.sleep(0.01)
        heavy2 = asyncio.create_task(hold("heavy2", 5000))  # a free slot, but not for a second heavy request
        light = asyncio.create_task(hold("light", 10))
        await asyncio.sleep(0.05)
        assert entered == ["heavy1", "light"]
        assert "within 0.2 s" in await heavy2
        release.set()
        assert await heavy1 == "ran" and await light == "ran"
        assert await hold("heavy3", 5000) == "ran"  # free again

    asyncio.run(main())
