"""Optional on-disk cache for precomputed float64 arrays (transform matrices, resampling maps).

In-memory caching is done by ``functools.lru_cache`` on the builders; this module adds a disk
layer when the environment variable ``HEAL_SWIN_CACHE_DIR`` names a directory. Files are
``<dir>/s2cnn/<name>-<sha256>.npz`` where the hash covers the name, the parameters and
``FORMAT_VERSION``; writes go to a temporary file first and are moved in with ``os.replace`` so
that concurrent processes never see a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "cache_key", "cached_arrays"]

FORMAT_VERSION = 1
_ENV = "HEAL_SWIN_CACHE_DIR"


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
    """Return ``build()``, read from / written to the disk cache when ``HEAL_SWIN_CACHE_DIR`` is set.

    A corrupt or unreadable cache file is ignored and rebuilt; a failing write is not an error
    (the cache is an optimisation only).
    """
    root = os.environ.get(_ENV)
    if not root:
        return _readonly(build())
    folder = Path(root) / "s2cnn"
    path = folder / f"{name}-{cache_key(name, params)[:40]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return _readonly({k: z[k] for k in z.files})
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            pass  # fall through and rebuild
    arrays = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}-", suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass
    return _readonly(arrays)
