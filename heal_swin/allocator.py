"""Optionally keep freed heap memory in the process, so large tensors reuse pages instead of faulting in new ones.

glibc's malloc serves blocks above a dynamic threshold (at most 32 MiB) with a fresh ``mmap`` and
hands memory freed at the top of its heap back to the kernel. A training step allocates and frees
tens to hundreds of MB of activations, so every step faults those pages in again and the kernel
zeroes each one: per ``heal_swin_tiny`` training step (nside 32, batch 8), 8,400 minor faults and
22 ms of system time of a 173 ms step. With both thresholds raised, freed blocks stay in the heap and
the next step reuses them (tens of faults per step): 1.0-1.14x on the training-step benchmark, no gain
visible on the whole quickstart (BENCHMARKS.md, "Training step with the freed memory kept").

Off unless ``HEAL_SWIN_RETAIN_FREED_MEMORY=1``, because the kept heap fragments: torch allocates
64-byte aligned, a freed block is then a little too small for the same request, and a loop that
allocates and frees one 64 MiB tensor grew the resident set by seven blocks (448 MiB) before it
reused them. Training (``heal_swin.train.pipeline.train``) calls :func:`retain_freed_memory` once;
off glibc (musl, macOS) it does nothing. Torch-free, so any process (or benchmark worker) can load it.
"""

from __future__ import annotations

import ctypes
import os
import platform

from heal_swin.errors import InputError

__all__ = ["ENV_SWITCH", "retain_freed_memory"]

ENV_SWITCH = "HEAL_SWIN_RETAIN_FREED_MEMORY"
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap (a paper nside-256 activation: ~300 MB)
_TRIM_THRESHOLD = 2**31 - 1  # never shrink the heap top (mallopt takes a C int)


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process if ``HEAL_SWIN_RETAIN_FREED_MEMORY=1``;
    True if both settings took.

    Idempotent. False (nothing changed) with the switch unset, empty or ``0``, or off glibc; an
    InputError naming the variable for any other value.
    """
    switch = os.environ.get(ENV_SWITCH, "").strip()
    if switch not in ("", "0", "1"):
        raise InputError(f"{ENV_SWITCH}: expected 1 (keep freed memory) or 0, got {switch!r}")
    if switch != "1":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # The mmap threshold first: with the trim threshold alone, big blocks would still be mmapped.
    return (
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    )
