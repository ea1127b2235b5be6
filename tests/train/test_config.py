"""Recipe validation: unknown keys and wrong types name the key; overrides parse as YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from heal_swin.train.config import ConfigError, load_config

RECIPES = sorted((Path(__file__).resolve().parents[2] / "train").glob("*.yaml"))


def test_defaults_and_overrides():
    cfg = load_config(
        None,
        ["trainer.max_epochs=3", "optim.lr=5e-4", "data.base_pixels=[0,1,2]", "model.options={embed_dim: 8}"],
    )
    assert cfg.trainer.max_epochs == 3 and cfg.optim.lr == 5e-4
    assert cfg.data.base_pixels == [0, 1, 2] and cfg.model.options == {"embed_dim": 8}


def test_int_is_accepted_for_float():
    assert load_config(None, ["optim.lr=1"]).optim.lr == 1.0


@pytest.mark.parametrize(
    "text, match",
    [
        ("trainer:\n  max_epoch: 3\n", "unknown key 'trainer.max_epoch'"),
        ("optim:\n  lr: fast\n", "key 'optim.lr': expected float"),
        ("data:\n  task: detection\n", "key 'data.task': expected one of 'segmentation', 'depth'"),
        ("data:\n  base_pixels: [0, x]\n", r"key 'data.base_pixels\[1\]'"),
        ("banana: 1\n", "unknown key 'banana'"),
        ("- a\n- b\n", "expected a mapping"),
        ("data: [\n", "not valid YAML"),
    ],
)
def test_errors_name_file_and_key(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_bad_override():
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(None, ["trainer.max_epochs"])
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        load_config(None, ["trainer.max_epochs=many"])


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_are_valid(recipe):
    cfg = load_config(recipe)
    from heal_swin.models import list_models

    assert cfg.model.name in list_models()
