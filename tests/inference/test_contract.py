"""The inference contract: the service feeds a model exactly what training's dataset produced.

The service side is the real HTTP path (``POST /v1/segment`` with the dataset's own PNG and
calibration files, the model input captured where onnxruntime gets it); the training side is the
real ``FisheyeDataset``. No code is copied: both must come out bit-identical.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from heal_swin.data.datasets import FisheyeDataset
from heal_swin.data.synthetic import SynthConfig, generate
from heal_swin.geometry import HealpixGrid
from heal_swin.serve import runtime
from heal_swin.serve.app import create_app
from heal_swin.serve.config import ServeConfig
from tests.serve.conftest import write_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "synthetic"
    generate(root, SynthConfig(scenes=2, seed=3, width=160, height=120), workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def served_inputs(tmp_path_factory, synth):
    """A function (model name, sample index) -> the (3, ...) float32 input the service gave onnxruntime."""
    repo = tmp_path_factory.mktemp("repo")
    write_model(repo, "sphere16", "segmentation", "sphere", nside=16)
    write_model(repo, "flat", "segmentation", "flat", img_size=(48, 64), seed=3)
    write_model(
        repo, "flatup", "segmentation", "flat", img_size=(150, 200), seed=4
    )  # upscaled: INTER_AREA too
    seen: list[np.ndarray] = []
    orig = runtime.ModelRuntime.run

    def spy(self, batch):
        seen.append(np.array(batch, copy=True))
        return orig(self, batch)

    mp = pytest.MonkeyPatch()
    mp.setattr(runtime.ModelRuntime, "run", spy)
    ds = FisheyeDataset(synth, "synthetic", split="all")
    with TestClient(create_app(ServeConfig(model_repository=repo, batching=False, warmup=False))) as client:

        def served(model: str, i: int) -> np.ndarray:
            rec = ds.samples[i]
            seen.clear()
            r = client.post(
                "/v1/segment",
                files={
                    "image": ("f.png", Path(rec.image).read_bytes(), "image/png"),
                    "calibration": ("c.json", Path(rec.calibration).read_bytes(), "application/json"),
                },
                data={"model": model},
            )
            assert r.status_code == 200, r.text
            assert len(seen) == 1 and seen[0].shape[0] == 1
            return seen[0][0]

        yield served
    mp.undo()


@pytest.mark.parametrize("i", [0, 5])
def test_sphere_model_input_equals_dataset_tensor(synth, served_inputs, i):
    ds = FisheyeDataset(synth, "synthetic", split="all", view="sphere", grid=HealpixGrid(16))
    want = ds[i]["image"]
    got = served_inputs("sphere16", i)
    assert isinstance(want, torch.Tensor) and tuple(want.shape) == got.shape == (3, 8 * 16**2)
    assert np.array_equal(got, want.numpy())
    assert np.any(got == 0) and np.any(got != 0)  # the frame covers part of the grid


@pytest.mark.parametrize(
    ("model", "hw", "i"), [("flat", (48, 64), 0), ("flat", (48, 64), 5), ("flatup", (150, 200), 1)]
)
def test_flat_model_input_equals_dataset_tensor(synth, served_inputs, model, hw, i):
    ds = FisheyeDataset(synth, "synthetic", split="all", view="flat", size=(hw[1], hw[0]))  # size is (W, H)
    want = ds[i]["image"]
    got = served_inputs(model, i)
    assert tuple(want.shape) == got.shape == (3, *hw)
    assert np.array_equal(got, want.numpy())


def _imports(path: Path) -> set[str]:
    mods: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return mods


def test_export_and_serve_do_not_import_each_other():
    for here, other in (("export", "heal_swin.serve"), ("serve", "heal_swin.export")):
        for path in sorted((ROOT / "heal_swin" / here).glob("*.py")):
            bad = [m for m in _imports(path) if m == other or m.startswith(other + ".")]
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_contract_imports_only_geometry():
    """heal_swin.inference sits below data/models/train/export/serve (DESIGN.md) and imports no torch."""
    above = (
        "heal_swin.data",
        "heal_swin.models",
        "heal_swin.train",
        "heal_swin.export",
        "heal_swin.serve",
        "torch",
    )
    for path in sorted((ROOT / "heal_swin" / "inference").glob("*.py")):
        bad = [m for m in _imports(path) if any(m == a or m.startswith(a + ".") for a in above)]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_one_implementation_of_the_processing():
    """Resizing and projection of model inputs/outputs happen only in heal_swin.inference."""
    callers = [
        *sorted((ROOT / "heal_swin" / "serve").glob("*.py")),
        *sorted((ROOT / "heal_swin" / "export").glob("*.py")),
    ]
    callers += [
        ROOT / "heal_swin" / p for p in ("train/inference.py", "train/evaluate.py", "data/datasets.py")
    ]
    for path in callers:
        text = path.read_text()
        for needle in ("cv2.resize(", ".to_sphere(", ".to_image(", ".to_sphere_depth(", "cv2.INTER_"):
            assert needle not in text, (
                f"{path.relative_to(ROOT)} calls {needle} (use heal_swin.inference.processing)"
            )
