"""The surround recipes train HEAL-SWIN and S2CNN on the vehicle sphere end to end (tiny sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from heal_swin.cli import main
from heal_swin.data.surround import SurroundDataset

ROOT = Path(__file__).resolve().parents[2]


def _over(data: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.root={data}", "data.nside=8", "data.batch_size=2", "data.num_workers=0", f"trainer.out_dir={out}",
            "trainer.progress_bar=false", "trainer.max_epochs=1", *extra]  # fmt: skip


@pytest.mark.parametrize(
    "recipe, options",
    [
        ("synthetic_surround_heal_swin.yaml", "model.options={window_size: 4, embed_dim: 8}"),
        (
            "synthetic_surround_s2cnn.yaml",
            "model.options={b_in: 4, bandwidths: [4, 2, 4], features: [4, 4, 4]}",
        ),
    ],
)
def test_surround_recipes_train_on_the_vehicle_sphere(tiny_synth, tmp_path, recipe, options, capsys):
    assert (
        main(["train", "--config", str(ROOT / "train" / recipe), *_over(tiny_synth, tmp_path, options)]) == 0
    )
    run = tmp_path / recipe.removesuffix(".yaml")
    from heal_swin.models.checkpoint import load_model

    model, meta = load_model(run / "model.safetensors")
    assert meta["surround"] is True and meta["base_pixels"] == list(range(12))
    ds = SurroundDataset(tiny_synth, split="val", nside=8)
    x = ds[0]["image"][None]
    assert model(x).shape == (1, 10, 12 * 64)
    stats = json.loads((run / "stats.json").read_text())
    # class counts come from the fused frames: one label per seen vehicle-sphere direction
    seen = sum(
        int(SurroundDataset(tiny_synth, split="train", nside=8)[i]["valid"].sum())
        for i in range(stats["samples_used"])
    )
    assert sum(stats["class_counts"]) == seen
    assert "bench/compare_surround.py" in capsys.readouterr().out
    # the per-image evaluation refuses a vehicle-sphere model in one line
    assert main(["evaluate", "--checkpoint", str(run), "--split", "val"]) == 2
    assert "surround" in capsys.readouterr().err


def test_surround_recipe_needs_the_full_sphere(tiny_synth, tmp_path, capsys):
    recipe = str(ROOT / "train" / "synthetic_surround_heal_swin.yaml")
    assert (
        main(
            [
                "train",
                "--config",
                recipe,
                *_over(tiny_synth, tmp_path, "data.base_pixels=[0, 1, 2, 3, 4, 5, 6, 7]"),
            ]
        )
        == 2
    )
    assert "data.base_pixels" in capsys.readouterr().err


def test_training_augmentation_is_the_rig_mirror(tiny_synth):
    plain = SurroundDataset(tiny_synth, split="all", nside=8)
    mirrored = SurroundDataset(tiny_synth, split="all", nside=8, mirror=1.0)
    from heal_swin.data.surround import vehicle_mirror_index

    idx = torch.from_numpy(np.array(vehicle_mirror_index(plain.grid)))
    a, b = plain[0], mirrored[0]
    torch.testing.assert_close(b["image"], a["image"][:, idx])
    torch.testing.assert_close(b["label"], a["label"][idx])
