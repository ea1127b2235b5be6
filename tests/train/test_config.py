"""Recipe validation: unknown keys and wrong types name the key; overrides parse as YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from heal_swin.train.config import ConfigError, config_to_dict, load_config

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
    with pytest.raises(ConfigError, match="override 'trainer.max_epochs=many': key 'trainer.max_epochs'"):
        load_config(None, ["trainer.max_epochs=many"])


def test_override_error_names_the_override_not_the_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim:\n  lr: 1.0e-3\n")
    with pytest.raises(ConfigError, match=r"^override 'optim.lr=fast': key 'optim.lr'"):
        load_config(recipe, ["optim.lr=fast"])
    # an override that replaces a section takes over its keys
    with pytest.raises(ConfigError, match=r"^override 'optim=\{lr: x\}': key 'optim.lr'"):
        load_config(recipe, ["optim={lr: x}"])


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipes_are_valid(recipe):
    cfg = load_config(recipe)
    from heal_swin.models import list_models

    assert cfg.model.name in list_models()


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_recipes_merge_under_the_recipe(tmp_path):
    _write(
        tmp_path,
        "a.yaml",
        "data:\n  nside: 32\n  batch_size: 8\n  base_pixels: [0, 1, 2]\noptim:\n  lr: 1.0e-3\n",
    )
    _write(
        tmp_path, "sub/b.yaml", "model:\n  name: swin_unet_tiny\n  options: {embed_dim: 8, depths: [1, 1]}\n"
    )
    top = _write(
        tmp_path,
        "sub/top.yaml",
        "_base_: [../a.yaml, b.yaml]\ndata:\n  batch_size: 2\n  base_pixels: [5]\n"
        "model:\n  options: {depths: [2]}\ntrainer:\n",
    )
    cfg = load_config(top, ["optim.lr=7e-4"])
    # mappings merge key by key, lists are replaced whole, an empty section changes nothing,
    # overrides apply last; base paths are relative to the recipe that names them
    assert (cfg.data.nside, cfg.data.batch_size, cfg.data.base_pixels) == (32, 2, [5])
    assert cfg.model.name == "swin_unet_tiny" and cfg.model.options == {"embed_dim": 8, "depths": [2]}
    assert cfg.optim.lr == 7e-4 and cfg.trainer.max_epochs == load_config(None).trainer.max_epochs


def test_later_bases_win_and_bases_nest(tmp_path):
    _write(tmp_path, "a.yaml", "optim:\n  lr: 1.0e-3\n  weight_decay: 0.5\n")
    _write(tmp_path, "b.yaml", "_base_: a.yaml\noptim:\n  lr: 2.0e-3\n")
    _write(tmp_path, "c.yaml", "optim:\n  lr: 3.0e-3\n")
    cfg = load_config(_write(tmp_path, "top.yaml", "_base_: [c.yaml, b.yaml]\n"))
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (2.0e-3, 0.5)


@pytest.mark.parametrize(
    "files, match",
    [
        ({"top.yaml": "_base_: missing.yaml\n"}, r"top.yaml -> .*missing.yaml: no such config file"),
        ({"top.yaml": "_base_: top.yaml\n"}, "inherits from itself"),
        ({"top.yaml": "_base_: b.yaml\n", "b.yaml": "_base_: top.yaml\n"}, "inherits from itself"),
        ({"top.yaml": "_base_: {a: 1}\n"}, "key '_base_': expected a file name or a list"),
        (
            {"top.yaml": "_base_: b.yaml\n", "b.yaml": "optim:\n  lr: fast\n"},
            r"top.yaml -> .*b.yaml: key 'optim.lr': expected float",
        ),
        (  # the value comes from the top recipe, the section from the base
            {
                "top.yaml": "_base_: b.yaml\noptim:\n  lr: fast\n",
                "b.yaml": "optim:\n  lr: 1.0e-3\n  weight_decay: 0.1\n",
            },
            r"top.yaml: key 'optim.lr': expected float",
        ),
        (  # a base's unknown key, beside valid keys of the top recipe in the same section
            {"top.yaml": "_base_: b.yaml\ndata:\n  nside: 8\n", "b.yaml": "data:\n  nsides: 8\n"},
            r"top.yaml -> .*b.yaml: unknown key 'data.nsides'",
        ),
        (  # a later base replaces an earlier base's value
            {
                "top.yaml": "_base_: [a.yaml, b.yaml]\n",
                "a.yaml": "data:\n  nside: 8\n",
                "b.yaml": "data:\n  nside: x\n",
            },
            r"top.yaml -> .*b.yaml: key 'data.nside'",
        ),
        (  # an explicit null replaces the base's value, as the merge does: the top recipe set it
            {"top.yaml": "_base_: b.yaml\ndata:\n  nside: null\n", "b.yaml": "data:\n  nside: 8\n"},
            r"top.yaml: key 'data.nside': expected int, got None",
        ),
        ({"top.yaml": "_base_: b.yaml\n", "b.yaml": "- 1\n"}, r"b.yaml: expected a mapping"),
    ],
)
def test_base_errors_name_the_chain(tmp_path, files, match):
    for name, text in files.items():
        _write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / "top.yaml")


def test_recipes_built_on_a_base_differ_from_it_only_where_they_say():
    # the demo recipes are the quickstart / depth recipe with data, schedule and name changed
    root = RECIPES[0].parent
    for top, base in (
        ("synthetic_demo_seg_n32", "quickstart"),
        ("synthetic_demo_depth_mse", "synthetic_depth_heal_swin"),
    ):
        a, b = load_config(root / f"{top}.yaml"), load_config(root / f"{base}.yaml")
        assert a.model == b.model and a.data.task == b.data.task and a.data.nside == b.data.nside
        assert (a.optim.lr, a.optim.weight_decay, a.optim.schedule) == (
            b.optim.lr,
            b.optim.weight_decay,
            b.optim.schedule,
        )
        assert a.data.root != b.data.root and a.trainer.max_epochs > b.trainer.max_epochs


@pytest.mark.parametrize(
    "stage_1, stage_2, changed",
    [
        (
            "synthetic_demo_seg_n32",
            "synthetic_demo_seg",
            {"data": ["nside"], "optim": ["lr"], "trainer": ["name", "max_epochs"]},
        ),
        ("synthetic_demo_depth_mse", "synthetic_demo_depth", {"optim": ["depth_loss"], "trainer": ["name"]}),
    ],
)
def test_demo_stage_2_continues_stage_1(stage_1, stage_2, changed):
    """Stage 2 starts from stage 1's model file and changes only what its comment says."""
    root = RECIPES[0].parent
    one, two = load_config(root / f"{stage_1}.yaml"), load_config(root / f"{stage_2}.yaml")
    assert two.model.init_from == f"{one.trainer.out_dir}/{one.trainer.name}/model.safetensors"
    assert one.model.init_from is None
    a, b = config_to_dict(one), config_to_dict(two)
    for section, keys in {**changed, "model": ["init_from"]}.items():
        for key in keys:
            assert a[section][key] != b[section][key], (section, key)
            b[section][key] = a[section][key]
    assert a == b  # nothing else differs


def test_print_config_shows_the_merged_recipe_and_trains_nothing(tmp_path, capsys, monkeypatch):
    import yaml

    from heal_swin.cli import main
    from heal_swin.train.config import config_to_dict

    monkeypatch.chdir(tmp_path)  # a run would create runs/ here
    recipe = RECIPES[0].parent / "synthetic_demo_seg.yaml"
    assert main(["train", "--config", str(recipe), "--print-config", "optim.lr=1e-3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert "_base_" not in printed and printed["optim"]["lr"] == 1e-3
    assert printed["model"]["options"] == {"cosine_attn": False, "post_norm": False}  # from the base
    assert printed == config_to_dict(load_config(recipe, ["optim.lr=1e-3"]))
    assert list(tmp_path.iterdir()) == []
