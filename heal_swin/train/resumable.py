"""Exact resumption of a killed run: sample order, augmentation and RNG as functions of position.

An uninterrupted run and a run killed mid-epoch then resumed from its last checkpoint see the same
batches in the same order with the same augmentation, so they end with the same weights:

- :class:`ResumableSampler` draws each epoch's permutation from ``(seed, epoch)`` only, and after a
  restore skips the samples the interrupted epoch had already consumed;
- every item carries its own seed ``(seed, epoch, position)``; :class:`SeededItems` seeds Python,
  NumPy and torch with it before loading, so random augmentation does not depend on worker
  scheduling or on what ran before;
- :class:`ResumeState` (a Lightning callback) checkpoints the position in the epoch and torch's
  global RNG (dropout, drop-path) and restores both.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["ResumableSampler", "ResumeState", "SeededItems"]


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (SplitMix-style; stable across processes, unlike hash())."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & 0x7FFFFFFFFFFFFFFF


def _shard() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ResumableSampler(Sampler):
    """Yields ``(index, item_seed)``; the order of epoch ``e`` depends only on ``(seed, e)``.

    Under DDP each process takes every ``world_size``-th item of the same permutation (the rank
    is read when iteration starts, so the sampler can be built before the processes exist);
    the permutation is padded by wrapping so every process gets the same number of items.
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True) -> None:
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, samples already consumed)

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at every epoch start
        self.epoch = epoch

    def resume_at(self, epoch: int, consumed: int) -> None:
        self._resume = (epoch, consumed)

    def _per_rank(self) -> int:
        _, world = _shard()
        return -(-self.length // world)

    def __len__(self) -> int:
        # The full epoch, also while resuming: Lightning sizes every epoch from one len() call and
        # counts the restored epoch's batches from where the checkpoint left off.
        return self._per_rank()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        rank, world = _shard()
        n = self._per_rank()
        padded = (order * (-(-n * world // max(self.length, 1))))[: n * world] if self.length else []
        mine = padded[rank::world]
        start = 0
        if self._resume is not None:
            if self._resume[0] == self.epoch:
                start = self._resume[1]
            self._resume = None
        for pos in range(start, len(mine)):
            yield mine[pos], _mix(self.seed, self.epoch, rank, pos)


class SeededItems(Dataset):
    """Wraps a dataset for ``ResumableSampler`` keys: seeds every RNG with the item seed, then loads."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        if isinstance(key, tuple):
            index, seed = key
            random.seed(seed)
            np.random.seed(seed & 0xFFFFFFFF)
            torch.manual_seed(seed)
        else:
            index = key
        return self.dataset[index]


class ResumeState(L.Callback):
    """Checkpoints the position inside the epoch and torch's RNG; restores them on resume.

    Restoring happens in ``load_state_dict``, i.e. before Lightning builds the training iterator
    (with workers it starts drawing indices at once) and without relying on epoch-start hooks,
    which Lightning skips when it restarts mid-epoch.
    """

    def __init__(self, sampler: ResumableSampler, batch_size: int) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.batches = 0  # training batches started in the current epoch
        self.epoch = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.epoch != trainer.current_epoch:
            self.batches = 0
        self.epoch = trainer.current_epoch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches = 0
        self.epoch = trainer.current_epoch + 1

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches": self.batches, "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.batches = int(state["batches"])
        torch.set_rng_state(state["torch_rng"])
        self.sampler.set_epoch(self.epoch)
        if self.batches:
            self.sampler.resume_at(self.epoch, self.batches * self.batch_size)
