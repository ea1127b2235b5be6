"""Config, repository and micro-batcher units."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil

import numpy as np
import pytest

from heal_swin.errors import InputError
from heal_swin.serve.batching import MicroBatcher
from heal_swin.serve.config import ConfigError, ServeConfig, load_config
from heal_swin.serve.repository import (
    InvalidNameError,
    ModelRepository,
    NotFoundError,
    RepositoryError,
    check_name,
)
from tests.serve.conftest import ROOT, write_model


# ------------------------------------------------------------------ config
def test_config_file_and_overrides(tmp_path):
    cfg = load_config(ROOT / "serve" / "config.yaml", {"port": 9000, "host": None})
    assert cfg.port == 9000 and cfg.host == "127.0.0.1" and cfg.max_batch_size == 8 and not cfg.batching
    # serve/config.yaml documents the defaults: loading it changes nothing
    assert load_config(ROOT / "serve" / "config.yaml") == ServeConfig()
    # key=value overrides (YAML values, dotted keys into a mapping), applied over the file
    cfg = load_config(
        ROOT / "serve" / "config.yaml",
        ["port=9001", "batching=true", "default_models.depth=d16", "cors_origins=[http://a]"],
    )
    assert (cfg.port, cfg.batching, cfg.default_models, cfg.cors_origins) == (
        9001,
        True,
        {"depth": "d16"},
        ["http://a"],
    )
    # the JSON round trip that multi-worker runs rely on (HEAL_SWIN_SERVE_CONFIG) keeps every value and type
    custom = ServeConfig(
        model_repository=tmp_path,
        port=9002,
        max_wait_ms=2.5,
        default_models={"segmentation": "s"},
        warmup=False,
    )
    back = ServeConfig.from_dict(json.loads(json.dumps(custom.to_dict())), "env")
    assert back == custom and back.model_repository == tmp_path and back != ServeConfig()


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("port: 99999", "port"),
        ("workers: 0", "workers"),
        ("precision: fp16", "precision"),
        ("max_wait_ms: -1", "max_wait_ms"),
        ("batching: maybe", "batching"),
        ("colour: red", "unknown setting"),
        ("default_models: {classification: x}", "default_models"),
        ("[1, 2]", "mapping"),
        ("port: [", "YAML"),
    ],
)
def test_config_errors(tmp_path, text, word):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=word) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: ") and "\n" not in str(e.value)


def test_config_error_messages_name_field_expected_and_got():
    with pytest.raises(ConfigError) as e:
        ServeConfig.from_dict({"port": "eighty"}, "s.yaml")
    assert str(e.value) == "s.yaml: field 'port': expected an integer in [0, 65535], got 'eighty'"
    with pytest.raises(ConfigError) as e:
        ServeConfig.from_dict({"workers": True}, "s.yaml")  # a bool is not an integer here
    assert str(e.value) == "s.yaml: field 'workers': expected an integer in [1, 64], got True"
    with pytest.raises(ConfigError) as e:
        ServeConfig.from_dict({"colour": "red", "port": 1}, "s.yaml")
    assert str(e.value).startswith("s.yaml: unknown setting(s) ['colour']; valid: ['batching', ")
    assert all(f"'{name}'" in str(e.value) for name in ServeConfig.model_fields)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["port"])
    with pytest.raises(ConfigError, match="'port' is not a mapping setting"):
        load_config(None, ["port.x=1"])


def test_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "nope.yaml")


def test_cli_parser_and_threads():
    from heal_swin.serve.cli import add_serve_commands, config_from_args

    parser = argparse.ArgumentParser()
    add_serve_commands(parser.add_subparsers())
    args = parser.parse_args(
        ["serve", "--model-repository", "m", "--workers", "2", "--no-batching", "--intra-op-threads", "3"]
    )
    cfg = config_from_args(args)
    assert cfg.workers == 2 and not cfg.batching and cfg.session_threads == 3
    assert config_from_args(parser.parse_args(["serve", "--model-repository", "m", "--batching"])).batching
    cfg = config_from_args(
        parser.parse_args(
            [
                "serve",
                "--model-repository",
                "m",
                "--port",
                "9",
                "port=7",
                "providers=[CUDA, CPU]",
                "max_infer_batch=3",
            ]
        )
    )
    assert (cfg.port, cfg.providers, cfg.max_infer_batch) == (
        9,
        ["CUDA", "CPU"],
        3,
    )  # flags win over KEY=VALUE
    with pytest.raises(ConfigError, match="field 'providers': expected a list of TensorRT, CUDA, CPU, got"):
        config_from_args(parser.parse_args(["serve", "--model-repository", "m", "providers=[GPU]"]))
    assert ServeConfig(workers=64).session_threads == 1
    # no repository named: the bundled demo models (tests/test_demo_models.py serves them)
    from heal_swin.inference.demo import DEMO_REPOSITORY

    assert config_from_args(parser.parse_args(["serve"])).model_repository == DEMO_REPOSITORY


# ------------------------------------------------------------------ repository
def test_repository_scan(repo):
    r = ModelRepository(repo)
    assert sorted(r.models) == ["depth16", "flatdepth", "flatseg", "seg16", "seg8"]
    assert sorted(r.cameras) == ["demo", "front"]
    assert r.default_model("segmentation", {}).name == "seg16"
    assert r.default_model("segmentation", {"segmentation": "flatseg"}).name == "flatseg"
    with pytest.raises(NotFoundError):
        r.model("nope")
    with pytest.raises(NotFoundError):
        r.camera("nope")
    for bad in ("..", ".", "../x", "a/b", "a\\b", "", "x" * 129, "a b", "é"):
        with pytest.raises(InvalidNameError):
            check_name(bad, "model")


def test_repository_errors(tmp_path):
    with pytest.raises(RepositoryError, match="not a directory"):
        ModelRepository(tmp_path / "nope")
    with pytest.raises(RepositoryError, match="no model folders"):
        ModelRepository(tmp_path)
    write_model(tmp_path, "m", "segmentation", "sphere", nside=8)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(b"changed")
    with pytest.raises(RepositoryError, match="sha256"):
        ModelRepository(tmp_path)
    (tmp_path / "m" / "1" / "model.onnx").unlink()
    with pytest.raises(RepositoryError, match="missing"):
        ModelRepository(tmp_path)
    shutil.rmtree(tmp_path / "m")
    write_model(tmp_path, "m", "segmentation", "sphere", nside=8)
    data = json.loads((tmp_path / "m" / "model.json").read_text())
    data["nside"] = 7
    (tmp_path / "m" / "model.json").write_text(json.dumps(data))
    with pytest.raises(RepositoryError, match="nside"):
        ModelRepository(tmp_path)
    write_model(tmp_path, "m", "segmentation", "sphere", nside=8)
    (tmp_path / "cameras").mkdir()
    (tmp_path / "cameras" / "bad.json").write_text('{"intrinsic": {}}')
    with pytest.raises(InputError, match="intrinsic"):
        ModelRepository(tmp_path)


# ------------------------------------------------------------------ batching
def test_micro_batcher_groups_and_slices():
    batches: list[int] = []

    def run(x: np.ndarray) -> np.ndarray:
        return x * 2 + x.sum(axis=(1, 2), keepdims=True) * 0  # per-sample only

    async def main() -> None:
        b = MicroBatcher(run, max_batch=4, max_wait_ms=20, on_batch=lambda n, s: batches.append(n))
        b.start()
        xs = [np.full((1, 2, 3), i, np.float32) for i in range(10)]
        outs = await asyncio.gather(*(b.submit(x) for x in xs))
        for i, o in enumerate(outs):
            np.testing.assert_array_equal(o, xs[i] * 2)
        big = np.ones((6, 2, 3), np.float32)  # larger than max_batch: runs alone
        np.testing.assert_array_equal(await b.submit(big), big * 2)
        await b.stop()

    asyncio.run(main())
    assert sum(batches) == 16 and max(batches) == 6 and batches[:3] == [4, 4, 2]


def test_micro_batcher_errors_reach_every_request():
    def run(x):
        raise RuntimeError("model failed")

    async def main() -> None:
        b = MicroBatcher(run, max_batch=4, max_wait_ms=5)
        b.start()
        res = await asyncio.gather(*(b.submit(np.zeros((1, 1))) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in res)
        await b.stop()

    asyncio.run(main())


def test_micro_batcher_off_runs_each_request():
    sizes: list[int] = []

    async def main() -> None:
        b = MicroBatcher(lambda x: x + 1, max_batch=1, on_batch=lambda n, s: sizes.append(n))
        b.start()
        outs = await asyncio.gather(*(b.submit(np.zeros((1, 2))) for _ in range(5)))
        assert all((o == 1).all() for o in outs)
        await b.stop()

    asyncio.run(main())
    assert sizes == [1] * 5


def test_micro_batcher_runs_batches_concurrently():
    import threading
    import time

    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def run(x):
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.05)
        with lock:
            active["now"] -= 1
        return x

    async def main() -> None:
        b = MicroBatcher(run, max_batch=2, max_wait_ms=1, concurrent_batches=2)
        b.start()
        xs = [np.full((1, 1), i) for i in range(8)]
        outs = await asyncio.gather(*(b.submit(x) for x in xs))
        assert [int(o[0, 0]) for o in outs] == list(range(8))
        await b.stop()

    asyncio.run(main())
    assert active["max"] == 2


def test_model_input_matches_training_convention(frame):
    """RGB / 255, ImageNet mean/std, grid pixels outside the image exactly 0 (heal_swin.data.datasets)."""
    from heal_swin.export.manifest import Manifest
    from heal_swin.serve import pipeline as pl

    image, camera = frame[0], frame[1]
    m = Manifest(
        name="m",
        model_name="x",
        task="depth",
        input_kind="sphere",
        in_chans=3,
        out_chans=1,
        input_shape=[-1, 3, 2048],
        output_shape=[-1, 1, 2048],
        onnx_sha256="0" * 64,
        opset=18,
        nside=16,
        base_pixels=list(range(8)),
        depth={"log_mean": 0.0, "log_std": 1.0},
        normalisation={
            "colour_order": "RGB",
            "scale": 1 / 255,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
    )
    x = pl.model_input(image, m, camera)
    proj = pl.projector_for(camera, m)
    rgb = proj.to_sphere(image[..., ::-1].copy(), mode="bilinear").astype(np.float32).T / 255
    want = (rgb - np.array([[0.485], [0.456], [0.406]], np.float32)) / np.array(
        [[0.229], [0.224], [0.225]], np.float32
    )
    valid = proj.valid_mask
    assert x.shape == (3, 2048) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, valid], want[:, valid], atol=1e-6)
    assert np.all(x[:, ~valid] == 0) and (~valid).any()
