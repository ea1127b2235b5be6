"""The synthetic renderer's output is frozen: the same seed gives the same images, labels, depth and
files as the single-module generator did before it became a package (hashes recorded with that code,
``tests/data/frozen/synthetic_v1.json``). A deliberate change of the output bumps GENERATOR_VERSION
and re-records the file. Camera parameters are float64 values from 3x3 BLAS products, whose last
bits differ between CPUs (AVX2 vs AVX-512 kernels): they are compared as numbers to 1e-12."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from heal_swin.data.synthetic import GENERATOR_VERSION, SynthConfig, generate, render_scene_index

FROZEN = json.loads((Path(__file__).parent / "frozen" / "synthetic_v1.json").read_text())


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _assert_close(got: object, want: object, where: str) -> None:
    """Equal structure and strings; numbers equal to 1e-12 (relative, absolute near 0)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for k in want:
            _assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float | int) and not isinstance(want, bool):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), where
    else:
        assert got == want, where


def _cases() -> list[tuple[int, int, int, int]]:
    keys = {tuple(k.split("/")[:3]) for k in FROZEN["arrays"]}
    return sorted((int(seed), int(scene), *map(int, size.split("x"))) for seed, scene, size in keys)


@pytest.mark.parametrize(("seed", "scene", "width", "height"), _cases())
def test_rendered_arrays_are_frozen(seed, scene, width, height):
    assert GENERATOR_VERSION == 1
    res = render_scene_index(SynthConfig(scenes=8, seed=seed, width=width, height=height), scene)
    for cam, r in res.items():
        want = FROZEN["arrays"][f"{seed}/{scene}/{width}x{height}/{cam}"]
        got = {k: _h(np.ascontiguousarray(r[k]).tobytes()) for k in ("image", "label", "depth")}
        assert got == {k: want[k] for k in got}, cam
        _assert_close(r["camera"].to_dict(), want["camera"], cam)


def test_written_files_are_frozen(tmp_path):
    root = tmp_path / "s"
    generate(root, SynthConfig(scenes=2, seed=5, width=96, height=72), workers=1, progress=False)
    files = {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}
    assert sorted(files) == sorted(FROZEN["files"])
    for name, p in files.items():
        want = FROZEN["files"][name]
        if name.startswith("calibration/"):  # float64 camera parameters: values, see above
            _assert_close(json.loads(p.read_text()), want, name)
        else:
            assert _h(p.read_bytes()) == want, name
