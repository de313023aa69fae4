"""Resident sets of a working set: the next window's set decoded in the background.

A working-set schedule (:mod:`.working_set`, :mod:`.working_set_sequential`) names the
trajectories resident in each window ``w`` of ``rotate_every`` batches (``schedule.resident(w)``).
:class:`ResidentSets` holds the decoded set of the window being played and loads the next one
in a background thread: a bulk first touch (:mod:`trajopt_loader.store.bulk_read`, its decode
pool, ``LOCAL_DECODE_THREADS``; single-chunk rows decoded straight into the set's arrays). A
batch waits only if that load is not done when its window starts; such waits are recorded and
the first is logged as a warning naming the rotation rule (:func:`.working_set.min_rotate_every`).
A load error is raised by the batch that needs that set (in the caller's ``next()``), not lost
in the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from trajopt_loader.store import host_alloc
from trajopt_loader.transforms.gather import cast_dtype

_log = logging.getLogger(__name__)


class ResidentSets:
    """Decoded working sets, the next one loaded in a background thread.

    Args:
      store: a ``TrajectoryStore``. keys: keys to hold. dtype: their dtype (the batch dtype).
      schedule: a working-set schedule (``resident(w)``: int64 traj_ids of window ``w``;
        ``rotate_every``), e.g. :class:`.working_set.WorkingSetSchedule`.
    :meth:`get` ``(w)`` returns ``{key: flat [rows, *row]}`` and int64 ``offsets [n_traj]`` (-1
    where not resident) of window ``w`` and starts loading ``w + 1``; it holds the sets of ``w``
    and ``w + 1``, and with ``read_threads > 1`` also a set another thread is still waiting for
    (arrays a caller still uses live until it drops them). Errors of a load are raised by the
    :meth:`get` of that window.
    ``waits``: ``(w, seconds)`` of every :meth:`get` that waited for a set loading since the
    previous window (the rotation rule is not met); the first one is logged as a warning.
    """

    def __init__(self, store, keys, dtype, schedule):
        self.store, self.keys, self.dtype = store, tuple(keys), cast_dtype(dtype)
        self.schedule = schedule
        self._sets: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._users: dict[int, int] = {}  # window -> get() calls waiting on / reading it
        self._timed: set[int] = set()
        self.loads = 0
        self.waits: list[tuple[int, float]] = []

    def _load(self, w: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        ids = self.schedule.resident(w)
        lengths = self.store.lengths[ids].astype(np.int64)
        offsets = np.full(len(self.store.trajectories), -1, np.int64)
        offsets[ids] = np.cumsum(lengths) - lengths
        flats = {}
        for key in self.keys:
            shape = self.store.check_uniform(key, ids)[0]
            flat = host_alloc.empty((int(lengths.sum()), *shape), self.dtype)

            def dest(i, flat=flat):  # single-chunk rows stored in the batch dtype: in place
                return flat[offsets[i] : offsets[i] + self.store.lengths[i]]

            for i, rows in self.store.read_whole(key, ids, dest):
                if rows is not None:  # None: already decoded into its rows of flat
                    flat[offsets[i] : offsets[i] + len(rows)] = rows  # casts to the batch dtype
            flats[key] = flat
        self.loads += 1
        return flats, offsets

    def _submit(self, w: int) -> Future:
        f = self._sets.get(w)
        if f is None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="working-set")
            f = self._sets[w] = self._pool.submit(self._load, w)
        return f

    def get(self, w: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The set of window ``w``: ``({key: flat [rows, *row] batch dtype}, offsets [n_traj])``
        (int64 row of each trajectory's first step in ``flat``, -1 where not resident); starts
        loading ``w + 1``.

        Thread-safe (grain's ``read_threads`` map elements of neighbouring windows at once): a
        set is dropped only when no :meth:`get` is waiting for it, and an array handed out stays
        valid while its caller holds it (sets are never reused).
        Raises: what the load of window ``w`` raised (``DataIntegrityError``, ...).
        """
        with self._lock:  # the sets no longer played are dropped before the next is started
            for old in [v for v in self._sets if v not in (w, w + 1) and not self._users.get(v)]:
                self._sets.pop(old).cancel()  # nobody waits on it: a pending load is not run
            ahead = w in self._sets  # started by the previous window: it had a window to load
            current = self._submit(w)
            self._submit(w + 1)
            timed = ahead and not current.done() and w not in self._timed
            if timed:  # the first caller of the window times the wait, not every thread
                self._timed = {v for v in self._timed if v > w - 4} | {w}
            self._users[w] = self._users.get(w, 0) + 1
        t0 = time.perf_counter()
        try:
            return current.result()  # a failed load raises here, in the batch that needs it
        finally:
            with self._lock:
                self._users[w] -= 1
                if not self._users[w]:
                    del self._users[w]
            if timed:
                self._waited(w, time.perf_counter() - t0)

    def _waited(self, w: int, seconds: float) -> None:
        self.waits.append((w, seconds))
        if len(self.waits) == 1:
            _log.warning(
                "working set: the first batch of window %d waited %.2f s for its set to load "
                "(rotate_every=%d batches did not cover the load of a set of %d trajectories); "
                "batches wait at every rotation until rotate_every >= min_rotate_every "
                "(pipeline/working_set.py, rotation rule).",
                w,
                seconds,
                self.schedule.rotate_every,
                len(self.schedule.resident(w)),
            )

    def __getstate__(self) -> dict:
        drop = ("_sets", "_lock", "_pool", "_users", "_timed")
        return {k: v for k, v in self.__dict__.items() if k not in drop}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(
            state, _sets={}, _lock=threading.Lock(), _pool=None, _users={}, _timed=set()
        )
