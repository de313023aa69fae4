"""Seed API ``TrajoptLoader``: export a directory of trajopt ``.npz`` files to a Zarr store.

Names and signatures of the project this one replaces (see :mod:`trajopt_loader.compat`); export
is :func:`~trajopt_loader.store.export_npz`. Differences from the seed code: natural trajectory
order (``traj2`` before ``traj10``); the base convention is recorded in the store; a file without a
time step gets its dt recorded as unknown (the seed assumed 0.02 s and recorded nothing).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from trajopt_loader.conventions import Convention
from trajopt_loader.store import ExportSummary, export_npz
from trajopt_loader.store.time_step import UNKNOWN_DT

__all__ = ["TrajoptLoader"]


class TrajoptLoader:
    """Exports a directory of trajopt ``.npz`` files to a Zarr store (seed API).

    Args:
      data_path: directory of ``<motion>/*.npz`` subdirectories, or of one motion's ``*.npz`` files.
    Attributes:
      summary: :class:`~trajopt_loader.store.ExportSummary` of the last :meth:`save` (None before).
    """

    def __init__(self, data_path: str | os.PathLike):
        self.data_path = Path(data_path)
        self.summary: ExportSummary | None = None

    def save(
        self,
        out_dir: str | os.PathLike,
        *,
        dataset_source: str = "trajopt",
        motion: str | Sequence[str] | None = None,
        zarr_name: str = "trajectories.zarr",
        max_trajs_per_motion: int | None = None,
        convention: str | Convention = "pinocchio",
        dt: float | None = None,
        key_map: Mapping[str, str] | None = None,
        allow_missing: Sequence[str] = (),
        overwrite: bool = True,
        progress: bool = False,
    ) -> str:
        """Writes ``<out_dir>/<zarr_name>/<dataset_source>/<motion>/traj{i}/{key}``; returns the
        store path.

        Args:
          out_dir: directory of the store (created if missing).
          dataset_source: source group name (one convention per source).
          motion: a motion name (files of ``data_path/motion/``, else of ``data_path`` itself), a
            list of names, or None for every subdirectory holding ``.npz`` files.
          zarr_name: store directory name inside ``out_dir``.
          max_trajs_per_motion: keep the first N files (natural order) of each motion.
          convention: base convention of the data, recorded in the store for every reader. Default
            ``"pinocchio"`` (Pinocchio / Crocoddyl free-flyer, the seed's Digit data: quaternion
            ``(x, y, z, w)`` in ``qpos[3:7]``, base velocities in the body frame). Pass ``"mujoco"``
            for MuJoCo rollouts (``(w, x, y, z)``, world-frame linear velocity) or a Convention.
          dt: time step (s) for files that carry none. None (default, as the seed, which assumed
            0.02 s and recorded nothing): such files are exported with dt recorded as unknown
            (``store.dts`` NaN, never guessed) and one warning says how to set it; they stream,
            but deriving qvel, resampling, rate checks and velocity inspection refuse them.
            key_map: ``{"qpos": "arr_0", ...}`` names of
            unnamed arrays. allow_missing: keys that may be absent (e.g. ``("qvel",)``).
          overwrite: replace motions of ``dataset_source`` already in the store (default True: the
            seed rewrote the store on every call; other motions and sources are kept here).
          progress: show progress bars.
        Returns:
          str: ``os.path.join(out_dir, zarr_name)``.
        Raises:
          ExportError: invalid input (names file, key, value; nothing written).
          ConventionError: unknown convention name.
        """
        os.makedirs(out_dir, exist_ok=True)
        zarr_path = os.path.join(os.fspath(out_dir), zarr_name)
        self.summary = export_npz(
            self.data_path,
            zarr_path,
            source=dataset_source,
            motion=motion,
            convention=convention,
            dt=UNKNOWN_DT if dt is None else dt,
            key_map=dict(key_map or {}) or None,
            max_trajs_per_motion=max_trajs_per_motion,
            overwrite=overwrite,
            allow_missing=tuple(allow_missing),
            progress=progress,
        )
        return zarr_path
