"""Seed API ``VectorizedTrajectoryDataset``: per-env cursors over a store, vectorized reads.

Names and signatures of the project this one replaces (see :mod:`trajopt_loader.compat`).
Every read is one ``TrajectoryStore.gather`` from the store's host cache: no per-env buffers, so
no stale rows (the cache is keyed by trajectory, key and time-chunk); arrays keep their stored
dtype (the seed cast to float32); typed errors (:mod:`trajopt_loader.errors`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import zarr

from trajopt_loader.conventions import Convention
from trajopt_loader.errors import (
    ConfigError,
    EnvNotAssignedError,
    MissingKeyError,
    WindowIndexError,
)
from trajopt_loader.store import TrajectoryStore
from trajopt_loader.store.layout import CHUNK_BYTES

__all__ = ["VectorizedTrajectoryDataset", "cfg_get"]


def cfg_get(cfg: Any, name: str, default: Any = None) -> Any:
    """``cfg[name]`` or ``cfg.name`` (dict, ``ConfigDict``, OmegaConf ``DictConfig``, any object);
    ``default`` when absent or None."""
    try:
        value = cfg[name]
    except Exception:  # KeyError, TypeError (None, no item access), a config library's own error
        value = getattr(cfg, name, None)
    return default if value is None else value


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}={value!r}; expected an int >= 1.")
    return int(value)


def _int_array(values: Iterable, what: str) -> np.ndarray:
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values)).ravel()
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers; got {arr.dtype} values {arr[:5]}.")
    return arr.astype(np.int64)


class VectorizedTrajectoryDataset:
    """Per-env cursors over a store and vectorized reads at them (seed API).

    Env ``e`` has a trajectory ``env_traj_ids[e]`` (-1 = none) and a step cursor ``env_steps[e]``
    (int64, trajectory-local), set with :meth:`update_references`. :meth:`fetch` reads the row at
    each cursor, :meth:`fetch_window` ``W`` rows from it: one vectorized gather from the store's
    host cache, right whatever order keys are read in and however far cursors jump.

    Args:
      zarr_path: store written by :meth:`TrajoptLoader.save` / ``export_npz`` (path or fsspec URL).
      num_envs: number of envs E.
      cfg: dict, ``ConfigDict``, ``DictConfig`` or object with fields ``window_size`` (default
        window of :meth:`fetch_window`), ``buffer_size`` (default 128), ``allow_wrap`` (default
        False), optional ``cache_bytes`` (overrides the budget below).
      storage_options: fsspec options for URLs (keyword).

    Memory bound: the store's host cache gets ``cache_bytes = num_envs x buffer_size x (sum over
    keys of the largest row's bytes)``, at least one stored time-chunk (512 KiB) per key. Keys that
    fit are decoded once and held whole, the rest as an LRU of time-chunks within the budget: host
    memory for data is at most that many bytes (plus one chunk during a read), whatever the dataset
    size; the unit kept is a time-chunk, not ``buffer_size`` rows per env. If the envs' windows
    touch more chunks than the budget holds, chunks are re-decoded on every read (right values,
    ~1 ms per chunk): raise ``buffer_size`` or ``cache_bytes`` then
    (``benchmarks/bench_fetch_window.py``).

    Raises:
      StoreNotFoundError / StoreFormatError: no trajopt-loader store at ``zarr_path``. ConfigError:
      ``num_envs``, ``window_size`` or ``buffer_size`` not an int >= 1.
    """

    def __init__(self, zarr_path: str | os.PathLike, num_envs: int, cfg: Any = None, **kwargs):
        self.zarr_path = os.fspath(zarr_path)
        self.num_envs = _positive_int(num_envs, "num_envs")
        self.cfg = cfg
        ws = cfg_get(cfg, "window_size")
        self.window_size = None if ws is None else _positive_int(ws, "cfg.window_size")
        self.buffer_size = _positive_int(cfg_get(cfg, "buffer_size", 128), "cfg.buffer_size")
        self.allow_wrap = bool(cfg_get(cfg, "allow_wrap", False))
        so = kwargs.get("storage_options")
        infos = TrajectoryStore(self.zarr_path, cache_bytes=0, storage_options=so).trajectories
        row_bytes: dict[str, int] = {}
        for key, (shape, dtype) in ((k, v) for t in infos for k, v in t.keys.items()):
            row_bytes[key] = max(
                row_bytes.get(key, 0), int(np.prod(shape)) * np.dtype(dtype).itemsize
            )
        budget = max(
            self.num_envs * self.buffer_size * sum(row_bytes.values()), len(row_bytes) * CHUNK_BYTES
        )
        self.cache_bytes = int(cfg_get(cfg, "cache_bytes", budget))
        self.store = TrajectoryStore(
            self.zarr_path, cache_bytes=self.cache_bytes, storage_options=so
        )
        self.traj_lengths = self.store.lengths.astype(np.int64)
        self.all_keys = sorted(self.store.keys)
        self._keys = sorted(row_bytes)
        self._has_key = {k: np.array([k in t.keys for t in infos], bool) for k in self._keys}
        self.env_traj_ids = np.full(self.num_envs, -1, np.int64)
        self.env_steps = np.zeros(self.num_envs, np.int64)

    @property
    def available_dataset_sources(self) -> list[str]:
        """Source names, sorted."""
        return self.store.sources

    @property
    def available_motions(self) -> list[str]:
        """Motion names of every source (sources sorted, then motions sorted)."""
        return [m for s in self.store.sources for m in self.store.motions(s)]

    def available_motions_in(self, dataset_source: str) -> list[str]:
        """Motion names of one source, sorted. Raises MissingKeyError for an unknown source."""
        return self.store.motions(dataset_source)

    @property
    def available_trajectories(self) -> list[str]:
        """``"source/motion/trajN"`` of every trajectory; position = the int id of
        :meth:`update_references`, in ``store.trajectories`` order: motions in the order they were
        first exported (one export's motions sorted by name), trajectories in natural file order."""
        return [t.path for t in self.store.trajectories]

    def available_trajectories_in(self, dataset_source: str, motion: str) -> list[str]:
        """Trajectory names (``"traj0"``, ``"traj1"``, ... natural order) of one motion, as the
        seed. Raises MissingKeyError for an unknown source or motion (names the ones that exist)."""
        if motion not in self.store.motions(dataset_source):
            raise MissingKeyError(
                f"motion {motion!r} is not in source {dataset_source!r}; motions: "
                f"{self.store.motions(dataset_source)}."
            )
        return [
            t.name
            for t in self.store.trajectories
            if (t.source, t.motion) == (dataset_source, motion)
        ]

    def convention(self, dataset_source: str | None = None) -> Convention:
        """The :class:`Convention` recorded for a source (default: the only source)."""
        if dataset_source is None and len(self.store.sources) != 1:
            raise ValueError(f"the store has sources {self.store.sources}; name one.")
        return self.store.convention(dataset_source or self.store.sources[0])

    @property
    def zarr_dataset(self) -> zarr.Group:
        """The store's root ``zarr.Group``, opened read-only (as the seed exposed it)."""
        return zarr.open_group(self.zarr_path, mode="r")

    def _env_ids(self, idx) -> np.ndarray:
        idx = np.arange(idx.start, idx.stop, idx.step) if isinstance(idx, range) else idx
        envs = _int_array(
            np.atleast_1d(
                idx if isinstance(idx, (int, np.integer, np.ndarray)) else np.asarray(list(idx))
            ),
            "env ids",
        )
        bad = (envs < 0) | (envs >= self.num_envs)
        if bad.any():
            raise WindowIndexError(
                f"env id {int(envs[bad][0])} is outside [0, {self.num_envs}) (num_envs)."
            )
        return envs

    def _traj_id(self, value) -> int:
        if isinstance(value, str):
            return self.store.info(value).traj_id
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(
                f"trajectory {value!r}: expected an int index into "
                "available_trajectories or a 'source/motion/trajN' path."
            )
        if not -1 <= int(value) < (n := len(self.traj_lengths)):
            raise WindowIndexError(
                f"trajectory index {int(value)} is outside [0, {n}) "
                f"(available_trajectories has {n}); -1 unassigns an env."
            )
        return int(value)

    def update_references(
        self,
        env_to_traj: Mapping[int, int | str] | None = None,
        env_to_step: Mapping[int, int] | None = None,
    ) -> None:
        """Assigns trajectories and/or sets step cursors.

        Args:
          env_to_traj: ``{env: traj}`` with ``traj`` an int index into
            :attr:`available_trajectories`, a ``"source/motion/trajN"`` path, or -1 (unassign).
          env_to_step: ``{env: step}``, trajectory-local int steps (checked or wrapped on read).
        Raises:
          WindowIndexError: env id or trajectory index out of range. MissingKeyError: unknown path.
          ValueError: non-integer values.
        """
        if env_to_traj:  # every value is checked before any env changes
            ids = [self._traj_id(v) for v in env_to_traj.values()]
            self.env_traj_ids[self._env_ids(list(env_to_traj))] = ids
        if env_to_step:
            steps = _int_array(env_to_step.values(), "env_to_step values")
            self.env_steps[self._env_ids(list(env_to_step))] = steps

    def _resolve(self, envs: np.ndarray, key: str | None, steps: np.ndarray):
        """traj ids [E] and steps [E, W] for ``key``: wrapped with allow_wrap, else left for the
        store's gather to range-check (:meth:`_gather` re-words its error)."""
        if not isinstance(key, str):
            raise ValueError(
                f"key={key!r}; pass the array name, e.g. key='qpos' (keys: {self._keys})."
            )
        if key not in self._has_key:
            raise MissingKeyError(
                f"key {key!r} is not in {self.zarr_path}; available keys: {self._keys}."
            )
        traj = self.env_traj_ids[envs]
        if (traj < 0).any():
            raise EnvNotAssignedError(
                f"no trajectory assigned to env(s) {envs[traj < 0][:8].tolist()} (first"
                " 8 at most); call update_references(env_to_traj={env: traj}) first."
            )
        if not self._has_key[key][traj].all():
            e = int(np.flatnonzero(~self._has_key[key][traj])[0])
            info = self.store.trajectories[int(traj[e])]
            raise MissingKeyError(
                f"env {int(envs[e])}: trajectory {info.path} has no {key!r}; its "
                f"keys: {sorted(info.keys)}."
            )
        return traj, (steps % self.traj_lengths[traj][:, None] if self.allow_wrap else steps)

    def _gather(self, envs: np.ndarray, key: str, traj: np.ndarray, steps: np.ndarray):
        """``store.gather`` with its out-of-range error re-worded in env ids and cfg terms."""
        try:
            return self.store.gather(key, traj, steps)
        except WindowIndexError as e:
            raise (
                e
                if e.row is None
                else WindowIndexError(
                    f"env {int(envs[e.row])}: step {e.step} is outside [0, {e.length}) of "
                    f"trajectory {e.path} (length {e.length}); set allow_wrap=True in cfg to wrap "
                    "steps modulo the length.",
                    row=e.row,
                    step=e.step,
                    length=e.length,
                    path=e.path,
                )
            ) from None

    def fetch(self, idx: Iterable[int], key: str | None = None) -> np.ndarray:
        """Rows of ``key`` at the current step of each env in ``idx``.

        Returns:
          ``[len(idx), *row]`` array of the stored dtype (e.g. ``qpos`` float64 ``[n, nq]``). With
          ``allow_wrap`` the cursors of ``idx`` are replaced by their wrapped values (as the seed).
        Raises:
          MissingKeyError: unknown ``key`` (names available keys). EnvNotAssignedError: an env has
          no trajectory. WindowIndexError: a cursor outside ``[0, length)`` without wrap (names env,
          step, length).
        """
        envs = self._env_ids(idx)
        traj, steps = self._resolve(envs, key, self.env_steps[envs][:, None])
        if self.allow_wrap:
            self.env_steps[envs] = steps[:, 0]
        return self._gather(envs, key, traj, steps)[:, 0]

    def fetch_window(
        self, idx: Iterable[int], key: str | None = None, window_size: int | None = None
    ) -> np.ndarray:
        """``W`` consecutive rows of ``key`` from each env's current step; cursors are unchanged.

        Args:
          idx: env ids [E]. key: array name. window_size: W (default ``cfg.window_size``).
        Returns:
          ``[E, W, *row]`` array of the stored dtype: ``out[i, w] = key[traj(e)][step(e) + w]`` for
          ``e = idx[i]``, the step wrapped modulo the trajectory length with ``allow_wrap``.
        Raises:
          as :meth:`fetch`; ConfigError: no window size given nor configured.
        """
        w = window_size if window_size is not None else self.window_size
        if w is None:
            raise ConfigError(
                "no window_size: pass fetch_window(..., window_size=W) or set cfg.window_size."
            )
        w = _positive_int(w, "window_size")
        envs = self._env_ids(idx)
        steps = self.env_steps[envs][:, None] + np.arange(w, dtype=np.int64)[None, :]
        traj, steps = self._resolve(envs, key, steps)
        return self._gather(envs, key, traj, steps)
