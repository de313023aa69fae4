"""Grain transform adding the robot references (``ref_*`` keys, defined with their frames in
:mod:`trajopt_loader.transforms.references`) to batch dicts: conventions and episode origins from
the store, end effectors from the batch or from forward kinematics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np

from trajopt_loader.conventions import Convention, as_convention
from trajopt_loader.errors import MissingKeyError, ReferenceInputError
from trajopt_loader.robots.spec import RobotSpec
from trajopt_loader.transforms.references import compute_references

_log = logging.getLogger(__name__)


class BuildReferences(grain.transforms.Map):
    """Grain transform adding the ``ref_*`` keys (defined in ``references.py``) to a batch dict.

    Reads from the batch: ``qpos [E,W,nq]``, ``qvel [E,W,nv]``, optional ``valid [E,W]``,
    ``traj_id [E]`` and ``episode_first_step [E]`` (with a store), ``episode_origin_qpos [E,nq]``
    (without one; it wins when both exist) and ``ee_key`` (``[E,W,n_ee,3]`` or ``[E,W,3*n_ee]``,
    m, world). Outputs have the dtype of ``qpos``.

    Args:
      store: a ``TrajectoryStore`` giving each env's convention (``store.convention(source)``)
        and episode origin (``store.gather("qpos", traj_id, episode_first_step[:, None])``), or
        None.
      spec: the robot's :class:`RobotSpec`.
      convention: the data's :class:`Convention` or its name (``"mujoco"``, ``"pinocchio"``,
        ``"crocoddyl"``; case-insensitive) when ``store`` is None (required then).
      ee_key: batch key of end-effector positions, used when present.
      ee_fn: called as ``ee_fn(qpos [n,W,nq], convention=conv) -> [n,W,n_ee,3]`` world positions
        (m) once per convention group when the batch has no ``ee_key``; e.g. forward kinematics
        ``functools.partial(kinematics.site_positions, model, site_names=spec.ee_sites)``.
        (Alternatively put ``kinematics.EndEffectorPositions`` before this transform.)
      require_ee: raise instead of leaving the ee keys out when no ee source exists.
      heading_frame_keys: also add the heading-frame keys (``HEADING_REF_KEYS``,
        ``HEADING_EE_REF_KEYS``; ``config.references.heading_frame_keys``).

    Raises:
      ReferenceInputError: ``spec`` is not a RobotSpec; no store and no convention.
      ConventionError: an unknown convention name (lists the valid ones).

    Raises (from ``map``):
      MissingKeyError: a needed batch key is missing (names it, lists the batch keys).
      ReferenceInputError: see :func:`compute_references`.
    """

    def __init__(
        self,
        store=None,
        spec: RobotSpec | None = None,
        *,
        convention: Convention | str | None = None,
        ee_key: str = "ee_pos",
        ee_fn: Callable[..., np.ndarray] | None = None,
        require_ee: bool = False,
        heading_frame_keys: bool = False,
    ):
        if not isinstance(spec, RobotSpec):
            raise ReferenceInputError(
                f"spec={spec!r}: expected a RobotSpec "
                "(trajopt_loader.robots.get_spec(name) or spec_from_mjcf)."
            )
        if store is None and convention is None:
            raise ReferenceInputError(
                "BuildReferences without a store needs convention= "
                "('mujoco' or 'pinocchio'); it is never guessed."
            )
        convention = None if convention is None else as_convention(convention)
        self.store, self.spec, self.convention = store, spec, convention
        self.ee_key, self.ee_fn, self.require_ee = ee_key, ee_fn, require_ee
        self.heading_frame_keys = bool(heading_frame_keys)
        self._table: tuple[tuple[Convention, ...], np.ndarray] | None = None
        self._warned = False

    def _conventions(self, batch) -> tuple[Sequence[Convention], np.ndarray | None]:
        if self.store is None:
            return (self.convention,), None
        if self._table is None:  # per-trajectory convention index, built once
            convs = [self.store.convention(info.source) for info in self.store.trajectories]
            unique = tuple(dict.fromkeys(convs))
            self._table = unique, np.array([unique.index(c) for c in convs], np.int32)
        unique, table = self._table
        return unique, table[np.asarray(self._get(batch, "traj_id"))]

    @staticmethod
    def _get(batch, key, fix="") -> Any:
        if key in batch:
            return batch[key]
        raise MissingKeyError(f"batch has no key {key!r} (keys: {sorted(batch)}). {fix}".strip())

    def _ee(self, batch, qpos, convs, conv_idx) -> np.ndarray | None:
        n_env, n_t = qpos.shape[:2]
        if self.ee_key in batch:
            ee = np.asarray(batch[self.ee_key])
            if ee.shape[:2] != (n_env, n_t) or ee[0, 0].size % 3:
                raise ReferenceInputError(
                    f"batch[{self.ee_key!r}] has shape {ee.shape}; expected "
                    f"[{n_env}, {n_t}, n_ee, 3] or [{n_env}, {n_t}, 3 * n_ee]."
                )
            return ee.reshape(n_env, n_t, -1, 3)
        if self.ee_fn is not None:
            if conv_idx is None:
                return np.asarray(self.ee_fn(qpos, convention=convs[0]))
            out = None
            for i, conv in enumerate(convs):
                rows = np.flatnonzero(conv_idx == i)
                if rows.size:
                    part = np.asarray(self.ee_fn(qpos[rows], convention=conv))
                    out = np.empty((n_env,) + part.shape[1:], part.dtype) if out is None else out
                    out[rows] = part
            return out
        msg = (
            f"no end-effector positions: the batch has no {self.ee_key!r} key and no ee_fn was "
            "given; add 'ee_pos' to config.keys or pass ee_fn (forward kinematics)."
        )
        if self.require_ee:
            raise MissingKeyError(msg)
        if not self._warned and self.spec.ee_sites:  # a robot without ee sites expects none
            _log.warning("%s The ee reference keys are left out.", msg)
            self._warned = True
        return None

    def map(self, batch: dict) -> dict:
        """Return ``batch`` plus the ``ref_*`` keys (shapes in ``references.py``)."""
        qpos = np.asarray(self._get(batch, "qpos", "Add 'qpos' to config.keys."))
        qvel = np.asarray(self._get(batch, "qvel", "Add 'qvel' to config.keys."))
        convs, conv_idx = self._conventions(batch)
        if "episode_origin_qpos" in batch:  # origin rows get the window's dtype: exact 0 at t0
            origin = batch["episode_origin_qpos"]
        elif self.store is not None:
            steps = np.asarray(self._get(batch, "episode_first_step"), np.int32)[:, None]
            origin = self.store.gather("qpos", np.asarray(batch["traj_id"]), steps)[:, 0]
        else:
            raise MissingKeyError(
                "batch has no 'episode_origin_qpos' [E, nq] and BuildReferences "
                "has no store to read the episode origin from; pass store=."
            )
        refs = compute_references(
            qpos,
            qvel,
            self.spec,
            convs,
            convention_index=conv_idx,
            valid=batch.get("valid"),
            origin_qpos=np.asarray(origin, qpos.dtype),
            dtype=qpos.dtype,
            ee_pos=self._ee(batch, qpos, convs, conv_idx),
            heading_frame_keys=self.heading_frame_keys,
        )
        return {**batch, **refs}
