"""Absurd calibrations and corrupt model files at the service's edges: 422 for an upload, and a
one-line exit-2 start-up error of ``heal-swin serve`` for a bad ``cameras/`` file or a corrupt
``model.onnx`` whose checksum matches its manifest (never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from heal_swin.export.manifest import load_manifest, save_manifest, sha256_file
from heal_swin.serve.app import create_app
from heal_swin.serve.config import ServeConfig
from heal_swin.serve.readiness import wait_until_ready
from heal_swin.serve.repository import RepositoryError
from tests.serve.conftest import ROOT, free_port, write_model


@pytest.fixture(scope="module")
def client(repo):
    with TestClient(create_app(ServeConfig(model_repository=repo, warmup=False))) as c:
        wait_until_ready(c, 30, interval=0.02)
        yield c


def _absurd(frame) -> list[tuple[bytes, str]]:
    cal = json.loads(frame[3])
    out = []
    for key, value in (("k1", 10**400), ("k4", 1e300), ("width", 10**12), ("aspect_ratio", 1e-9)):
        c = json.loads(frame[3])
        c["intrinsic"][key] = value
        out.append((json.dumps(c).encode(), f"intrinsic.{key}"))
    big = json.dumps(cal).replace(str(cal["intrinsic"]["width"]), "9" * 5000, 1)
    out.append((big.encode(), "intrinsic.width"))
    out.append((b"[" * 200_000 + b"]" * 200_000, "nested"))
    out.append((json.dumps({**cal, "pad": "x" * (1 << 20)}).encode(), "bytes"))
    return out


def test_absurd_calibration_uploads_are_422(client, frame):
    for calib, words in _absurd(frame):
        r = client.post(
            "/v1/segment",
            files={
                "image": ("f.png", frame[2], "image/png"),
                "calibration": ("c.json", calib, "application/json"),
            },
        )
        assert r.status_code == 422, (words, r.status_code, r.text[:300])
        msg = r.json()["error"]
        assert msg.startswith("calibration upload: field ") and words in msg and len(msg) < 600, msg
    # the service still answers good requests afterwards
    r = client.post(
        "/v1/segment",
        files={
            "image": ("f.png", frame[2], "image/png"),
            "calibration": ("c.json", frame[3], "application/json"),
        },
    )
    assert r.status_code == 200


def _serve(repo: Path, *extra: str) -> subprocess.CompletedProcess:
    # A subprocess with a timeout: were the error missed, the server would start and never return.
    cmd = [
        sys.executable,
        "-m",
        "heal_swin.cli",
        "serve",
        "--model-repository",
        str(repo),
        "--port",
        str(free_port()),
        "--no-warmup",
        "--log-level",
        "warning",
        *extra,
    ]
    return subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _one_line_exit_2(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("heal-swin serve: error: ")
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


@pytest.mark.slow
def test_serve_bad_camera_file_is_one_line(tmp_path, frame):
    write_model(tmp_path, "seg", "segmentation", "sphere", nside=8)
    (tmp_path / "cameras").mkdir()
    cal = json.loads(frame[3])
    cal["intrinsic"]["k2"] = 10**400
    bad = tmp_path / "cameras" / "front.json"
    bad.write_text(json.dumps(cal))
    _one_line_exit_2(_serve(tmp_path), str(bad), "intrinsic.k2")
    bad.write_text("{" * 10_000)
    _one_line_exit_2(_serve(tmp_path), str(bad), "nested")


@pytest.mark.slow
def test_serve_corrupt_model_with_matching_checksum_is_one_line(tmp_path):
    write_model(tmp_path, "seg", "segmentation", "sphere", nside=8)
    onnx_path = tmp_path / "seg" / "1" / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:200] + b"\xde\xad\xbe\xef" * 64)
    m = load_manifest(tmp_path / "seg")
    save_manifest(tmp_path / "seg", m.__class__(**{**m.to_dict(), "onnx_sha256": sha256_file(onnx_path)}))
    _one_line_exit_2(_serve(tmp_path), str(onnx_path), "onnxruntime cannot load")
    _one_line_exit_2(
        _serve(tmp_path, "--workers", "2"), str(onnx_path), "onnxruntime cannot load"
    )  # before forking workers
    # In-process too (the app factory that uvicorn workers call): an InputError, not onnxruntime's.
    with pytest.raises(RepositoryError, match="cannot load"):
        create_app(ServeConfig(model_repository=tmp_path))
