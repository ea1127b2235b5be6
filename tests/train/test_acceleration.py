"""``--precision bf16`` and ``--compile`` for predict / evaluate / train."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heal_swin.cli import main
from heal_swin.errors import InputError
from heal_swin.models.checkpoint import save_model
from heal_swin.models.registry import create_model
from heal_swin.train import acceleration
from heal_swin.train.inference import Predictor


@pytest.fixture()
def model_file(tmp_path):
    torch.manual_seed(0)
    model = create_model("heal_swin_tiny", nside=16, num_classes=4, cosine_attn=False, post_norm=False)
    with torch.no_grad():  # a confident random model, so that argmax is not decided by rounding
        model.head.weight.mul_(50)
    meta = {"task": "segmentation", "class_names": list("abcd"), "class_colours": [[0, 0, 0]] * 4}
    return save_model(tmp_path / "m.safetensors", model, meta)


def test_unknown_or_unsupported_precision_is_an_input_error(monkeypatch) -> None:
    with pytest.raises(InputError, match="--precision: expected one of fp32, bf16, got 'fp16'"):
        acceleration.check_precision("fp16")
    monkeypatch.setattr(acceleration, "bf16_supported", lambda device="cpu": False)
    with pytest.raises(InputError, match="bf16 needs a CPU with AVX512_BF16 or AMX"):
        acceleration.check_precision("bf16")


def test_bf16_prediction_tracks_fp32(model_file, frame) -> None:
    img, cam = frame
    if not acceleration.bf16_supported():  # then the option must refuse, in one line
        with pytest.raises(InputError, match="bf16 needs"):
            Predictor(model_file, precision="bf16")
        return
    fp32 = Predictor(model_file)(img, cam)
    bf16 = Predictor(model_file, precision="bf16")(img, cam)
    assert bf16.sphere.dtype == fp32.sphere.dtype
    agree = (bf16.sphere == fp32.sphere)[fp32.sphere_valid].mean()
    assert agree > 0.97, agree
    assert np.abs(bf16.scores - fp32.scores).max() < 0.1


def test_compiled_prediction_equals_eager(model_file, frame) -> None:
    img, cam = frame
    eager = Predictor(model_file)(img, cam)
    compiled = Predictor(model_file, compile=True)(img, cam)
    np.testing.assert_allclose(compiled.scores, eager.scores, atol=1e-4)
    assert (compiled.sphere == eager.sphere)[eager.sphere_valid].mean() > 0.999


def test_train_recipe_bf16_on_a_cpu_without_it_exits_2(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(acceleration, "bf16_supported", lambda device="cpu": False)
    rc = main(
        [
            "train",
            "--config",
            "train/quickstart.yaml",
            "trainer.precision=bf16-mixed",
            "trainer.accelerator=cpu",
            f"trainer.out_dir={tmp_path}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "trainer.precision" in err[0] and "AVX512_BF16" in err[0]


def test_trainer_compile_trains_through_torch_compile_with_plain_names() -> None:
    from heal_swin.train.tasks import SegmentationTask

    torch.manual_seed(0)
    task = SegmentationTask("heal_swin_tiny", {"nside": 8, "num_classes": 3}, ["a", "b", "c"], optim={})
    names = list(task.state_dict())
    x, y = torch.randn(2, 3, 8 * 64), torch.randint(0, 3, (2, 8 * 64))
    task.loss(task.net(x), y).backward()
    eager = {n: p.grad.clone() for n, p in task.named_parameters()}
    task.zero_grad(set_to_none=True)
    task.compile_model()
    assert task.__dict__["_compiled"] is not None
    task.loss(task.net(x), y).backward()
    for (
        n,
        p,
    ) in task.named_parameters():  # inductor reorders float32 sums: within 1e-4 of each gradient's scale
        torch.testing.assert_close(
            p.grad, eager[n], rtol=1e-3, atol=1e-4 * eager[n].abs().max().item() + 1e-8
        )
    assert list(task.state_dict()) == names  # checkpoints keep plain parameter names
