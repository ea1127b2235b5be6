"""``model.init_from``: a run starts from a model file's weights (fine-tuning, e.g. nside 8 -> 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from heal_swin.cli import main
from heal_swin.models.checkpoint import read_model_metadata

ROOT = Path(__file__).resolve().parents[2]
SMALL = "model.options={window_size: 4, embed_dim: 8}"


def _train(recipe: str, data: Path, out: Path, name: str, *extra: str) -> Path:
    args = [
        "train",
        "--config",
        str(ROOT / "train" / recipe),
        "--no-eval",
        f"data.root={data}",
        "data.batch_size=4",
        "data.num_workers=0",
        f"trainer.out_dir={out}",
        f"trainer.name={name}",
        "trainer.progress_bar=false",
        SMALL,
        *extra,
    ]
    assert main(args) == 0
    return out / name / "model.safetensors"


@pytest.fixture(scope="module")
def source(tiny_data, tmp_path_factory) -> Path:
    """A segmentation model trained at nside 8 (weights far from their initialisation)."""
    out = tmp_path_factory.mktemp("src")
    return _train(
        "quickstart.yaml", tiny_data, out, "src", "data.nside=8", "trainer.max_epochs=2", "optim.lr=1.0e-2"
    )


def test_weights_start_from_the_file_at_another_nside(tiny_data, tmp_path, source) -> None:
    """With a zero learning rate the fine-tuned model is the source's weights, now on the nside-16 grid;
    without init_from the same run starts elsewhere."""
    common = ("data.nside=16", "trainer.max_epochs=1", "optim.lr=0.0")
    tuned = _train("quickstart.yaml", tiny_data, tmp_path, "ft", *common, f"model.init_from={source}")
    fresh = _train("quickstart.yaml", tiny_data, tmp_path, "fresh", *common)
    want, got, other = load_file(str(source)), load_file(str(tuned)), load_file(str(fresh))
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert not all(torch.equal(want[k], other[k]) for k in want)
    assert read_model_metadata(tuned)["metadata"]["nside"] == 16
    assert read_model_metadata(tuned)["model_config"]["nside"] == 16


def test_depth_keeps_the_source_depth_scale(tiny_data, tmp_path) -> None:
    """A depth model's output is standardised log-depth; fine-tuning keeps the source's mean / std so the
    loaded head keeps its meaning (here the data differ: other frames, so other statistics)."""
    src = _train(
        "synthetic_depth_heal_swin.yaml", tiny_data, tmp_path, "dsrc", "data.nside=8", "trainer.max_epochs=1"
    )
    meta = read_model_metadata(src)["metadata"]
    tuned = _train(
        "synthetic_depth_heal_swin.yaml",
        tiny_data,
        tmp_path,
        "dft",
        "data.nside=8",
        "trainer.max_epochs=1",
        "data.limit_train=4",
        f"model.init_from={src}",
    )
    got = read_model_metadata(tuned)["metadata"]
    stats = json.loads((tmp_path / "dft" / "stats.json").read_text())  # what a resume reads
    assert (stats["depth_log_mean"], stats["depth_log_std"]) == (
        meta["depth_log_mean"],
        meta["depth_log_std"],
    )
    fit = _stats_of(tiny_data, tmp_path)  # the fine-tuning data's own statistics differ
    assert abs(fit["depth_log_mean"] - meta["depth_log_mean"]) > 1e-6
    assert (got["depth_log_mean"], got["depth_log_std"]) == (meta["depth_log_mean"], meta["depth_log_std"])


def _stats_of(data: Path, out: Path) -> dict:
    from heal_swin.train.config import load_config
    from heal_swin.train.pipeline import dataset_stats

    recipe = ROOT / "train" / "synthetic_depth_heal_swin.yaml"
    over = [
        f"data.root={data}",
        "data.nside=8",
        "data.limit_train=4",
        f"trainer.out_dir={out}",
        "trainer.name=fit",
    ]
    return dataset_stats(load_config(recipe, over))


@pytest.mark.parametrize(
    "extra, words",
    [
        (("model.init_from=/nonexistent/m.safetensors",), ["model.init_from", "no such model file"]),
        (("data.task=depth",), ["model.init_from", "expected a heal_swin_tiny depth model", "segmentation"]),
        (("model.options={window_size: 4, embed_dim: 12}",), ["model.init_from", "expected shape"]),
    ],
)
def test_bad_init_from_is_one_line_exit_2(tiny_data, tmp_path, source, capsys, extra, words) -> None:
    args = [
        "train",
        "--config",
        str(ROOT / "train" / "quickstart.yaml"),
        "--no-eval",
        f"data.root={tiny_data}",
        "data.nside=8",
        "data.num_workers=0",
        f"trainer.out_dir={tmp_path}",
        "trainer.max_epochs=1",
        "trainer.progress_bar=false",
        f"model.init_from={source}",
        SMALL,
        *extra,
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err
