"""The code stays as DESIGN.md and the style guide describe it: layers by import-linter, lint and format by ruff."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return exe


def _run(*cmd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False)


def test_import_layers_hold() -> None:
    """geometry <- inference <- data <- models <- train | export; serve without torch (pyproject's contracts)."""
    r = _run(_tool("lint-imports"), "--no-cache")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "broken" not in r.stdout.split("Contracts:")[-1] or " 0 broken" in r.stdout


def test_ruff_check_is_clean() -> None:
    r = _run(_tool("ruff"), "check", "--no-cache", ".")
    assert r.returncode == 0, r.stdout[-4000:]


def test_ruff_format_is_clean() -> None:
    r = _run(_tool("ruff"), "format", "--check", "--no-cache", ".")
    assert r.returncode == 0, r.stdout[-4000:]
