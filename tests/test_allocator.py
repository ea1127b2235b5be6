"""heal_swin.allocator: with the opt-in, freed blocks' pages are reused instead of faulted in again.

The setting is process-wide, so each case runs in its own interpreter and counts the minor page
faults of allocating, touching and freeing a 64 MiB buffer eight times (above glibc's largest
dynamic mmap threshold, so by default every round maps and faults all 16,384 pages afresh). The
buffer is numpy's (plain malloc, with numpy's huge-page advice off so pages are 4 KiB): torch's
64-byte-aligned requests fragment the kept heap first (the module docstring), which is a property
of that allocation pattern, not of the setting.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from heal_swin import allocator
from heal_swin.errors import InputError

PAGES = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")

CHILD = """
import json, resource
import numpy as np
from heal_swin.allocator import retain_freed_memory
took = retain_freed_memory()
faults, rss = [], []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.empty(16 * 2**20, np.float32)
    a.fill(1.0)
    del a
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps({"took": took, "faults": faults, "rss_kib": rss}))
"""

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)


def _rounds(switch: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != allocator.ENV_SWITCH}
    env["NUMPY_MADVISE_HUGEPAGE"] = "0"
    if switch is not None:
        env[allocator.ENV_SWITCH] = switch
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_opted_in_the_freed_pages_are_reused_and_memory_stays_at_one_block():
    system = _rounds(None)
    assert system["took"] is False
    if min(system["faults"][1:]) < PAGES // 2:  # e.g. transparent huge pages for every mapping
        pytest.skip(f"this kernel faults big blocks in few pages ({system['faults']}); nothing to compare")
    kept = _rounds("1")
    assert kept["took"] is True
    assert kept["faults"][0] > PAGES // 2  # the first round grows the heap
    assert max(kept["faults"][1:]) < PAGES // 100, (kept, system)  # then its pages are reused
    assert kept["rss_kib"][-1] - kept["rss_kib"][0] < 8 * 1024, kept  # no growth past the first block


@glibc
def test_0_or_empty_keeps_the_system_defaults():
    for switch in ("0", ""):
        off = _rounds(switch)
        assert off["took"] is False, switch


def test_other_switch_values_are_a_clear_error(monkeypatch):
    monkeypatch.setenv(allocator.ENV_SWITCH, "yes")
    with pytest.raises(InputError, match=r"HEAL_SWIN_RETAIN_FREED_MEMORY: expected 1 .* got 'yes'"):
        allocator.retain_freed_memory()


def test_train_command_exits_2_with_one_line_on_a_bad_switch(tmp_path, capsys, monkeypatch):
    from heal_swin.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{root: {tmp_path}}}\ntrainer: {{out_dir: {tmp_path}}}\n")
    monkeypatch.setenv(allocator.ENV_SWITCH, "true")
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and allocator.ENV_SWITCH in err[0] and "'true'" in err[0], err
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_other_c_libraries_are_left_alone(monkeypatch):
    called = []
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: called.append(a))
    monkeypatch.setenv(allocator.ENV_SWITCH, "1")
    assert allocator.retain_freed_memory() is False
    assert called == []
