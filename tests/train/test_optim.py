"""Optimizer and LR schedule (timm's): which parameters decay, and the LR curve in closed form."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch import nn

from heal_swin.models import create_model
from heal_swin.train.tasks import SegmentationTask, make_optimizer, make_scheduler


def _should_decay(model: nn.Module) -> dict[str, bool]:
    """Independent of timm's grouping: by module type and parameter role."""
    out = {}
    for mod_name, mod in model.named_modules():
        for p_name, _ in mod.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            no = (
                isinstance(mod, nn.LayerNorm)
                or p_name in ("bias", "q_bias", "v_bias", "relative_position_bias_table", "logit_scale")
                or ".cpb_mlp." in f".{name}"
            )
            out[name] = not no
    return out


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("heal_swin_tiny", {"nside": 4}),
        ("swin_unet_tiny", {"img_size": (16, 16), "v2": True}),
        ("s2cnn_seg_tiny", {"nside": 4}),
    ],
)
@pytest.mark.parametrize("kind", ["adamw", "adam", "sgd"])
def test_no_decay_parameters_get_weight_decay_zero(name: str, overrides: dict, kind: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **overrides)
    opt = make_optimizer(model, kind, lr=1e-2, weight_decay=0.1)
    wd_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    want = _should_decay(model)
    named = dict(model.named_parameters())
    assert set(want) == set(named) and len(wd_of) == len(named)  # every parameter is optimised once
    for n, p in named.items():
        assert wd_of[id(p)] == (0.1 if want[n] else 0.0), n
    if name.startswith("heal_swin"):
        assert any("relative_position_bias_table" in n for n in named) and any(
            "logit_scale" in n for n in named
        )
    if kind in ("adam", "adamw"):
        assert all(g.get("fused") for g in opt.param_groups)


def test_adamw_step_shrinks_only_decayed_weights() -> None:
    """The effect, not the bookkeeping: with zero gradients an AdamW step is pure decoupled decay."""
    torch.manual_seed(0)
    model = create_model("heal_swin_tiny", nside=4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = make_optimizer(model, "adamw", lr=0.1, weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if _should_decay(model)[n] else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor, msg=n)


def _closed_form(s: int, lr: float, min_lr: float, warmup: int, total: int) -> float:
    """LR of optimizer step ``s`` (0-based): linear warm-up from 0, then cosine to ``min_lr``."""
    if s < warmup:
        return lr * s / warmup
    t = min((s - warmup) / (total - warmup), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))


@pytest.mark.parametrize("warmup", [0, 7])
def test_cosine_schedule_equals_closed_form(warmup: int) -> None:
    p = nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=0.02)
    sched = make_scheduler(
        opt, {"schedule": "cosine", "warmup_steps": warmup, "min_lr": 1e-4}, total_steps=50
    )
    for s in range(60):  # past the end: stays at min_lr
        assert opt.param_groups[0]["lr"] == pytest.approx(
            _closed_form(s, 0.02, 1e-4, warmup, 50), abs=1e-12
        ), s
        opt.step()
        sched.step_update(num_updates=s + 1)


def test_warmup_then_constant() -> None:
    p = nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=0.5)
    assert make_scheduler(opt, {"schedule": "none", "warmup_steps": 0}, 10) is None
    sched = make_scheduler(opt, {"schedule": "none", "warmup_steps": 4}, 10)
    lrs = []
    for s in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step_update(num_updates=s + 1)
    assert lrs == pytest.approx([0.0, 0.125, 0.25, 0.375] + [0.5] * 8)


def test_lightning_training_follows_the_schedule(tmp_path) -> None:
    """Wired into Lightning: the LR each training step used, as the closed form says."""
    torch.manual_seed(0)
    n = 8 * 4**2
    data = [{"image": torch.randn(3, n), "label": torch.randint(0, 3, (n,))} for _ in range(6)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)  # 3 steps per epoch
    optim = {
        "optimizer": "adamw",
        "lr": 1e-2,
        "weight_decay": 0.01,
        "schedule": "cosine",
        "warmup_steps": 2,
        "min_lr": 0.0,
    }
    task = SegmentationTask(
        "heal_swin_tiny", {"nside": 4, "num_classes": 3}, ["a", "b", "c"], optim, void_class=None
    )
    seen: list[float] = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
        default_root_dir=str(tmp_path),
        accelerator="cpu",
    )
    trainer.fit(task, loader)
    assert len(seen) == 9
    assert seen == pytest.approx([_closed_form(s, 1e-2, 0.0, 2, 9) for s in range(9)], abs=1e-12)
