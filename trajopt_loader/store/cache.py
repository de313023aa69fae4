"""Host cache of decoded trajectory arrays and the vectorized window gather.

A Zarr slice read costs ~1 ms in Python, slicing the same rows from RAM ~2 us, so windows are
always gathered from host memory (DESIGN.md, decision 3). Two regimes, per key:

* **whole** (the key of every trajectory of the cache's share fits the byte budget; the share
  is every trajectory unless :meth:`HostCache.share` names the ones a process can play, and
  widens when another is gathered; the arrays are filled once from
  :mod:`.bulk_read`, on plain pages, :mod:`.host_alloc`): one concatenated host array
  ``flat [sum_T, *row]`` per row shape plus int64 ``offsets [n_traj]``; a gather is one fancy
  index ``np.take(flat, offsets[traj_ids][:, None] + steps, axis=0)``.
* **chunks** (past the budget): an LRU of decoded time-chunks (the stored Zarr chunks, so a miss
  decodes exactly one chunk) holding at most the byte budget left by whole keys; a gather fetches
  each unique (trajectory, chunk) once and copies its rows out. The host working set is the budget
  plus one chunk, whatever the dataset size. Concurrent readers of one chunk keep one copy.

Dtypes: trajectories are grouped by row shape only. A key's windows come out in its *gather
dtype* in both regimes: ``float_dtype`` for floating keys when the cache has one, else
``np.result_type`` of the stored dtypes of every trajectory holding the key, so a batch's dtype
never depends on which trajectories it mixes. Whole flats are held in the gather dtype; chunks
are cached as stored and cast when copied out. :meth:`HostCache.uniform` checks row shapes.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from trajopt_loader.errors import MissingKeyError, WindowIndexError
from trajopt_loader.store import host_alloc
from trajopt_loader.store.key_meta import KeyMeta
from trajopt_loader.store.layout import TrajectoryInfo
from trajopt_loader.store.root_index import gc_paused

ReadRows = Callable[[int, str, int, int], np.ndarray]
ReadWhole = Callable[[str, np.ndarray], Iterator[tuple[int, np.ndarray]]]


class HostCache:
    """Byte-budgeted host cache over a store's trajectories (see the module docstring).

    Args:
      infos: the store's trajectories (traj_id = position).
      budget: cache size in bytes (decoded arrays).
      read_rows: ``read_rows(traj_id, key, start, stop) -> np.ndarray [stop-start, *row]`` (zarr).
      read_concurrency: trajectories read at once when a key is loaded whole (threads; > 1 hides
        the per-request latency of remote stores on first touch).
      float_dtype: dtype of floating keys in the cache and in gathers (e.g. float32 for a float32
        pipeline over float64 data: half the memory, no cast of each batch).
      read_whole: ``read_whole(key, traj_ids [n], dest) -> iterator of (traj_id, rows [length,
        *row] or None when decoded into dest(traj_id))`` (:meth:`TrajectoryStore.read_whole`)
        loading a key of many trajectories at once (:mod:`.bulk_read`); None reads them one by
        one with ``read_rows``.
    """

    def __init__(
        self,
        infos: Sequence[TrajectoryInfo],
        budget: int,
        read_rows: ReadRows,
        read_concurrency: int = 1,
        float_dtype=None,
        read_whole: ReadWhole | None = None,
    ):
        with gc_paused():  # a lazy TrajectoryTable builds its infos here (none is garbage)
            self._infos = tuple(infos)
        self.budget = int(budget)
        self._read = read_rows
        self.read_concurrency = max(1, int(read_concurrency))
        self.float_dtype = None if float_dtype is None else np.dtype(float_dtype)
        self._read_whole = read_whole
        self._meta: dict[str, KeyMeta] = {}
        # key -> (flats per group, offsets [n_traj], held bool [n_traj], bytes)
        self._whole: dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray, int]] = {}
        self._share: np.ndarray | None = None  # bool [n_traj] (None: every trajectory)
        self._lru: collections.OrderedDict = collections.OrderedDict()
        self._whole_bytes = self._lru_bytes = 0
        self.hits = self.misses = 0
        self._lock = threading.RLock()

    def meta(self, key: str) -> KeyMeta:
        m = self._meta.get(key)
        if m is None:
            m = self._meta[key] = KeyMeta(self._infos, key, self.float_dtype)
            if (m.group < 0).all():
                raise MissingKeyError(
                    f"key {key!r} is in no trajectory of the store; keys of "
                    f"traj 0: {sorted(self._infos[0].keys) if self._infos else []}"
                )
        return m

    def info(self) -> dict:
        """``{"bytes_used", "budget", "hits", "misses", "whole_keys", "chunks"}``."""
        return {
            "bytes_used": self._whole_bytes + self._lru_bytes,
            "budget": self.budget,
            "hits": self.hits,
            "misses": self.misses,
            "whole_keys": sorted(self._whole),
            "chunks": len(self._lru),
        }

    def share(self, traj_ids) -> None:
        """Hold only ``traj_ids`` (int [n]) in whole keys loaded from now on (union over calls).

        A pipeline calls it with the trajectories its process's envs can play, so each process
        of a multi-process run decodes its share, not the whole store. A later gather of another
        trajectory still returns its rows: the key is reloaded with it added (never wrong data).
        """
        ids = np.asarray(traj_ids, np.int64).ravel()
        with self._lock:
            if self._share is None:
                self._share = np.zeros(len(self._infos), bool)
            self._share[ids] = True

    def held(self, key: str) -> np.ndarray:
        """int64 trajectory ids whose ``key`` is held whole (empty when the key is not loaded)."""
        got = self._whole.get(key)
        return np.flatnonzero(got[2]) if got is not None else np.zeros(0, np.int64)

    def has_whole(self, key: str, traj: int | None = None) -> bool:
        """True when ``key`` is already decoded whole (for ``traj``, when given; no loading)."""
        got = self._whole.get(key)
        return got is not None and (traj is None or bool(got[2][traj]))

    def whole(self, key: str, need=None) -> tuple[list[np.ndarray], np.ndarray] | None:
        """Whole-key arrays ``(flats per group, offsets [n_traj])`` if the key fits the budget.

        Holds the trajectories of :meth:`share` (all when never called) plus ``need`` (int [n]
        traj_ids about to be gathered); offsets of trajectories not held are meaningless.
        """
        got = self._whole.get(key)
        if got is not None and (need is None or got[2][need].all()):
            return got[0], got[1]
        m = self.meta(key)
        with self._lock:
            got = self._whole.get(key)
            if got is not None and (need is None or got[2][need].all()):
                return got[0], got[1]
            held = np.ones(len(self._infos), bool) if self._share is None else self._share.copy()
            if need is not None:
                held[need] = True
            if got is not None:
                held |= got[2]
            held &= m.group >= 0
            nbytes, old = int(m.traj_bytes[held].sum()), (got[3] if got is not None else 0)
            if self._whole_bytes - old + nbytes > self.budget:
                return None
            offsets = np.zeros(len(self._infos), np.int64)
            flats = []
            for g, shape in enumerate(m.shapes):
                ids = np.flatnonzero((m.group == g) & held)
                flat = host_alloc.empty((int(m.lengths[ids].sum()), *shape), m.dtype)
                ends = np.cumsum(m.lengths[ids])
                offsets[ids] = ends - m.lengths[ids]

                def fill(i: int, o: int, n: int, flat=flat) -> None:
                    flat[o : o + n] = self._read(i, key, 0, n)  # disjoint rows; cast to m.dtype

                if self._read_whole is not None:
                    dest = None
                    if flat.flags.c_contiguous and all(m.stored[i] == m.dtype for i in ids):

                        def dest(i, flat=flat):  # decoded in place (single-chunk trajectories)
                            return flat[offsets[i] : offsets[i] + m.lengths[i]]

                    for i, rows in self._read_whole(key, ids, dest):
                        if rows is not None:  # None: already decoded into its rows of flat
                            flat[offsets[i] : offsets[i] + m.lengths[i]] = rows  # casts
                else:
                    jobs = [(int(i), int(offsets[i]), int(m.lengths[i])) for i in ids]
                    with ThreadPoolExecutor(max(1, min(self.read_concurrency, len(jobs)))) as pool:
                        list(pool.map(lambda job: fill(*job), jobs))  # 1 worker: local stores
                self.misses += len(ids)
                flats.append(flat)
            self._whole_bytes += nbytes - old
            self._evict(0)
            self._whole[key] = (flats, offsets, held, nbytes)
            return flats, offsets

    def _evict(self, incoming: int) -> None:
        limit = max(0, self.budget - self._whole_bytes - incoming)
        while self._lru and self._lru_bytes > limit:
            _, a = self._lru.popitem(last=False)
            self._lru_bytes -= a.nbytes

    def chunk(self, key: str, traj: int, c: int) -> np.ndarray:
        """Decoded rows ``[c * chunk_rows, (c + 1) * chunk_rows)`` of trajectory ``traj`` (LRU).

        Stored dtype. The read runs outside the lock; when another thread cached the same chunk
        meanwhile, that copy is returned and this one dropped, so ``bytes_used`` stays the sum of
        the cached arrays' ``nbytes``.
        """
        ck = (key, traj, c)
        with self._lock:
            a = self._lru.get(ck)
            if a is not None:
                self._lru.move_to_end(ck)
                self.hits += 1
                return a
        m = self.meta(key)
        n = int(m.chunk[traj])
        a = self._read(traj, key, c * n, min((c + 1) * n, int(m.lengths[traj])))
        with self._lock:
            self.misses += 1
            cached = self._lru.get(ck)
            if cached is not None:  # a concurrent reader inserted it first: keep one copy
                self._lru.move_to_end(ck)
                return cached
            if a.nbytes <= self.budget - self._whole_bytes:
                self._evict(a.nbytes)
                self._lru[ck] = a
                self._lru_bytes += a.nbytes
        return a

    def _ids(self, key: str, traj_ids: np.ndarray, rows: bool = True) -> KeyMeta:
        """Check that ``traj_ids`` [E] hold ``key`` with one row shape (``rows``: name env rows)."""
        m, at = self.meta(key), (lambda e: f"env row {e}: " if rows else "")
        if traj_ids.size and (traj_ids.min() < 0 or traj_ids.max() >= len(self._infos)):
            bad = int(np.flatnonzero((traj_ids < 0) | (traj_ids >= len(self._infos)))[0])
            raise WindowIndexError(
                f"{at(bad)}traj_id {int(traj_ids[bad])} is outside "
                f"[0, {len(self._infos)}) trajectories of the store."
            )
        groups = m.group[traj_ids]
        if traj_ids.size and (groups < 0).any():
            e = int(np.flatnonzero(groups < 0)[0])
            info = self._infos[int(traj_ids[e])]
            raise MissingKeyError(
                f"{at(e)}trajectory {info.path} has no {key!r} (keys: "
                f"{sorted(info.keys)}); select trajectories that have it."
            )
        if traj_ids.size and (groups != groups[0]).any():
            e = int(np.flatnonzero(groups != groups[0])[0])
            a, b = (int(traj_ids[0]), int(traj_ids[e]))
            raise MissingKeyError(
                f"{key!r} row shapes differ: {self._infos[a].path} has rows "
                f"{m.shapes[m.group[a]]} ({m.stored[a]}), {self._infos[b].path} has rows "
                f"{m.shapes[m.group[b]]} ({m.stored[b]})"
                + (f" (env rows 0 and {e})" if rows else "")
                + "; windows read together need one row shape: select one robot / layout at a "
                "time (config sources=, motions= or traj_ids=). Dtypes may differ (gathered as "
                f"{m.dtype})."
            )
        return m

    def uniform(self, key: str, traj_ids=None) -> tuple[tuple[int, ...], np.dtype]:
        """Row shape and gather dtype of ``key`` over ``traj_ids`` (int [n]; None = all).

        Call it where the trajectories to be read are known (building a pipeline): a row-shape
        mismatch is raised then, not when a batch first mixes them. Stored dtypes may differ.

        Returns:
          ``(row_shape, dtype)``: every window of ``key`` is ``[W, *row_shape]`` of ``dtype``.
        Raises:
          MissingKeyError: a trajectory lacks ``key``, or row shapes differ (names two
          trajectories with their row shapes and stored dtypes). WindowIndexError: bad traj_id.
        """
        m = self.meta(key)
        ids = (
            np.flatnonzero(m.group >= 0)
            if traj_ids is None
            else np.unique(np.asarray(traj_ids, np.int64).ravel())
        )
        m = self._ids(key, ids, rows=False)
        shape = m.shapes[m.group[ids[0]]] if ids.size else m.shapes[0]
        return shape, m.dtype

    def check(self, key: str, traj_ids: np.ndarray, steps: np.ndarray) -> KeyMeta:
        """Validate a gather request; returns the key's metadata.

        Raises:
          ValueError: bad shapes / ids. MissingKeyError: a trajectory lacks ``key`` or row shapes
          differ. WindowIndexError: a step outside ``[0, length)`` (names env row, step, length).
        """
        if traj_ids.ndim != 1 or steps.ndim != 2 or steps.shape[0] != traj_ids.shape[0]:
            raise ValueError(
                f"gather expects traj_ids [E] and steps [E, W]; got shapes "
                f"{traj_ids.shape} and {steps.shape}."
            )
        m = self._ids(key, traj_ids)
        length = m.lengths[traj_ids][:, None]
        bad = (steps < 0) | (steps >= length)
        if bad.any():
            e, w = (int(x) for x in np.argwhere(bad)[0])
            path, step, n = self._infos[int(traj_ids[e])].path, int(steps[e, w]), int(length[e, 0])
            raise WindowIndexError(
                f"env row {e} (traj_id {int(traj_ids[e])}, {path}): step {step} at window position "
                f"{w} is outside [0, {n}); wrap or clamp steps before gathering.",
                row=e,
                step=step,
                length=n,
                path=path,
            )
        return m

    def gather(self, key: str, traj_ids, steps) -> np.ndarray:
        """Rows ``out[e, w] = trajectory traj_ids[e], key, row steps[e, w]``.

        Args:
          traj_ids: int [E] trajectory ids. steps: int [E, W], each in ``[0, length)``.
        Returns:
          ``[E, W, *row]`` array of the key's gather dtype (``np.result_type`` of its stored
          dtypes over all trajectories; the stored dtype when they agree).
        Raises:
          see :meth:`check`.
        """
        traj_ids = np.asarray(traj_ids).astype(np.int64, copy=False)
        steps = np.asarray(steps).astype(np.int64, copy=False)
        m = self.check(key, traj_ids, steps)
        g = int(m.group[traj_ids[0]]) if traj_ids.size else 0
        shape = m.shapes[g]
        if traj_ids.size == 0 or steps.size == 0:
            return np.empty((*steps.shape, *shape), m.dtype)
        whole = self.whole(key, traj_ids)
        if whole is not None:
            self.hits += traj_ids.size
            flats, offsets = whole
            return np.take(flats[g], offsets[traj_ids][:, None] + steps, axis=0)
        out = np.empty((steps.size, *shape), m.dtype)
        n = m.chunk[traj_ids][:, None]
        c = steps // n
        local = (steps - c * n).ravel()
        code = (traj_ids[:, None] * (int(c.max()) + 1) + c).ravel()
        order = np.argsort(code, kind="stable")
        uniq, starts = np.unique(code[order], return_index=True)
        bounds = np.append(starts, order.size)
        firsts = order[starts]
        tids = np.repeat(traj_ids, steps.shape[1])[firsts].tolist()
        cids = c.ravel()[firsts].tolist()
        for u in range(uniq.size):
            idx = order[bounds[u] : bounds[u + 1]]
            out[idx] = self.chunk(key, tids[u], cids[u])[local[idx]]  # casts to m.dtype
        return out.reshape(*steps.shape, *shape)

    def warm(self, keys: Sequence[str]) -> None:
        """Decode ``keys`` now: whole when they fit, else fill the chunk LRU up to the budget."""
        for key in keys:
            if self.whole(key) is not None:
                continue
            m = self.meta(key)
            for t in np.flatnonzero(m.group >= 0):
                for c in range(-(-int(m.lengths[t]) // int(m.chunk[t]))):
                    if self._lru_bytes >= self.budget - self._whole_bytes:
                        return
                    self.chunk(key, int(t), c)
