"""heal_swin.allocator: freed tensors' pages are reused instead of faulted in again.

The setting is process-wide, so each case runs in its own interpreter and counts the minor page
faults of allocating, touching and freeing a 64 MiB tensor eight times (above glibc's largest
dynamic mmap threshold, so by default every round maps and faults all 16,384 pages afresh).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from heal_swin import allocator

PAGES = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")

CHILD = """
import json, resource, sys
import torch
from heal_swin.allocator import retain_freed_memory
took = retain_freed_memory() if sys.argv[1] == "retain" else None
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.empty(16 * 2**20)
    t.fill_(1.0)
    del t
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"took": took, "faults": faults}))
"""

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)


def _rounds(mode: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_retained_memory_is_reused_without_page_faults():
    system = _rounds("system")["faults"]
    if min(system[1:]) < PAGES // 2:  # e.g. transparent huge pages for every mapping
        pytest.skip(f"this kernel faults big blocks in few pages ({system}); nothing to compare")
    retained = _rounds("retain")
    assert retained["took"] is True
    # The first rounds grow the heap (glibc's aligned allocation asks a little more than a freed
    # block holds until blocks coalesce); from then on the rounds reuse its pages.
    assert retained["faults"][0] > PAGES // 2
    assert max(retained["faults"][-3:]) < PAGES // 100, (retained, system)


@glibc
def test_environment_switch_keeps_the_system_defaults():
    off = _rounds("retain", **{allocator.ENV_SWITCH: "0"})
    assert off["took"] is False
    system = _rounds("system")["faults"]
    if min(system[1:]) >= PAGES // 2:
        assert min(off["faults"][-3:]) >= PAGES // 2, off


def test_other_c_libraries_are_left_alone(monkeypatch):
    called = []
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: called.append(a))
    monkeypatch.delenv(allocator.ENV_SWITCH, raising=False)
    assert allocator.retain_freed_memory() is False
    assert called == []
