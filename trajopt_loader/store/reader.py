"""``TrajectoryStore``: read-only access to a trajopt-loader Zarr store through a host cache.

The store index (root attrs, see :mod:`trajopt_loader.store.layout`) is read once at construction,
so a store opens without listing (consolidated metadata, plain HTTP). Array handles and the host
cache are opened lazily on first use and dropped when pickled: a store object can be sent to
spawned grain workers, each of which reopens it (DESIGN.md, decision 6).

Trajectory ids: ``store.trajectories[i].traj_id == i``, in global order: motions in the order they
were first exported, whatever their source (``layout.motion_order``; a fresh store: sorted
names), then natural file order. Exporting another motion or source appends after the existing
trajectories, so ids already used in configs (``traj_ids``) and iterator checkpoints keep
pointing at the same data; replacing a motion with ``overwrite`` keeps its place (ids after it
shift only if its file count changes).
``sources`` and ``motions()`` are name listings, sorted.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from trajopt_loader.conventions import Convention
from trajopt_loader.errors import DataIntegrityError, MissingKeyError, WindowIndexError
from trajopt_loader.store import bulk_read, integrity, layout, remote
from trajopt_loader.store.cache import HostCache
from trajopt_loader.store.index_check import check_index
from trajopt_loader.store.info_table import TrajectoryTable
from trajopt_loader.store.layout import TrajectoryInfo
from trajopt_loader.store.root import open_root
from trajopt_loader.store.root_index import gc_paused, read_root_index

#: Default ``read_concurrency`` of stores opened by URL (requests in flight on first touch).
REMOTE_READ_CONCURRENCY = 16


class TrajectoryStore:
    """A trajopt-loader store: trajectory listing, range reads and vectorized window gathers.

    Args:
      path_or_url: local store directory, ``file://`` path or fsspec URL.
      cache_bytes: host cache budget in bytes (decoded arrays; see :mod:`.cache`).
      storage_options: passed to fsspec for URLs (e.g. ``{"anon": True}`` for a public S3 bucket,
        ``{"endpoint_url": ...}``); ``FSSPEC_<PROTOCOL>_<OPTION>`` environment variables also work.
      read_concurrency: trajectories fetched at once when a key is first loaded into the cache;
        default ``REMOTE_READ_CONCURRENCY`` for URLs (hides request latency), 1 for local paths.
      cache_dtype: dtype in which the host cache holds and :meth:`gather` returns floating keys
        (e.g. ``"float32"`` for a float32 pipeline over float64 data); None keeps the stored dtype.
        :meth:`read` always returns the stored dtype.
      timeout_s: seconds to wait for a connection and between bytes of a response, for
        ``http(s)://`` stores (unless ``storage_options["client_kwargs"]["timeout"]`` is given).
      retries: retries of a remote request that failed transiently (timeout, connection error,
        HTTP 429/5xx), with exponential backoff (:mod:`trajopt_loader.store.remote`).
    Attributes:
      trajectories: ``TrajectoryInfo`` per trajectory, in global order (traj_id = position).
      lengths: int32 ``[n_traj]`` steps per trajectory. dts: float64 ``[n_traj]`` time step (s).
    Raises:
      StoreNotFoundError: nothing at ``path_or_url``.
      StoreFormatError: not a trajopt-loader store, an unsupported ``format_version``, or an
        index field that is missing or out of range (:mod:`.index_check`).
      StoreReadError: a remote store did not answer within ``timeout_s`` after ``retries``.
    Reads (:meth:`read`, :meth:`gather`, :meth:`warm`) return the stored rows or raise
    ``DataIntegrityError`` naming the chunk (missing, damaged, swapped; :mod:`.integrity`).
    """

    def __init__(
        self,
        path_or_url,
        cache_bytes: int = 2**31,
        storage_options: dict | None = None,
        *,
        read_concurrency: int | None = None,
        cache_dtype=None,
        timeout_s: float = remote.DEFAULT_TIMEOUT_S,
        retries: int = remote.DEFAULT_RETRIES,
    ):
        self.path = str(path_or_url)
        self.cache_dtype = None if cache_dtype is None else str(np.dtype(cache_dtype))
        self.cache_bytes = int(cache_bytes)
        self.storage_options = storage_options
        self.timeout_s, self.retries = float(timeout_s), int(retries)
        self.read_concurrency = (
            (REMOTE_READ_CONCURRENCY if layout.is_url(self.path) else 1)
            if read_concurrency is None
            else int(read_concurrency)
        )
        self._root = None
        self._cache = None
        self._arrays: dict = {}
        self._open_lock = threading.Lock()
        with gc_paused():  # ~1M small objects, none of them garbage (root_index docstring)
            index = read_root_index(self.path, storage_options, self.timeout_s, self.retries)
            if index is None:  # zarr reads it, or raises what is wrong (not found, not a store)
                index = open_root(
                    self.path, storage_options, self.timeout_s, self.retries
                ).attrs.get(layout.INDEX_KEY)
            self._index = check_index(index, self.path)
            self._set_infos()

    def _set_infos(self) -> None:
        # global order = index order, stable under append (see the module docstring)
        #: ``TrajectoryInfo`` per traj_id, built on access (:class:`.info_table.TrajectoryTable`)
        self.trajectories: TrajectoryTable = TrajectoryTable(self._index)
        self.lengths = self.trajectories.lengths
        #: float64 ``[n_traj]``: time step in seconds of each trajectory, indexed by traj_id
        #: (``dts[i] == trajectories[i].dt``), e.g. ``store.dts[batch["traj_id"]]`` -> ``[E]``.
        self.dts = self.trajectories.dts
        self.keys = self.trajectories.common_keys()

    def __getstate__(self) -> dict:
        return {
            "path": self.path,
            "cache_bytes": self.cache_bytes,
            "storage_options": self.storage_options,
            "_index": self._index,
            "read_concurrency": self.read_concurrency,
            "cache_dtype": self.cache_dtype,
            "timeout_s": self.timeout_s,
            "retries": self.retries,
        }

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._root, self._cache, self._arrays = None, None, {}
        self._open_lock = threading.Lock()
        self._set_infos()

    def __repr__(self) -> str:
        return (
            f"TrajectoryStore({self.path!r}, sources={self.sources}, "
            f"trajectories={len(self.trajectories)})"
        )

    @property
    def sources(self) -> list[str]:
        """Source names, sorted."""
        return sorted(self._index["sources"])

    def motions(self, source: str | None = None) -> list[str]:
        """Motion names of ``source`` (sorted), or ``"source/motion"`` of all sources when None.

        Raises:
          KeyError (MissingKeyError): unknown source.
        """
        if source is None:
            return [f"{s}/{m}" for s in self.sources for m in self.motions(s)]
        if source not in self._index["sources"]:
            raise MissingKeyError(
                f"source {source!r} is not in {self.path}; sources: {self.sources}"
            )
        return sorted(self._index["sources"][source]["motions"])

    def convention(self, source: str) -> Convention:
        """The :class:`Convention` recorded for ``source`` at export (never guessed)."""
        self.motions(source)
        return Convention.from_attrs(
            self._index["sources"][source]["convention"], f"source {source!r} of {self.path}"
        )

    def model_layout(self, source: str) -> dict | None:
        """The model layout recorded for ``source`` by an export with a model (joint and body
        names, qpos / dof addresses, nq, nv; :mod:`trajopt_loader.kinematics.model_layout`), or
        None when it was exported without one."""
        self.motions(source)
        return self._index["sources"][source].get("model_layout")

    def check_model(self, model, sources: Sequence[str] = ()) -> None:
        """Refuse an environment ``model`` whose layout differs from the one recorded at export.

        Args:
          model: a ``mujoco.MjModel`` or the path of its MJCF file.
          sources: sources to check (``()`` = all).
        Raises:
          ModelError: a source's recorded layout differs; one line naming the source, the first
            differing field (e.g. ``body_names[5]``) with both values, and the fix.
        Warns (once per store object): when a checked source has no recorded layout (exported
        without ``--model``): ``"store has no recorded model layout ..."``; it is not checked.
        """
        from trajopt_loader.store.model_record import check_store

        check_store(self, model, tuple(sources) or self.sources)

    def select(self, sources: Sequence[str] = (), motions: Sequence[str] = ()) -> np.ndarray:
        """int32 traj_ids of the given sources and motions (``"motion"`` or ``"source/motion"``).

        Empty selectors select everything. Raises MissingKeyError for a name matching nothing.
        """
        sources, motions = tuple(sources), tuple(motions)
        for s in sources:
            self.motions(s)
        pairs = self.trajectories.motions
        known = {m for _, m in pairs} | {f"{s}/{m}" for s, m in pairs}
        for m in motions:
            if m not in known:
                raise MissingKeyError(
                    f"motion {m!r} is not in {self.path}; motions: {self.motions()}"
                )
        return self.trajectories.ids_of_motions(
            (s, m)
            for s, m in pairs
            if (not sources or s in sources)
            and (not motions or m in motions or f"{s}/{m}" in motions)
        )

    def info(self, traj) -> TrajectoryInfo:
        """The :class:`TrajectoryInfo` of a traj_id (int) or path ``"source/motion/traj3"``."""
        if isinstance(traj, str):
            info = self.trajectories.find(traj)
            if info is None:
                raise MissingKeyError(f"trajectory {traj!r} is not in {self.path}.")
            return info
        i = int(traj)
        if not 0 <= i < len(self.trajectories):
            raise WindowIndexError(f"traj_id {i} is outside [0, {len(self.trajectories)}).")
        return self.trajectories[i]

    # --- array access -------------------------------------------------------------------------
    def _array(self, traj_id: int, key: str):
        a = self._arrays.get((traj_id, key))
        if a is None:
            with self._open_lock:  # concurrent first reads open the root once
                if self._root is None:
                    self._root = open_root(
                        self.path, self.storage_options, self.timeout_s, self.retries
                    )
            info = self.trajectories[traj_id]
            if key not in info.keys:
                raise MissingKeyError(
                    f"trajectory {info.path} has no {key!r}; it has {sorted(info.keys)}."
                )
            try:
                a = self._arrays[(traj_id, key)] = self._root[f"{info.path}/{key}"]
            except KeyError as e:  # the index lists it: a missing array is damage, not a typo
                raise DataIntegrityError(
                    f"{self.path}: trajectory {info.path} key {key!r}: no "
                    f"array in the store ({e}). " + integrity.fix_hint(self.path)
                ) from None
        return a

    def _read_rows(self, traj_id: int, key: str, start: int, stop: int) -> np.ndarray:
        info = self.trajectories[traj_id]  # checked rows (integrity), retried requests (remote)
        attempt = remote.retrying(f"{self.path}/{info.path}/{key}", self.retries, self.timeout_s)
        return integrity.read_rows(
            self._array(traj_id, key), self.path, info, key, start, stop, attempt
        )

    def read_whole(self, key: str, traj_ids, dest=None):
        """Yield ``(traj_id, rows [length, *row] stored dtype)`` of ``key`` for ``traj_ids``
        (int [n], each holding ``key``), read together (:mod:`.bulk_read`), in that order.
        ``dest``: see :func:`.bulk_read.read_whole` (rows decoded in place are yielded as None).

        Raises:
          DataIntegrityError: a chunk is missing or damaged (names it). StoreReadError: remote.
        """
        return bulk_read.read_whole(
            self.path,
            [self.trajectories[int(i)] for i in traj_ids],
            key,
            lambda i: self._read_rows(i, key, 0, self.trajectories[i].length),
            self.storage_options,
            self.timeout_s,
            dest,
        )

    @property
    def cache(self) -> HostCache:
        """The host cache (created lazily)."""
        if self._cache is None:
            self._cache = HostCache(
                self.trajectories,
                self.cache_bytes,
                self._read_rows,
                self.read_concurrency,
                self.cache_dtype,
                self.read_whole,
            )
        return self._cache

    def read(
        self, traj, key: str, start: int = 0, stop: int | None = None, *, wrap: bool = False
    ) -> np.ndarray:
        """Rows ``[start, stop)`` of ``key`` of one trajectory.

        Shape ``[stop - start, *row]``, stored dtype.

        With ``wrap=True`` row ``s`` is row ``s mod length`` (any start/stop, stop >= start);
        otherwise ``0 <= start <= stop <= length`` is required.

        Raises:
          WindowIndexError: out-of-range rows without wrap. MissingKeyError: unknown traj / key.
        """
        info = self.info(traj)
        n = info.length
        stop = n if stop is None else int(stop)
        start = int(start)
        if key not in info.keys:
            raise MissingKeyError(
                f"trajectory {info.path} has no {key!r}; it has {sorted(info.keys)}."
            )
        if stop < start:
            raise WindowIndexError(f"{info.path}: stop {stop} < start {start}.")
        if not wrap and not (0 <= start <= stop <= n):
            raise WindowIndexError(
                f"{info.path} {key}: rows [{start}, {stop}) are outside "
                f"[0, {n}); pass wrap=True to read modulo the length."
            )
        if wrap and (start < 0 or stop > n):
            rows = np.arange(start, stop) % n
            return self.read(info.traj_id, key)[rows]
        if (
            self._cache is not None
            and self._cache.has_whole(key, info.traj_id)
            and self._cache.meta(key).dtype == np.dtype(info.keys[key][1])
        ):
            flats, offsets = self._cache.whole(key)  # cast copies would not be the stored dtype
            g = int(self.cache.meta(key).group[info.traj_id])
            o = int(offsets[info.traj_id])
            return flats[g][o + start : o + stop].copy()
        return self._read_rows(info.traj_id, key, start, stop)

    def gather(self, key: str, traj_ids, steps) -> np.ndarray:
        """Windows ``out[e, w] = key[traj_ids[e]][steps[e, w]]`` from the host cache.

        Args:
          traj_ids: int [E]. steps: int [E, W], each in ``[0, length)`` of its trajectory.
        Returns:
          ``[E, W, *row]`` array of the key's gather dtype: the stored dtype, or
          ``np.result_type`` of the stored dtypes when trajectories store ``key`` differently
          (e.g. float32 and float64 files -> float64), whichever trajectories are gathered.
        Raises:
          WindowIndexError: out-of-range step (names env row, step, length).
          MissingKeyError: a selected trajectory lacks ``key``; row shapes differ among
          ``traj_ids`` (use :meth:`check_uniform` to find that out before streaming).
        """
        return self.cache.gather(key, traj_ids, steps)

    def check_uniform(self, key: str, traj_ids=None) -> tuple[tuple[int, ...], np.dtype]:
        """Check that ``key`` can be gathered over ``traj_ids`` (int [n]; None = all) together.

        Returns:
          ``(row_shape, dtype)``: windows of ``key`` from these trajectories are
          ``[W, *row_shape]`` of ``dtype`` (the gather dtype, see :meth:`gather`).
        Raises:
          MissingKeyError: a trajectory lacks ``key``, or row shapes differ (the message names
          two trajectories with their row shapes and stored dtypes; differing dtypes alone are
          fine). WindowIndexError: a traj_id outside the store.
        """
        return self.cache.uniform(key, traj_ids)

    def warm(self, keys: Sequence[str] | None = None) -> None:
        """Decode ``keys`` (default: :attr:`keys`) into the host cache now."""
        self.cache.warm(self.keys if keys is None else tuple(keys))

    def cache_info(self) -> dict:
        """``{"bytes_used", "budget", "hits", "misses", ...}`` of the host cache."""
        return self.cache.info()
