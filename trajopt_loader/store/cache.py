"""Host cache of decoded trajectory arrays and the vectorized window gather.

A Zarr slice read costs ~1 ms in Python, slicing the same rows from RAM ~2 us, so windows are
always gathered from host memory (DESIGN.md, decision 3). Two regimes, per key:

* **whole** (the key of every trajectory fits the byte budget): one concatenated host array
  ``flat [sum_T, *row]`` per (row shape, dtype) group plus int64 ``offsets [n_traj]``; a gather is
  one fancy index ``np.take(flat, offsets[traj_ids][:, None] + steps, axis=0)``.
* **chunks** (past the budget): an LRU of decoded time-chunks (the stored Zarr chunks, so a miss
  decodes exactly one chunk) holding at most the byte budget left by whole keys; a gather fetches
  each unique (trajectory, chunk) once and copies its rows out. The host working set is the budget
  plus one chunk, whatever the dataset size.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np

from trajopt_loader.errors import MissingKeyError, WindowIndexError
from trajopt_loader.store.layout import TrajectoryInfo, chunk_rows

ReadRows = Callable[[int, str, int, int], np.ndarray]


class _KeyMeta:
    """Per-key arrays over all trajectories: group id (-1 = key absent), row shape/dtype per group."""

    def __init__(self, infos: Sequence[TrajectoryInfo], key: str):
        n = len(infos)
        self.group = np.full(n, -1, np.int64)
        self.chunk = np.ones(n, np.int64)
        self.specs: list[tuple[tuple[int, ...], np.dtype]] = []
        for i, info in enumerate(infos):
            if key not in info.keys:
                continue
            shape, dtype = info.keys[key]
            spec = (tuple(shape), np.dtype(dtype))
            if spec not in self.specs:
                self.specs.append(spec)
            self.group[i] = self.specs.index(spec)
            self.chunk[i] = info.chunk_rows.get(key) or chunk_rows(shape, dtype, info.length)
        self.lengths = np.array([info.length for info in infos], np.int64)
        row_bytes = [int(np.prod(s, dtype=np.int64)) * d.itemsize for s, d in self.specs]
        self.nbytes = int(sum(self.lengths[self.group == g].sum() * b
                              for g, b in enumerate(row_bytes)))


class HostCache:
    """Byte-budgeted host cache over a store's trajectories (see the module docstring).

    Args:
      infos: the store's trajectories (traj_id = position).
      budget: cache size in bytes (decoded arrays).
      read_rows: ``read_rows(traj_id, key, start, stop) -> np.ndarray [stop-start, *row]`` (zarr).
      read_concurrency: trajectories read at once when a key is loaded whole (threads; > 1 hides
        the per-request latency of remote stores on first touch).
    """

    def __init__(self, infos: Sequence[TrajectoryInfo], budget: int, read_rows: ReadRows,
                 read_concurrency: int = 1):
        self._infos = tuple(infos)
        self.budget = int(budget)
        self._read = read_rows
        self.read_concurrency = max(1, int(read_concurrency))
        self._meta: dict[str, _KeyMeta] = {}
        self._whole: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
        self._whole_bytes = 0
        self._lru: collections.OrderedDict = collections.OrderedDict()
        self._lru_bytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.RLock()

    def meta(self, key: str) -> _KeyMeta:
        m = self._meta.get(key)
        if m is None:
            m = self._meta[key] = _KeyMeta(self._infos, key)
            if (m.group < 0).all():
                raise MissingKeyError(f"key {key!r} is in no trajectory of the store; keys of "
                                      f"traj 0: {sorted(self._infos[0].keys) if self._infos else []}")
        return m

    def info(self) -> dict:
        """``{"bytes_used", "budget", "hits", "misses", "whole_keys", "chunks"}``."""
        return {"bytes_used": self._whole_bytes + self._lru_bytes, "budget": self.budget,
                "hits": self.hits, "misses": self.misses, "whole_keys": sorted(self._whole),
                "chunks": len(self._lru)}

    def has_whole(self, key: str) -> bool:
        """True when ``key`` is already decoded whole (no loading)."""
        return key in self._whole

    def whole(self, key: str) -> tuple[list[np.ndarray], np.ndarray] | None:
        """The whole-key arrays ``(flats per group, offsets [n_traj])`` if the key fits the budget."""
        got = self._whole.get(key)
        if got is not None:
            return got
        m = self.meta(key)
        with self._lock:
            if key in self._whole:
                return self._whole[key]
            if self._whole_bytes + m.nbytes > self.budget:
                return None
            offsets = np.zeros(len(self._infos), np.int64)
            flats = []
            for g, (shape, dtype) in enumerate(m.specs):
                ids = np.flatnonzero(m.group == g)
                flat = np.empty((int(m.lengths[ids].sum()), *shape), dtype)
                ends = np.cumsum(m.lengths[ids])
                offsets[ids] = ends - m.lengths[ids]

                def fill(i: int, o: int, n: int, flat=flat) -> None:
                    flat[o:o + n] = self._read(i, key, 0, n)  # disjoint rows per trajectory

                jobs = [(int(i), int(offsets[i]), int(m.lengths[i])) for i in ids]
                if self.read_concurrency > 1 and len(jobs) > 1:
                    with ThreadPoolExecutor(min(self.read_concurrency, len(jobs))) as pool:
                        list(pool.map(lambda job: fill(*job), jobs))
                else:
                    for job in jobs:
                        fill(*job)
                self.misses += len(jobs)
                flats.append(flat)
            self._whole_bytes += m.nbytes
            self._evict(0)
            self._whole[key] = (flats, offsets)
            return self._whole[key]

    def _evict(self, incoming: int) -> None:
        limit = max(0, self.budget - self._whole_bytes - incoming)
        while self._lru and self._lru_bytes > limit:
            _, a = self._lru.popitem(last=False)
            self._lru_bytes -= a.nbytes

    def chunk(self, key: str, traj: int, c: int) -> np.ndarray:
        """Decoded rows ``[c * chunk_rows, (c + 1) * chunk_rows)`` of trajectory ``traj`` (LRU)."""
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
            self._evict(a.nbytes)
            if a.nbytes <= self.budget - self._whole_bytes:
                self._lru[ck] = a
                self._lru_bytes += a.nbytes
        return a

    def check(self, key: str, traj_ids: np.ndarray, steps: np.ndarray) -> _KeyMeta:
        """Validate a gather request; returns the key's metadata.

        Raises:
          ValueError: bad shapes / ids. MissingKeyError: a trajectory lacks ``key`` or row shapes
          differ. WindowIndexError: a step outside ``[0, length)`` (names env row, step, length).
        """
        m = self.meta(key)
        if traj_ids.ndim != 1 or steps.ndim != 2 or steps.shape[0] != traj_ids.shape[0]:
            raise ValueError(f"gather expects traj_ids [E] and steps [E, W]; got shapes "
                             f"{traj_ids.shape} and {steps.shape}.")
        if traj_ids.size and (traj_ids.min() < 0 or traj_ids.max() >= len(self._infos)):
            bad = int(np.flatnonzero((traj_ids < 0) | (traj_ids >= len(self._infos)))[0])
            raise WindowIndexError(f"env row {bad}: traj_id {int(traj_ids[bad])} is outside "
                                   f"[0, {len(self._infos)}) trajectories of the store.")
        groups = m.group[traj_ids]
        if traj_ids.size and (groups < 0).any():
            e = int(np.flatnonzero(groups < 0)[0])
            info = self._infos[int(traj_ids[e])]
            raise MissingKeyError(f"env row {e}: trajectory {info.path} has no {key!r} (keys: "
                                  f"{sorted(info.keys)}); select trajectories that have it.")
        if traj_ids.size and (groups != groups[0]).any():
            e = int(np.flatnonzero(groups != groups[0])[0])
            raise MissingKeyError(f"{key!r} row shapes differ between trajectories "
                                  f"{self._infos[int(traj_ids[0])].path} and "
                                  f"{self._infos[int(traj_ids[e])].path} (env rows 0 and {e}); "
                                  "gather one robot / layout at a time.")
        length = m.lengths[traj_ids][:, None]
        bad = (steps < 0) | (steps >= length)
        if bad.any():
            e, w = (int(x) for x in np.argwhere(bad)[0])
            raise WindowIndexError(
                f"env row {e} (traj_id {int(traj_ids[e])}, {self._infos[int(traj_ids[e])].path}):"
                f" step {int(steps[e, w])} at window position {w} is outside [0, {int(length[e, 0])})"
                "; wrap or clamp steps before gathering.")
        return m

    def gather(self, key: str, traj_ids, steps) -> np.ndarray:
        """Rows ``out[e, w] = trajectory traj_ids[e], key, row steps[e, w]``.

        Args:
          traj_ids: int [E] trajectory ids. steps: int [E, W], each in ``[0, length)``.
        Returns:
          ``[E, W, *row]`` array of the stored dtype.
        Raises:
          see :meth:`check`.
        """
        traj_ids = np.asarray(traj_ids).astype(np.int64, copy=False)
        steps = np.asarray(steps).astype(np.int64, copy=False)
        m = self.check(key, traj_ids, steps)
        if traj_ids.size == 0 or steps.size == 0:
            g = int(m.group[traj_ids[0]]) if traj_ids.size else 0
            return np.empty((*steps.shape, *m.specs[g][0]), m.specs[g][1])
        g = int(m.group[traj_ids[0]])
        whole = self.whole(key)
        if whole is not None:
            self.hits += traj_ids.size
            flats, offsets = whole
            return np.take(flats[g], offsets[traj_ids][:, None] + steps, axis=0)
        shape, dtype = m.specs[g]
        out = np.empty((steps.size, *shape), dtype)
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
            idx = order[bounds[u]:bounds[u + 1]]
            out[idx] = self.chunk(key, tids[u], cids[u])[local[idx]]
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
