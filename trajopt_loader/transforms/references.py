"""Robot reference signals (``ref_*``) from ``qpos`` / ``qvel`` windows: numpy core + grain transform.

Notation, per env ``e`` and window step ``t`` (world frame: z up, MuJoCo/Pinocchio world):
``p_t`` base position (m, world) = ``qpos[base_pos_slice]``; ``R_t`` base rotation (body -> world)
from ``qpos[base_quat_slice]`` read in the data's quaternion order; ``psi(R)`` = heading = yaw of
the intrinsic Z-Y'-X'' (yaw-pitch-roll) decomposition ``R = Rz(yaw) Ry(pitch) Rx(roll)``
(= ``atan2(R[1,0], R[0,0])``); ``H(psi) = Rz(psi)`` a heading (yaw-only) frame. ``o`` = the episode
origin (the base pose at ``episode_first_step`` of the env's trajectory), ``w`` = the window's
first step (``t = 0``); ``x_k,t`` = world position of end effector ``k``.

=========================  ===============  ======  ===========================================
key                        shape            units   definition
=========================  ===============  ======  ===========================================
``ref_motor_joint_pos``    [E, T, n_act]    rad, m  ``qpos[..., spec.actuated_qpos_index]``
``ref_motor_joint_vel``    [E, T, n_act]    rad/s   ``qvel[..., spec.actuated_qvel_index]`` (dof addresses)
``ref_base_local_pos``     [E, T, 3]        m       ``H(psi_w)^T (p_t - p_w)``: window-local, 0 at t = 0
``ref_base_local_trans``   [E, T, 3]        m       ``H(psi_o)^T (p_t - p_o)``: episode-local, 0 at the episode's first step
``ref_base_local_ori``     [E, T, 3]        rad     (roll, pitch, yaw) of ``H(psi_o)^T R_t`` (ZYX intrinsic);
                                                    yaw = heading relative to the episode origin, in (-pi, pi]
``ref_base_robot_lin_vel`` [E, T, 3]        m/s     base-origin linear velocity in the body frame (``R_t^T v_world``)
``ref_base_robot_ang_vel`` [E, T, 3]        rad/s   base angular velocity in the body frame
``ref_local_ee_pos``       [E, T, n_ee, 3]  m       ``H(psi_o)^T (x_k,t - p_t)``: from the base, episode-heading axes
``ref_base_local_ee_pos``  [E, T, n_ee, 3]  m       ``H(psi_t)^T (x_k,t - p_t)``: from the base, its own heading axes
``ref_len``                [E] int32        steps   number of True in ``valid`` (T when there is no ``valid``)
=========================  ===============  ======  ===========================================

Velocity frames follow the data's :class:`~trajopt_loader.Convention` (DESIGN.md, "Conventions"):
a ``"world"`` velocity is rotated by ``R_t^T``; a ``"body"`` one is used as is (MuJoCo angular
velocity and Pinocchio linear + angular velocity are already body-frame: they are never rotated
again). End-effector keys exist only when end-effector positions are given or computed (C5).
Rows where ``valid`` is False hold the references of the nearest earlier valid row (or the first
valid row if none is earlier); an env without any valid row gets zeros and ``ref_len = 0``.
Rotations use ``scipy.spatial.transform.Rotation``; ``references_jax.py`` is the jit-able twin.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Sequence

import grain
import numpy as np
from scipy.spatial.transform import Rotation

from trajopt_loader.conventions import Convention
from trajopt_loader.errors import MissingKeyError, ReferenceInputError
from trajopt_loader.robots.spec import RobotSpec

REF_KEYS = ("ref_motor_joint_pos", "ref_motor_joint_vel", "ref_base_local_pos",
            "ref_base_local_trans", "ref_base_local_ori", "ref_base_robot_lin_vel",
            "ref_base_robot_ang_vel", "ref_len")
EE_REF_KEYS = ("ref_local_ee_pos", "ref_base_local_ee_pos")
_log = logging.getLogger(__name__)


def convention_flags(conventions, convention_index, n_env: int) -> np.ndarray:
    """Per-env booleans ``[E, 3]``: (quat is xyzw, lin vel is world-frame, ang vel is world-frame).

    Args:
      conventions: one :class:`Convention` for all envs, or a sequence of them.
      convention_index: int [E] index into ``conventions`` per env, or None (one convention,
        or exactly one per env).

    Raises:
      ReferenceInputError: on a length / index mismatch.
    """
    convs = (conventions,) if isinstance(conventions, Convention) else tuple(conventions)
    if not convs or not all(isinstance(c, Convention) for c in convs):
        raise ReferenceInputError(f"conventions={conventions!r}: expected a Convention or a "
                                  "non-empty sequence of them (trajopt_loader.MUJOCO / PINOCCHIO).")
    if convention_index is None:
        if len(convs) not in (1, n_env):
            raise ReferenceInputError(f"{len(convs)} conventions for {n_env} envs: give one, one per "
                                      "env, or a convention_index [E].")
        convention_index = np.zeros(n_env, int) if len(convs) == 1 else np.arange(n_env)
    idx = np.asarray(convention_index)
    if idx.shape != (n_env,) or (idx.size and (idx.min() < 0 or idx.max() >= len(convs))):
        raise ReferenceInputError(f"convention_index has shape {idx.shape} / values outside "
                                  f"[0, {len(convs)}); expected int [{n_env}].")
    table = np.array([(c.quat_order == "xyzw", c.lin_vel_frame == "world",
                       c.ang_vel_frame == "world") for c in convs], dtype=bool)
    return table[idx]


def fill_index(valid: np.ndarray) -> np.ndarray:
    """int [E, T]: for each step, the nearest valid step at or before it (else the first valid step)."""
    last = np.maximum.accumulate(np.where(valid, np.arange(valid.shape[1]), -1), axis=1)
    return np.where(last < 0, np.argmax(valid, axis=1)[:, None], last)


def _check(name: str, arr: np.ndarray, shape: tuple, fix: str) -> None:
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ReferenceInputError(f"{name} has shape {arr.shape}; expected {want}. {fix}")


def _heading_mats(yaw: np.ndarray) -> np.ndarray:
    """[..., 3, 3] matrices of ``Rz(yaw)`` (heading frames)."""
    return Rotation.from_euler("z", yaw.reshape(-1, 1)).as_matrix().reshape(yaw.shape + (3, 3))


def compute_references(qpos, qvel, spec: RobotSpec, conventions, *, convention_index=None,
                       origin_qpos=None, valid=None, ee_pos=None, dtype=None) -> dict[str, np.ndarray]:
    """Reference signals of a batch of windows (see the module docstring for every definition).

    Args:
      qpos: float [E, T, nq]; qvel: float [E, T, nv] (rows in each env's convention).
      spec: the robot's :class:`RobotSpec` (indices, base addresses).
      conventions / convention_index: see :func:`convention_flags`.
      origin_qpos: float [E, nq], qpos at each env's episode first step (same convention as its
        rows); None = the window's first step (``t = 0``) is the episode origin.
      valid: bool [E, T] (True = real data) or None (all valid).
      ee_pos: float [E, T, n_ee, 3] end-effector positions (m, world) or None (no ee keys).
      dtype: output float dtype (default: float32 for float32 input, else float64).

    Returns:
      dict of the ``ref_*`` arrays listed in the module docstring.

    Raises:
      ReferenceInputError: wrong shapes, or a valid row whose base quaternion is not finite or
        has a norm below 1e-6 (names env row and step).
    """
    qpos, qvel = np.asarray(qpos), np.asarray(qvel)
    fix = "Check the robot spec (nq/nv) and that windows are [E, T, ...]."
    _check("qpos", qpos, (None, None, spec.nq), fix)
    n_env, n_t = qpos.shape[:2]
    _check("qvel", qvel, (n_env, n_t, spec.nv), fix)
    out_dtype = np.dtype(dtype) if dtype is not None else np.result_type(qpos.dtype, np.float32)
    flags = convention_flags(conventions, convention_index, n_env)
    xyzw, lin_world, ang_world = (flags[:, i, None, None] for i in range(3))
    valid = np.ones((n_env, n_t), bool) if valid is None else np.asarray(valid, bool)
    _check("valid", valid, (n_env, n_t), "valid must be bool [E, T].")
    if ee_pos is not None:
        ee_pos = np.asarray(ee_pos)
        _check("ee_pos", ee_pos, (n_env, n_t, spec.n_ee or None, 3),
               f"ee_pos must be world positions [E, T, n_ee, 3] of the sites {spec.ee_sites}.")
    ref_len = valid.sum(axis=1).astype(np.int32)
    qa, va = spec.base_qpos_adr, spec.base_dof_adr  # base + actuated columns only (less to copy)
    q = qpos[..., np.r_[qa:qa + 7, list(spec.actuated_qpos_index)]]
    v = qvel[..., np.r_[va:va + 6, list(spec.actuated_qvel_index)]]
    if not valid.all():
        rows = (fill_index(valid) + n_t * np.arange(n_env)[:, None]).reshape(-1)
        q = q.reshape(n_env * n_t, -1)[rows].reshape(q.shape)
        v = v.reshape(n_env * n_t, -1)[rows].reshape(v.shape)
        if ee_pos is not None:
            ee_pos = ee_pos.reshape(n_env * n_t, -1, 3)[rows].reshape(ee_pos.shape)
    if origin_qpos is None:
        origin = q[:, 0, :7].astype(np.float64)
    else:
        origin = np.asarray(origin_qpos)
        _check("origin_qpos", origin, (n_env, spec.nq), "origin_qpos must be qpos rows [E, nq].")
        origin = origin[:, qa:qa + 7].astype(np.float64)
    pos, lin, ang = q[..., 0:3].astype(np.float64), v[..., 0:3].astype(np.float64), v[..., 3:6]
    to_xyzw = lambda x, flag: np.where(flag, x, x[..., [1, 2, 3, 0]]).astype(np.float64)  # noqa: E731
    quat, quat_o = to_xyzw(q[..., 3:7], xyzw), to_xyzw(origin[:, 3:7], xyzw[:, 0])
    empty = ref_len == 0
    quat[empty], quat_o[empty] = (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 1.0)
    for name, qq in (("qpos", quat), ("origin_qpos", quat_o[:, None])):
        norm = np.linalg.norm(qq, axis=-1)
        bad = ~(np.isfinite(norm) & (norm > 1e-6))
        if bad.any():
            e, t = np.argwhere(bad)[0]
            raise ReferenceInputError(
                f"{name} env row {e}, step {t}: base quaternion {qq[e, t].tolist()} (as xyzw) has "
                f"norm {norm[e, t]}; expected a unit quaternion. Check the data and its convention.")
    rot = Rotation.from_quat(quat.reshape(-1, 4))
    ypr = rot.as_euler("ZYX").reshape(n_env, n_t, 3)  # (yaw, pitch, roll)
    yaw_o = Rotation.from_quat(quat_o).as_euler("ZYX")[:, 0]
    h_o, h_w = _heading_mats(yaw_o), _heading_mats(ypr[:, 0, 0])  # [E, 3, 3] each
    to_heading = functools.partial(np.einsum, optimize=True)  # v -> Rz(psi)^T v, batched
    # Rz(-psi_o) R = Rz(yaw - psi_o) Ry Rx exactly, so only the yaw changes (wrapped to (-pi, pi]).
    yaw_rel = np.pi - np.mod(np.pi - (ypr[..., 0] - yaw_o[:, None]), 2 * np.pi)
    inv_apply = lambda x: rot.apply(x.reshape(-1, 3), inverse=True).reshape(x.shape)  # noqa: E731
    refs = {
        "ref_motor_joint_pos": q[..., 7:].astype(out_dtype),
        "ref_motor_joint_vel": v[..., 6:].astype(out_dtype),
        "ref_base_local_pos": to_heading("eji,etj->eti", h_w, pos - pos[:, :1]),
        "ref_base_local_trans": to_heading("eji,etj->eti", h_o, pos - origin[:, None, 0:3]),
        "ref_base_local_ori": np.stack([ypr[..., 2], ypr[..., 1], yaw_rel], axis=-1),
        "ref_base_robot_lin_vel": np.where(lin_world, inv_apply(lin), lin),
        "ref_base_robot_ang_vel": np.where(ang_world, inv_apply(ang), ang),
    }
    if ee_pos is not None:
        rel = ee_pos.astype(np.float64) - pos[:, :, None]
        refs["ref_local_ee_pos"] = to_heading("eji,etkj->etki", h_o, rel)
        refs["ref_base_local_ee_pos"] = to_heading("etji,etkj->etki", _heading_mats(ypr[..., 0]), rel)
    for key, arr in refs.items():
        arr = arr.astype(out_dtype, copy=False)
        if empty.any():
            arr[empty] = 0.0
        refs[key] = arr
    refs["ref_len"] = ref_len
    return refs


class BuildReferences(grain.transforms.Map):
    """Grain transform adding the ``ref_*`` keys (module docstring) to a batch dict.

    Reads from the batch: ``qpos [E,W,nq]``, ``qvel [E,W,nv]``, optional ``valid [E,W]``,
    ``traj_id [E]`` and ``episode_first_step [E]`` (with a store), ``episode_origin_qpos [E,nq]``
    (without one; it wins when both exist) and ``ee_key`` (``[E,W,n_ee,3]`` or ``[E,W,3*n_ee]``,
    m, world). Outputs have the dtype of ``qpos``.

    Args:
      store: a ``TrajectoryStore`` giving each env's convention (``store.convention(source)``)
        and episode origin (``store.gather("qpos", traj_id, episode_first_step[:, None])``), or None.
      spec: the robot's :class:`RobotSpec`.
      convention: the data's :class:`Convention` when ``store`` is None (required then).
      ee_key: batch key of end-effector positions, used when present.
      ee_fn: called as ``ee_fn(qpos [n,W,nq], convention=conv) -> [n,W,n_ee,3]`` world positions
        (m) once per convention group when the batch has no ``ee_key``; e.g. forward kinematics
        ``functools.partial(kinematics.site_positions, model, site_names=spec.ee_sites)``.
        (Alternatively put ``kinematics.EndEffectorPositions`` before this transform.)
      require_ee: raise instead of leaving the ee keys out when no ee source exists.

    Raises (from ``map``):
      MissingKeyError: a needed batch key is missing (names it, lists the batch keys).
      ReferenceInputError: see :func:`compute_references`.
    """

    def __init__(self, store=None, spec: RobotSpec | None = None, *,
                 convention: Convention | None = None, ee_key: str = "ee_pos",
                 ee_fn: Callable[..., np.ndarray] | None = None, require_ee: bool = False):
        if not isinstance(spec, RobotSpec):
            raise ReferenceInputError(f"spec={spec!r}: expected a RobotSpec "
                                      "(trajopt_loader.robots.get_spec(name) or spec_from_mjcf).")
        if store is None and not isinstance(convention, Convention):
            raise ReferenceInputError("BuildReferences without a store needs convention= "
                                      "(trajopt_loader.MUJOCO or PINOCCHIO); it is never guessed.")
        self.store, self.spec, self.convention = store, spec, convention
        self.ee_key, self.ee_fn, self.require_ee = ee_key, ee_fn, require_ee
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
                raise ReferenceInputError(f"batch[{self.ee_key!r}] has shape {ee.shape}; expected "
                                          f"[{n_env}, {n_t}, n_ee, 3] or [{n_env}, {n_t}, 3 * n_ee].")
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
        msg = (f"no end-effector positions: the batch has no {self.ee_key!r} key and no ee_fn was "
               "given; add 'ee_pos' to config.keys or pass ee_fn (forward kinematics).")
        if self.require_ee:
            raise MissingKeyError(msg)
        if not self._warned and self.spec.ee_sites:  # a robot without ee sites expects none
            _log.warning("%s The ee reference keys are left out.", msg)
            self._warned = True
        return None

    def map(self, batch: dict) -> dict:
        """Return ``batch`` plus the ``ref_*`` keys (shapes in the module docstring)."""
        qpos = np.asarray(self._get(batch, "qpos", "Add 'qpos' to config.keys."))
        qvel = np.asarray(self._get(batch, "qvel", "Add 'qvel' to config.keys."))
        convs, conv_idx = self._conventions(batch)
        if "episode_origin_qpos" in batch:  # origin rows get the window's dtype: exact 0 at t0
            origin = batch["episode_origin_qpos"]
        elif self.store is not None:
            steps = np.asarray(self._get(batch, "episode_first_step"), np.int32)[:, None]
            origin = self.store.gather("qpos", np.asarray(batch["traj_id"]), steps)[:, 0]
        else:
            raise MissingKeyError("batch has no 'episode_origin_qpos' [E, nq] and BuildReferences "
                                  "has no store to read the episode origin from; pass store=.")
        refs = compute_references(
            qpos, qvel, self.spec, convs, convention_index=conv_idx, valid=batch.get("valid"),
            origin_qpos=np.asarray(origin, qpos.dtype), dtype=qpos.dtype,
            ee_pos=self._ee(batch, qpos, convs, conv_idx))
        return {**batch, **refs}
