"""Tiny synthetic datasets shared by the data tests (generated once per session, seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from heal_swin.data.synthetic import SynthConfig, generate

TINY = SynthConfig(scenes=4, seed=0, width=160, height=120)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """4 scenes x 4 cameras at 160x120 (read-only: copy before modifying)."""
    root = tmp_path_factory.mktemp("synth") / "synthetic"
    generate(root, TINY, workers=1, progress=False)
    return root


@pytest.fixture
def synth_copy(tiny_synth, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(tiny_synth, dst)
    return dst
