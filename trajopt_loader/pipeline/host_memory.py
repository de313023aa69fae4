"""Keep freed batch memory in the process instead of returning it to the OS (glibc malloc).

Every batch is a fresh set of arrays (tens of MB at thousands of envs). With glibc's defaults,
blocks that large are ``mmap``-ed and ``munmap``-ed on free, or trimmed off the heap top, so every
batch page-faults its memory in again. ``benchmarks/bench_host_pipeline.py`` (Digit rows, window
32, a shared 2-core machine, so numbers vary between runs): 256 envs 190-340 -> 1000-2300
batches/s; 4096 envs 0.3-0.8 -> 0.6-0.9 of the memcpy rate. Raising ``M_MMAP_THRESHOLD`` and
``M_TRIM_THRESHOLD`` (mallopt(3); the same as the environment variables ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_``) makes freed batches reusable heap memory. The price: the process's
resident memory stays at its peak instead of shrinking, which a training process reaches anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import threading

M_TRIM_THRESHOLD = -1  # from <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 2**30  # blocks below 1 GiB come from the heap (mallopt takes an int)
TRIM_THRESHOLD = 2**31 - 1  # never trim the heap top

_lock = threading.Lock()
_done: bool | None = None


def retain_freed_memory() -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` (1 GiB) and ``M_TRIM_THRESHOLD`` (2 GiB) once per process.

    Does nothing (returns False) off glibc Linux, or when the user already chose either setting
    through ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``GLIBC_TUNABLES``.

    Returns:
      True if both thresholds are set (now or by an earlier call).
    """
    global _done
    with _lock:
        if _done is not None:
            return _done
        _done = False
        user_set = any(
            os.environ.get(v) for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
        )
        user_set |= "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or user_set:
            return _done
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _done = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            )
        except (OSError, AttributeError):
            _done = False
        return _done
