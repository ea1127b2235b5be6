"""The service as a real ``heal-swin serve`` process on 127.0.0.1: happy paths, errors, bounded load, metrics."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest

from tests.serve.conftest import ROOT

pytestmark = pytest.mark.slow


def test_endpoints_over_http(server, frame):
    with httpx.Client(base_url=server, timeout=30) as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/models/seg16/ready").json()["ready"] is True
        files = {
            "image": ("f.png", frame[2], "image/png"),
            "calibration": ("c.json", frame[3], "application/json"),
        }
        for fmt in ("mask", "overlay", "sphere"):
            r = c.post("/v1/segment", files=files, data={"format": fmt})
            assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        assert len(c.post("/v1/segment", files=files, data={"format": "json"}).json()["values"]) == 2048
        r = c.post("/v1/depth", files=files, data={"format": "npy"})
        assert np.load(io.BytesIO(r.content)).shape == (121, 160)
        assert c.post("/v1/depth", files=files).headers["content-type"] == "image/png"
        r = c.post(
            "/v2/models/seg8/infer",
            json={
                "inputs": [{"name": "input", "shape": [1, 3, 512], "datatype": "FP32", "data": [0.1] * 1536}]
            },
        )
        assert r.json()["outputs"][0]["shape"] == [1, 10, 512]
        r = c.post("/v1/segment", files={"image": ("f.png", b"nope", "image/png")}, data={"camera": "front"})
        assert r.status_code == 415 and "error" in r.json()
        r = c.post(
            "/v1/segment",
            files={"image": ("f.png", frame[2] + b"\0" * (21 << 20), "image/png")},
            data={"camera": "front"},
        )
        assert r.status_code == 413
        assert c.get("/").status_code == 200 and c.get("/openapi.json").status_code == 200


def test_bounded_concurrent_load(server, frame):
    """16 clients x 50 requests (segmentation at nside 8, the 160x121 frame): zero errors, batches > 1."""
    _ok, data = cv2.imencode(".png", frame[0])
    files = {"image": ("f.png", data.tobytes(), "image/png")}
    statuses: list[int] = []

    def client(i: int) -> list[int]:
        out = []
        with httpx.Client(base_url=server, timeout=60) as c:
            for _ in range(50):
                r = c.post("/v1/segment", files=files, data={"camera": "front", "model": "seg8"})
                out.append(r.status_code)
                if r.status_code == 200:
                    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        for res in pool.map(client, range(16)):
            statuses += res
    seconds = time.perf_counter() - t0
    assert len(statuses) == 800 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    print(f"\n800 requests in {seconds:.1f} s = {800 / seconds:.0f} req/s")
    text = httpx.get(server + "/metrics").text
    count = sum_ = 0.0
    for line in text.splitlines():
        if line.startswith('heal_swin_batch_size_count{model="seg8"}'):
            count = float(line.split()[-1])
        if line.startswith('heal_swin_batch_size_sum{model="seg8"}'):
            sum_ = float(line.split()[-1])
    assert sum_ >= 800 and count < sum_, (count, sum_)  # concurrent requests shared batches
    assert 'route="/v1/segment",status="200"' in text


def test_cli_errors_are_one_line():
    r = subprocess.run(
        [sys.executable, "-m", "heal_swin.cli", "serve", "--model-repository", "/nonexistent/repo"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "/nonexistent/repo" in r.stderr
