"""Concurrent store I/O: many small zarr requests in flight at once.

Every zarr call from synchronous code (``create_group``, ``create_array``, ``arr[...] = a``,
``arr[lo:hi]``) is one round trip to zarr's I/O event loop (``zarr.core.sync``); for a store of
many small clips (AMASS: ~15K clips of a few hundred frames) those round trips, not the bytes,
set the time of an export or a first touch when they run one after the other. Running them from
a pool of threads keeps ``threads`` requests in flight, so the cost follows the bytes.

:func:`ordered_map` is the one place the store does this (export writes, host-cache fills).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Requests in flight when a local store is exported or first touched (threads mostly wait on
#: zarr's event loop, so more threads than cores pay off).
LOCAL_IO_THREADS = 16


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """``fn(item)`` for every item, ``threads`` at a time, yielded in the items' order.

    ``threads <= 1`` runs in the calling thread. The first exception raised by ``fn`` is raised
    here unchanged (in item order); items not started yet are cancelled and the running ones
    finish before it propagates, so no request outlives the call.
    """
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(min(int(threads), len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for f in futures:
                yield f.result()
        finally:
            for f in futures:
                f.cancel()
