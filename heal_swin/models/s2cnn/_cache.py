"""Caches of the S2CNN's precomputed float64 arrays (transform matrices, resampling maps).

In memory: the byte-bounded LRU ``s2cnn.arrays`` (:mod:`heal_swin.cache`; env
``HEAL_SWIN_S2CNN_CACHE_BYTES``, default 1 GiB). On disk, when the environment variable
``HEAL_SWIN_CACHE_DIR`` names a directory: ``<dir>/s2cnn/<name>-<sha256>.npz`` through
:class:`heal_swin.cache.DiskCache` (atomic writes, normal permissions, no pickle), where the hash
covers the name, the parameters and ``FORMAT_VERSION``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from heal_swin.cache import DiskCache, LRUCache

__all__ = ["FORMAT_VERSION", "MEMORY", "cache_key", "cached_arrays"]

FORMAT_VERSION = 1
_ENV = "HEAL_SWIN_CACHE_DIR"
MEMORY = LRUCache(int(os.environ.get("HEAL_SWIN_S2CNN_CACHE_BYTES", str(1 << 30))), name="s2cnn.arrays")


def cache_key(name: str, params: dict[str, Any]) -> str:
    """sha256 hex digest of ``name``, ``params`` (JSON, sorted keys) and the format version."""
    blob = json.dumps({"name": name, "params": params, "version": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _readonly(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def cached_arrays(
    name: str, params: dict[str, Any], build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``build()`` (read-only arrays), from memory, else from / to the disk cache when ``HEAL_SWIN_CACHE_DIR`` is set.

    A corrupt or unreadable cache file is ignored and rebuilt; a failing write is not an error
    (the cache is an optimisation only).
    """
    key = f"{name}-{cache_key(name, params)[:40]}"
    root = os.environ.get(_ENV)

    def load_or_build() -> dict[str, np.ndarray]:
        if not root:
            return _readonly(build())
        return _readonly(DiskCache(Path(root) / "s2cnn").get(key, build))

    return MEMORY.get((root, key), load_or_build)
