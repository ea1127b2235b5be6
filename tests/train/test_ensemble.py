"""``--ensemble`` for predict / evaluate: mean of members, disagreement map, mismatched members."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from heal_swin.cli import main
from heal_swin.data.classes import IGNORE_INDEX, WOODSCAPE_CLASSES
from heal_swin.errors import InputError
from heal_swin.geometry import FisheyeCamera
from heal_swin.models.checkpoint import save_model
from heal_swin.models.registry import create_model
from heal_swin.train.ensemble import EnsemblePredictor, UncertaintySummary
from heal_swin.train.inference import Predictor

NAMES = list(WOODSCAPE_CLASSES.names)
K = len(NAMES)


def _seg_model(path, seed: int, classes: int = K, nside: int = 8):
    torch.manual_seed(seed)
    model = create_model(
        "heal_swin_tiny", nside=nside, num_classes=classes, window_size=4, embed_dim=8, cosine_attn=False
    )
    with torch.no_grad():  # confident random models: argmax is not decided by rounding
        model.head.weight.mul_(50)
    meta = {
        "task": "segmentation",
        "dataset": "synthetic",
        "class_names": NAMES[:classes],
        "class_colours": [[10 * i, 0, 0] for i in range(classes)],
    }
    return save_model(path, model, meta)


def _depth_model(path, seed: int, log_mean: float = 2.0, log_std: float = 0.5):
    torch.manual_seed(seed)
    model = create_model(
        "heal_swin_tiny", nside=8, num_classes=1, window_size=4, embed_dim=8, cosine_attn=False
    )
    meta = {"task": "depth", "depth_log_mean": log_mean, "depth_log_std": log_std}
    return save_model(path, model, meta)


def test_identical_members_equal_the_single_model(tmp_path, frame) -> None:
    img, cam = frame
    a = _seg_model(tmp_path / "a.safetensors", 0)
    single = Predictor(a)(img, cam)
    ens = EnsemblePredictor([a, a, a])(img, cam)
    np.testing.assert_allclose(ens.scores, single.scores, atol=1e-6)
    assert np.array_equal(ens.sphere, single.sphere) and np.array_equal(ens.flat, single.flat)
    valid = ens.sphere_valid
    assert np.all(ens.uncertainty_sphere[valid] == 0) and np.all(np.isnan(ens.uncertainty_sphere[~valid]))
    assert np.nanmax(ens.uncertainty_flat) == 0 and np.isnan(ens.uncertainty_flat[~ens.flat_valid]).all()


def test_different_members_mean_probabilities_and_disagreement(tmp_path, frame) -> None:
    img, cam = frame
    paths = [_seg_model(tmp_path / f"m{s}.safetensors", s) for s in range(3)]
    singles = [Predictor(p)(img, cam) for p in paths]
    ens = EnsemblePredictor(paths)(img, cam)
    mean = np.mean([s.scores for s in singles], axis=0)  # independent: each member alone, then averaged
    np.testing.assert_allclose(ens.scores, mean, atol=1e-5)
    valid = ens.sphere_valid
    ens_cls = mean.argmax(0)
    assert np.array_equal(ens.sphere[valid], ens_cls[valid])
    frac = np.mean([s.scores.argmax(0) != ens_cls for s in singles], axis=0)
    np.testing.assert_allclose(ens.uncertainty_sphere[valid], frac[valid], atol=1e-6)
    assert ens.uncertainty_sphere[valid].mean() > 0.05  # random members disagree
    assert ens.uncertainty_sphere[valid].max() <= 1  # 1: the mean's argmax is no member's


def test_members_share_the_input_only_when_they_normalise_alike(tmp_path, frame, monkeypatch) -> None:
    img, cam = frame
    a, b = (_seg_model(tmp_path / f"{n}.safetensors", s) for n, s in (("a", 0), ("b", 1)))
    c = _seg_model(tmp_path / "c.safetensors", 2)
    meta_c = json.loads(json.dumps(Predictor(c).meta))
    meta_c.update(mean=[0.2, 0.3, 0.4], std=[0.5, 0.6, 0.7])  # another normalisation
    c = save_model(tmp_path / "c2.safetensors", Predictor(c).model, meta_c)
    singles = [Predictor(p)(img, cam) for p in (a, b, c)]
    calls = []
    original = Predictor.model_input
    monkeypatch.setattr(
        Predictor, "model_input", lambda self, *args: calls.append(1) or original(self, *args)
    )
    ens = EnsemblePredictor([a, b, c])(img, cam)
    assert len(calls) == 2  # a and b share one projected input, c gets its own
    np.testing.assert_allclose(ens.scores, np.mean([s.scores for s in singles], axis=0), atol=1e-5)


def test_depth_ensemble_is_mean_log_depth_with_member_std(tmp_path, frame) -> None:
    img, cam = frame
    a = _depth_model(tmp_path / "a.safetensors", 0)
    b = _depth_model(tmp_path / "b.safetensors", 1, log_mean=1.0, log_std=0.8)  # other statistics
    da, db = Predictor(a)(img, cam), Predictor(b)(img, cam)
    ens = EnsemblePredictor([a, b])(img, cam)
    v = ens.sphere_valid
    la, lb = np.log(da.sphere[v].astype(np.float64)), np.log(db.sphere[v].astype(np.float64))
    np.testing.assert_allclose(np.log(ens.sphere[v]), (la + lb) / 2, atol=1e-4)
    np.testing.assert_allclose(ens.uncertainty_sphere[v], np.abs(la - lb) / 2, atol=1e-4)
    same = EnsemblePredictor([a, a])(img, cam)
    np.testing.assert_allclose(same.sphere[v], da.sphere[v], rtol=1e-5)
    assert np.abs(same.uncertainty_sphere[v]).max() < 1e-6


def test_mismatched_members_exit_2_in_one_line(tmp_path, frame, capsys, fv_calib_file) -> None:
    a = _seg_model(tmp_path / "a.safetensors", 0)
    b = _seg_model(tmp_path / "b.safetensors", 1, classes=K - 1)
    c = _seg_model(tmp_path / "c.safetensors", 1, nside=16)
    with pytest.raises(InputError, match="classes"):
        EnsemblePredictor([a, b])
    img, _cam = frame
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), cv2.resize(img, (1280, 966)))
    for other, what in ((b, "classes"), (c, "grid"), (_depth_model(tmp_path / "d.safetensors", 0), "task")):
        rc = main(
            [
                "predict",
                "--ensemble",
                f"{a},{other}",
                str(image),
                "--calib",
                str(fv_calib_file),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and what in err[0] and str(other) in err[0], err


def test_predict_ensemble_writes_uncertainty_map(tmp_path, capsys, fv_calib_file) -> None:
    a, b = (_seg_model(tmp_path / f"m{s}.safetensors", s) for s in (0, 1))
    cam = FisheyeCamera.from_json(fv_calib_file)
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 256, (cam.height, cam.width, 3), dtype=np.uint8), (9, 9), 3)
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), img)
    out = tmp_path / "out"
    rc = main(
        ["predict", "--ensemble", f"{a},{b}", str(image), "--calib", str(fv_calib_file), "--out", str(out)]
    )
    assert rc == 0, capsys.readouterr().err
    u = np.load(out / "uncertainty.npy")
    mask = cv2.imread(str(out / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert u.shape == mask.shape == (cam.height, cam.width)
    inside = mask != IGNORE_INDEX
    assert np.isfinite(u[inside]).all() and np.isnan(u[~inside]).all()
    assert set(np.unique(u[inside])) <= {0.0, 0.5, 1.0} and (u[inside] == 0.5).mean() > 0.05
    assert cv2.imread(str(out / "uncertainty.png")).shape == (cam.height, 2 * cam.width, 3)


def test_uncertainty_summary_splits_correct_and_wrong() -> None:
    s = UncertaintySummary("segmentation", IGNORE_INDEX)
    pred = np.array([1, 1, 2, 2, 3])
    lab = np.array([1, 2, 2, IGNORE_INDEX, 0])
    s.update(pred, lab, np.array([0.0, 0.5, 0.25, 0.9, 1.0]))
    r = s.summary()
    assert r["pixels_correct"] == 2 and r["pixels_wrong"] == 2
    assert r["mean_uncertainty_correct"] == pytest.approx(0.125) and r[
        "mean_uncertainty_wrong"
    ] == pytest.approx(0.75)
    d = UncertaintySummary("depth", IGNORE_INDEX)
    d.update(np.array([1.0, 2.0, 5.0]), np.array([1.1, 4.0, np.inf]), np.array([0.1, 0.3, 0.7]))
    r = d.summary()
    assert (r["pixels_correct"], r["pixels_wrong"]) == (1, 1) and r[
        "mean_uncertainty_wrong"
    ] == pytest.approx(0.3)


def test_evaluate_ensemble_reports_uncertainty(tmp_path, capsys, tiny_data) -> None:
    root = tiny_data
    a, b = (_seg_model(tmp_path / f"m{s}.safetensors", s) for s in (0, 1))
    report = tmp_path / "report"
    args = [
        "evaluate",
        "--ensemble",
        f"{a},{b}",
        "--data-root",
        str(root),
        "--split",
        "train",
        "--limit",
        "2",
    ]
    rc = main([*args, "--report", str(report)])
    out = capsys.readouterr().out
    assert rc == 0 and "ensemble uncertainty (sphere)" in out
    u = json.loads((report / "metrics.json").read_text())["uncertainty"]
    assert u["pixels_correct"] + u["pixels_wrong"] > 0
    assert 0 < max(u["mean_uncertainty_correct"], u["mean_uncertainty_wrong"]) <= 1
