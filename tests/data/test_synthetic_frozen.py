"""The synthetic renderer's output is frozen: the same seed gives the same images, labels, depth and
files as the single-module generator did before it became a package (hashes recorded with that code,
``tests/data/frozen/synthetic_v1.json``). A deliberate change of the output bumps GENERATOR_VERSION
and re-records the file."""

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
        got["calib"] = _h(json.dumps(r["camera"].to_dict(), sort_keys=True).encode())
        assert got == want, cam


def test_written_files_are_frozen(tmp_path):
    root = tmp_path / "s"
    generate(root, SynthConfig(scenes=2, seed=5, width=96, height=72), workers=1, progress=False)
    got = {str(p.relative_to(root)): _h(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}
    assert got == FROZEN["files"]
