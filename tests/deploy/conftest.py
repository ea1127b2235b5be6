"""A real Triton Inference Server (pytriton's ``tritonserver``, Python backend) on a repository heal-swin wrote.

The repository: hand-built sphere models ``seg`` and ``depth`` (tests/export/sphere_models.py), their
end-to-end models for camera ``small`` exported with ``--triton-backend python`` (``seg_small``,
``depth_small``) and the camera registered as ``cameras/small.json``. ``tritonserver`` loads only the
end-to-end models (it has no onnxruntime backend for the sphere ones). The server runs on 127.0.0.1
with free ports, is always stopped, and its log is printed under a failing test. ``heal-swin serve``
serves the same repository (the end-to-end models over KServe v2), for the same client tests.
"""

from __future__ import annotations

import json
import shutil

import pytest

from heal_swin.export.end_to_end import export_end_to_end
from heal_swin.export.tritonserver import TritonServer
from heal_swin.inference.manifest import load_manifest, save_manifest
from heal_swin.serve.readiness import free_port, wait_until_ready
from tests.export.sphere_models import write_sphere_folder
from tests.export.test_end_to_end import SMALL

E2E_MODELS = ("seg_small", "depth_small", "seg_small_batching")
_SERVERS: list[TritonServer] = []


@pytest.fixture(scope="session")
def deploy_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy_repo")
    write_sphere_folder(root, "seg", "segmentation", nside=8)
    write_sphere_folder(root, "depth", "depth", nside=8, seed=1)
    for name in ("seg", "depth"):
        export_end_to_end(root / name, SMALL, "small", backend="python", max_batch_size=4)
    # The same model with a long batching window, so that concurrent requests surely share executions.
    shutil.copytree(root / "seg_small", root / "seg_small_batching")
    cfg = root / "seg_small_batching" / "config.pbtxt"
    text = cfg.read_text().replace('name: "seg_small"', 'name: "seg_small_batching"')
    cfg.write_text(text.replace("max_queue_delay_microseconds: 5000", "max_queue_delay_microseconds: 500000"))
    m = load_manifest(root / "seg_small_batching")
    m.name = "seg_small_batching"
    save_manifest(root / "seg_small_batching", m)
    (root / "cameras").mkdir()
    (root / "cameras" / "small.json").write_text(json.dumps(SMALL.to_dict()))
    return root


@pytest.fixture(scope="session")
def service_repo(tmp_path_factory, deploy_repo):
    """The same sphere models and camera without the end-to-end folders (what ``heal-swin serve`` runs the pipeline on)."""
    root = tmp_path_factory.mktemp("service_repo")
    for name in ("seg", "depth", "cameras"):
        shutil.copytree(deploy_repo / name, root / name)
    return root


@pytest.fixture(scope="session")
def tritonserver(deploy_repo, tmp_path_factory):
    server = TritonServer(
        deploy_repo, E2E_MODELS, tmp_path_factory.mktemp("tritonserver"), free_port(), free_port()
    )
    _SERVERS.append(server)
    try:
        server.start(timeout=120)
        yield server
    finally:
        server.stop()
        _SERVERS.remove(server)


@pytest.fixture(scope="session")
def heal_swin_serve(deploy_repo):
    """``heal-swin serve`` (uvicorn on 127.0.0.1, in a thread) on the same repository as tritonserver: yields host:port."""
    from heal_swin.serve.config import ServeConfig
    from tests.serve.kserve_server import running_service

    with running_service(ServeConfig(model_repository=deploy_repo)) as url:
        yield url


@pytest.fixture(scope="session")
def service_client(service_repo):
    """Our service in-process (FastAPI TestClient), ready."""
    from fastapi.testclient import TestClient

    from heal_swin.serve.app import create_app
    from heal_swin.serve.config import ServeConfig

    with TestClient(create_app(ServeConfig(model_repository=service_repo))) as client:
        wait_until_ready(client, 60)
        yield client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SERVERS:
        for server in _SERVERS:
            report.sections.append((f"tritonserver log ({server.log_path})", server.log[-8000:]))
