"""The suite's caches: byte-bounded LRU eviction, the disk cache's atomicity, permissions, no pickle."""

from __future__ import annotations

import os
import stat
import threading

import numpy as np
import pytest

from heal_swin import cache
from heal_swin.cache import ENTRY_OVERHEAD, DiskCache, LRUCache, nbytes_of


def _mb(n: float) -> np.ndarray:
    return np.zeros(int(n * 2**20), np.uint8)


def test_lru_evicts_least_recently_used_by_bytes():
    c = LRUCache(3 * 2**20 + 4 * ENTRY_OVERHEAD)
    for k in "abc":
        c.get(k, lambda: _mb(1))
    assert len(c) == 3 and c.nbytes == 3 * (2**20 + ENTRY_OVERHEAD)
    c.get("a", lambda: pytest.fail("a is cached"))  # a becomes the most recent
    c.get("d", lambda: _mb(1.5))  # 4.5 MiB > 3 MiB budget: evict b, then c
    assert "a" in c and "d" in c and "b" not in c and "c" not in c
    assert c.nbytes == 2**20 + int(1.5 * 2**20) + 2 * ENTRY_OVERHEAD <= c.max_bytes
    c.max_bytes = int(1.5 * 2**20) + ENTRY_OVERHEAD  # lowering the budget evicts now, oldest first
    assert [k for k in "abcd" if k in c] == ["d"]
    assert c.nbytes <= c.max_bytes
    assert c.stats()["hits"] == 1 and c.stats()["misses"] == 4


def test_lru_value_above_the_budget_is_returned_not_kept():
    c = LRUCache(2**20)
    calls = []
    for _ in range(2):
        v = c.get("big", lambda: calls.append(1) or _mb(2))
        assert v.nbytes == 2 * 2**20
    assert len(calls) == 2 and len(c) == 0 and c.nbytes == 0


def test_lru_entry_bound_and_array_free_values():
    c = LRUCache(10 * ENTRY_OVERHEAD)
    for i in range(25):
        c.get(i, lambda: object())  # array-free values cost the overhead: at most 10 kept
    assert len(c) == 10 and 24 in c and 14 not in c
    c.max_items = 3
    assert len(c) == 3 and c.maxsize == 3


def test_nbytes_of_counts_arrays_once_through_containers():
    a = np.zeros(1000, np.float32)

    class Holder:
        def __init__(self):
            self.x, self.y, self.same = a, {"k": [a[:10], np.ones(5, np.int64)]}, a

    assert nbytes_of(Holder()) == 4000 + 40  # the view a[:10] of a counted array is free
    assert nbytes_of((a, a)) == 4000


def test_registry_configures_named_caches():
    import heal_swin.geometry.projector  # noqa: F401  (registers geometry.maps)

    c = LRUCache(2**30, name="test.registry")
    assert cache.memory_caches()["test.registry"] is c
    cache.configure_memory("test.registry", 123456)
    assert c.max_bytes == 123456
    with pytest.raises(KeyError, match="geometry.maps"):  # the error lists the known caches
        cache.configure_memory("no.such.cache", 1)
    with pytest.raises(ValueError, match="max_bytes"):
        c.max_bytes = 0


def test_lru_is_thread_safe():
    c = LRUCache(50 * (800 + ENTRY_OVERHEAD))

    def work(seed):
        rng = np.random.default_rng(seed)
        for k in rng.integers(0, 200, 500):
            v = c.get(int(k), lambda k=k: np.full(100, k, np.int64))
            assert v[0] == k

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert c.nbytes == len(c) * (800 + ENTRY_OVERHEAD) <= c.max_bytes


def test_disk_cache_round_trip_with_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        d = DiskCache(tmp_path / "sub")
        arrays = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.ones(3, bool)}
        got = d.get("k1", lambda: arrays)
        assert got is not None and set(got) == {"a", "b"}
        path = d.path("k1")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
        loaded = d.get("k1", lambda: pytest.fail("must come from disk"))
        np.testing.assert_array_equal(loaded["a"], arrays["a"])
        assert [p.name for p in path.parent.iterdir()] == ["k1.npz"]  # no temporary left behind
    finally:
        os.umask(old)


def test_disk_cache_write_is_atomic(tmp_path, monkeypatch):
    d = DiskCache(tmp_path)
    d.save("k", {"a": np.arange(3)})
    before = d.path("k").read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")  # a writer killed mid-file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.warns(UserWarning, match="could not write k.npz"):
        assert d.save("k", {"a": np.arange(1000)}) is False
    assert d.path("k").read_bytes() == before  # the old entry is intact
    assert [p.name for p in tmp_path.iterdir()] == ["k.npz"]


def test_disk_cache_recomputes_corrupt_and_pickled_files(tmp_path):
    d = DiskCache(tmp_path)
    d.path("bad").write_bytes(b"garbage")
    assert d.load("bad") is None
    np.savez(d.path("pickled"), a=np.array([{"evil": 1}], dtype=object))  # needs pickle to read
    assert d.load("pickled") is None
    np.testing.assert_array_equal(d.get("pickled", lambda: {"a": np.arange(2)})["a"], np.arange(2))


def test_s2cnn_arrays_share_the_caches(tmp_path, monkeypatch):
    from heal_swin.models.s2cnn import _cache

    monkeypatch.setenv("HEAL_SWIN_CACHE_DIR", str(tmp_path))
    _cache.MEMORY.clear()
    calls = []
    build = lambda: calls.append(1) or {"m": np.eye(3)}
    a = _cache.cached_arrays("test_eye", {"n": 3}, build)
    b = _cache.cached_arrays("test_eye", {"n": 3}, build)
    assert a is b and len(calls) == 1 and not a["m"].flags.writeable
    (file,) = (tmp_path / "s2cnn").glob("test_eye-*.npz")
    assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~_umask()
    _cache.MEMORY.clear()
    c = _cache.cached_arrays("test_eye", {"n": 3}, build)  # from disk
    assert len(calls) == 1 and np.array_equal(c["m"], np.eye(3))
    assert cache.memory_caches()["s2cnn.arrays"] is _cache.MEMORY


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
