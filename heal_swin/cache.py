"""The suite's two caches: an in-memory LRU bounded in bytes, and a disk cache of numpy arrays.

Every cache of precomputed arrays uses these (the projector's sampling maps, the inference
contract's projectors and picture indices, the S2CNN transform matrices), so that a process's
memory budget is one set of numbers::

    from heal_swin import cache
    cache.memory_caches()["geometry.maps"].max_bytes = 512 * 2**20   # or configure_memory(...)

Sizes are the bytes of the numpy arrays a value holds (found through dataclasses, dicts,
lists/tuples and objects' ``__dict__``) plus a fixed per-entry overhead, so a bound in bytes
also bounds the number of array-free entries (cameras, projector handles).

The disk cache writes ``.npz`` files through :func:`heal_swin.io.atomic_open` (readers never see a
partial file; normal ``0666 & ~umask`` permissions) and reads them with ``allow_pickle=False``.
A corrupt, stale or unreadable file is recomputed; a failing write costs speed, not correctness.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from heal_swin.io import atomic_open

__all__ = ["ENTRY_OVERHEAD", "DiskCache", "LRUCache", "configure_memory", "memory_caches", "nbytes_of"]

T = TypeVar("T")
ENTRY_OVERHEAD = 256  # bytes charged per entry besides its arrays (key, bookkeeping, small objects)
_REGISTRY: weakref.WeakValueDictionary[str, LRUCache] = weakref.WeakValueDictionary()


def nbytes_of(value: Any, _seen: set[int] | None = None) -> int:
    """Bytes of the numpy arrays reachable from ``value`` (each array counted once)."""
    seen = set() if _seen is None else _seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        base = value.base if isinstance(value.base, np.ndarray) else None
        return 0 if base is not None and id(base) in seen else int(value.nbytes)
    if isinstance(value, (str, bytes, bytearray, int, float, bool, type(None))):
        return len(value) if isinstance(value, (bytes, bytearray)) else 0
    if isinstance(value, Mapping):
        return sum(nbytes_of(v, seen) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(nbytes_of(v, seen) for v in value)
    attrs = getattr(value, "__dict__", None)  # dataclasses too: their derived attributes count
    if attrs is None and dataclasses.is_dataclass(value) and not isinstance(value, type):  # slots
        return sum(nbytes_of(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    return sum(nbytes_of(v, seen) for v in attrs.values()) if attrs else 0


class LRUCache:
    """Thread-safe least-recently-used cache bounded in bytes (and optionally in entries).

    ``get(key, compute)`` returns the cached value or computes, stores and returns it. Entries
    are evicted oldest first while the total exceeds ``max_bytes`` (or ``max_items``); a value
    larger than ``max_bytes`` on its own is returned but not kept.

    Args:
        max_bytes: budget for the values (see :func:`nbytes_of`, plus ``ENTRY_OVERHEAD`` each).
        name: registers the cache in :func:`memory_caches` so a service can set its budget.
        max_items: optional bound on the number of entries as well.
        size_of: bytes of one value (default :func:`nbytes_of`).
    """

    def __init__(
        self,
        max_bytes: int,
        name: str | None = None,
        max_items: int | None = None,
        size_of: Callable[[Any], int] = nbytes_of,
    ) -> None:
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._size_of = size_of
        self._max_bytes = self._check("max_bytes", max_bytes)
        self._max_items = None if max_items is None else self._check("max_items", max_items)
        self.nbytes = 0
        self.hits = self.misses = 0
        self.name = name
        if name is not None:
            _REGISTRY[name] = self

    @staticmethod
    def _check(what: str, n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{what}: expected an integer >= 1, got {n!r}")
        return int(n)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, n: int) -> None:
        with self._lock:
            self._max_bytes = self._check("max_bytes", n)
            self._evict()

    @property
    def max_items(self) -> int | None:
        return self._max_items

    @max_items.setter
    def max_items(self, n: int | None) -> None:
        with self._lock:
            self._max_items = None if n is None else self._check("max_items", n)
            self._evict()

    @property
    def maxsize(self) -> int:
        """Deprecated alias of ``max_items`` for callers of the old entry-count LRUs (0: no entry bound)."""
        return self._max_items or 0

    @maxsize.setter
    def maxsize(self, n: int) -> None:
        self.max_items = n

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value for ``key``; ``compute()`` runs outside the lock on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key][0]
            self.misses += 1
        value = compute()
        self.put(key, value)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        size = self._size_of(value) + ENTRY_OVERHEAD
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            if size > self._max_bytes:
                return
            self._items[key] = (value, size)
            self.nbytes += size
            self._evict()

    def _evict(self) -> None:
        while self._items and (
            self.nbytes > self._max_bytes
            or (self._max_items is not None and len(self._items) > self._max_items)
        ):
            _, (_, size) = self._items.popitem(last=False)
            self.nbytes -= size

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = 0

    def stats(self) -> dict[str, int | None]:
        """entries, bytes, max_bytes, max_items, hits, misses."""
        with self._lock:
            return {
                "entries": len(self._items), "bytes": self.nbytes, "max_bytes": self._max_bytes,
                "max_items": self._max_items, "hits": self.hits, "misses": self.misses,
            }  # fmt: skip


def memory_caches() -> dict[str, LRUCache]:
    """The named in-memory caches of this process, by name (e.g. ``geometry.maps``)."""
    return dict(sorted(_REGISTRY.items()))


def configure_memory(name: str, max_bytes: int) -> None:
    """Set the byte budget of the named cache; ``KeyError`` naming the known caches if unknown."""
    caches = memory_caches()
    if name not in caches:
        raise KeyError(f"memory cache: expected one of {', '.join(caches)}, got {name!r}")
    caches[name].max_bytes = max_bytes


class DiskCache:
    """``.npz`` files of named numpy arrays under one folder: ``<folder>/<key>.npz``.

    ``key`` must be a file-name-safe string (callers use a hash of everything the arrays depend on).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None if absent or unreadable (never unpickles)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                return {name: f[name] for name in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
            return None  # a corrupt or stale entry is recomputed, never fatal

    def save(self, key: str, arrays: Mapping[str, np.ndarray]) -> bool:
        """Write atomically; False (with a warning) if the folder cannot be written."""
        try:
            with atomic_open(self.path(key)) as f:
                np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
            return True
        except OSError as e:
            warnings.warn(f"cache {self.folder}: could not write {key}.npz ({e.strerror or e})", stacklevel=3)
            return False

    def get(self, key: str, compute: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Load ``key`` or compute, save and return it."""
        found = self.load(key)
        if found is not None:
            return found
        arrays = dict(compute())
        self.save(key, arrays)
        return arrays
