"""Concurrent store I/O: many small zarr requests in flight at once.

Every zarr call from synchronous code (``create_group``, ``create_array``, ``arr[...] = a``,
``arr[lo:hi]``) is one round trip to zarr's I/O event loop (``zarr.core.sync``); for a store of
many small clips (AMASS: ~15K clips of a few hundred frames) those round trips, not the bytes,
set the time of an export or a first touch when they run one after the other. Running them from
a pool of threads keeps ``threads`` requests in flight, so the cost follows the bytes.

:func:`ordered_map` is the one place the store does this (export writes, host-cache fills).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Trajectories loaded, encoded and written at once by an export of a local store: one per core
#: this process may use, at most 4. Much of a clip's work holds the GIL (the ``.npz`` parse,
#: building its metadata), so threads beyond the cores mostly trade it: on 2 cores, 15K clips,
#: alternating in one quiet sitting, 2 threads 311-348k vs 4 threads 291-298k frames/s
#: (``benchmarks/README.md``, "Scale").
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
EXPORT_THREADS = min(4, _CORES or 1)
#: How many finished trajectories may wait for their turn (their arrays are held until then).
EXPORT_WINDOW = 32


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], threads: int, window: int | None = None
) -> Iterator[R]:
    """``fn(item)`` for every item, ``threads`` at a time, yielded in the items' order.

    ``threads <= 1`` runs in the calling thread. ``window``: at most this many items are started
    ahead of the one yielded next (bounds the results held: e.g. loaded trajectories), None for
    all at once. The first exception raised by ``fn`` is raised here unchanged (in item order);
    items not started yet are cancelled and the running ones finish before it propagates, so no
    request outlives the call.
    """
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    ahead = len(items) if window is None else max(int(window), 1)
    with ThreadPoolExecutor(min(int(threads), len(items))) as pool:
        futures: deque = deque()
        try:
            for item in items:
                futures.append(pool.submit(fn, item))
                if len(futures) >= ahead:
                    yield futures.popleft().result()
            while futures:
                yield futures.popleft().result()
        finally:
            for f in futures:
                f.cancel()
