"""Grain ``Map`` adding end-effector positions ``ee_pos`` (forward kinematics) to batches.

The kinematics themselves are :func:`trajopt_loader.kinematics.fk.site_positions` (MJX) and
:func:`~trajopt_loader.kinematics.fk.site_positions_mujoco` (float64 ``mj_kinematics``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

import grain
import mujoco
import numpy as np

from trajopt_loader.conventions import MUJOCO, Convention, as_convention
from trajopt_loader.errors import ConfigError, MissingKeyError
from trajopt_loader.kinematics.fk import site_ids, site_positions, site_positions_mujoco
from trajopt_loader.kinematics.model import load_kinematics_model, qpos_to_mujoco

__all__ = ["EndEffectorPositions"]

_LOAD_LOCK = threading.Lock()


class EndEffectorPositions(grain.transforms.Map):
    """Grain ``Map``: add ``ee_pos [E, W, n_sites, 3]`` (world, m; forward kinematics of ``qpos
    [E, W, nq]``) to batches without ``ee_pos``; batches with data ``ee_pos`` pass unchanged.
    Never fills zeros: with neither data nor model it raises.

    Args:
      model: MJCF path (loaded lazily per process by :func:`load_kinematics_model`), an
        ``MjModel``, or None when the data is expected to carry ``ee_pos``.
      site_names: sites to compute, in output order.
      convention: the data's Convention, or a callable ``traj_id -> Convention`` (e.g.
        ``lambda i: store.convention(store.trajectories[i].source)``) applied per env through
        ``batch["traj_id"] [E]``.
      chunk_size: frames per MJX call (see :func:`site_positions`).
      backend: ``"mjx"`` (:func:`site_positions`) or ``"mujoco"`` (:func:`site_positions_mujoco`:
        no compile, float64; on CPU about as fast, see ``benchmarks/bench_fk.py``).
    Raises (from ``map``):
      MissingKeyError: no ``ee_pos`` and no model; no ``qpos``; a callable convention without
        ``traj_id``; unknown site.  ModelError, ConventionError: see :func:`site_positions`.
    Output dtype: that of ``qpos`` when floating, else float32.
    """

    def __init__(
        self,
        model: str | os.PathLike | mujoco.MjModel | None,
        site_names: Sequence[str],
        convention: Convention | Callable[[int], Convention],
        *,
        chunk_size: int = 8192,
        backend: str = "mjx",
    ):
        if backend not in ("mjx", "mujoco"):
            raise ConfigError(f"backend={backend!r}; expected 'mjx' or 'mujoco'.")
        self._model = model if isinstance(model, mujoco.MjModel) else None
        self.model_path = None if model is None or self._model is not None else os.fspath(model)
        self.site_names = tuple((site_names,) if isinstance(site_names, str) else site_names)
        self.convention = convention if callable(convention) else as_convention(convention)
        self.chunk_size, self.backend = int(chunk_size), backend

    def __getstate__(self) -> dict:  # pickled into grain workers: reload from the path there
        return {**self.__dict__, "_model": None} if self.model_path else dict(self.__dict__)

    def _get_model(self) -> mujoco.MjModel:
        with _LOAD_LOCK:
            if self._model is None:
                model = load_kinematics_model(self.model_path)
                site_ids(model, self.site_names)
                self._model = model
            return self._model

    def map(self, batch: dict) -> dict:
        if "ee_pos" in batch:
            return batch
        if self.model_path is None and self._model is None:
            raise MissingKeyError(
                "the batch has no 'ee_pos' and EndEffectorPositions has no model to compute it; "
                "export the data with ee_pos (--model ... --ee-sites ...) or give a MuJoCo model."
            )
        if "qpos" not in batch:
            raise MissingKeyError(
                "computing 'ee_pos' needs 'qpos' in the batch; add 'qpos' to "
                f"config.keys (batch keys: {sorted(batch)})."
            )
        model, qpos = self._get_model(), np.asarray(batch["qpos"])
        if isinstance(self.convention, Convention):
            q = qpos_to_mujoco(model, qpos, self.convention)
        else:
            if "traj_id" not in batch:
                raise MissingKeyError("a per-trajectory convention needs 'traj_id' [E] in batches.")
            q = np.empty(qpos.shape, dtype=np.float64)
            traj = np.asarray(batch["traj_id"])
            for tid in np.unique(traj):
                rows = traj == tid
                q[rows] = qpos_to_mujoco(model, qpos[rows], self.convention(int(tid)))
        if self.backend == "mjx":
            pos = site_positions(model, q, self.site_names, MUJOCO, chunk_size=self.chunk_size)
        else:
            pos = site_positions_mujoco(model, q, self.site_names, MUJOCO)
        dtype = qpos.dtype if np.issubdtype(qpos.dtype, np.floating) else np.float32
        return {**batch, "ee_pos": pos.astype(dtype, copy=False)}
