"""Large host arrays filled once (the host cache's whole keys, working sets), on plain pages.

numpy asks the kernel for transparent huge pages on every allocation of 4 MiB or more
(``madvise(MADV_HUGEPAGE)``). Where THP defrag is ``madvise`` (a common default), each first
touch of such an array may stall in direct memory compaction: filling a fresh 864 MiB
``np.empty`` array took 5.5 s on this project's machine, the same on an anonymous ``mmap``
without the hint 1.2 s, and gathering windows from either ran at the same speed. A first touch
of a 15K-clip store is mostly such filling, so arrays that are filled once and then read go
through :func:`empty`, which also maps the pages in one call (``MAP_POPULATE``, where the
platform has it): faulting in 864 MiB page by page took 0.49 s, populated at map time 0.26 s.
"""

from __future__ import annotations

import mmap

import numpy as np


def empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialized C-order array ``shape`` of ``dtype`` on anonymous 4 KiB pages (mapped
    in at once: it is about to be filled whole).

    Freed with the array (the buffer is the array's base). Small arrays (< 4 MiB) come from
    ``np.empty``.
    """
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if n < 4 * 2**20:
        return np.empty(shape, dtype)
    if hasattr(mmap, "MAP_POPULATE"):  # Linux
        buf = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
    else:
        buf = mmap.mmap(-1, n)
    return np.frombuffer(buf, dtype).reshape(shape)
