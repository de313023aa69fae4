"""Robot reference signals (``ref_*``) from ``qpos`` / ``qvel`` windows: definitions and numpy core.

This docstring is the one definition of every ``ref_*`` key (README's "Robot references" table
follows it). Notation, per env ``e`` and window step ``t`` (world frame: the data's, z up):
``p_t`` base position (m) = ``qpos[base_pos_slice]``; ``R_t`` base rotation (body -> world) from
``qpos[base_quat_slice]`` read in the data's quaternion order; ``(roll_t, pitch_t, yaw_t)`` the
intrinsic Z-Y'-X'' angles of ``R_t = Rz(yaw) Ry(pitch) Rx(roll)`` (yaw in [-pi, pi]); heading
``psi_t = yaw_t`` (``= atan2(R[1,0], R[0,0])``) and ``H(psi) = Rz(psi)`` a heading (yaw-only)
frame; ``o`` = the episode's first step (``episode_first_step`` of the env's trajectory), ``w``
= the window's first step (``t = 0``); ``x_k,t`` = world position of end effector ``k``;
``v_t``, ``omega_t`` = base linear / angular velocity in ``qvel`` (frames per convention);
``wrap`` = into (-pi, pi]; ``a^T`` = transpose (world -> frame). Bodies (exported with
``--bodies``, ``kinematics/bodies.py``): ``x_b,t``, ``R_b,t`` (quaternion ``q_b,t``, wxyz),
``v_b,t``, ``omega_b,t`` = world position, rotation, linear velocity of the frame origin and
angular velocity of body ``b``, world axes; ``a`` = the anchor body (``references.anchor_body``,
default the first stored body) and ``psi_a,t`` its heading.

============================  ===============  ======  =============================================
key                           shape            units   definition (frame)
============================  ===============  ======  =============================================
``ref_motor_joint_pos``       [E, T, n_act]    rad, m  ``qpos[..., spec.actuated_qpos_index]``
``ref_motor_joint_vel``       [E, T, n_act]    rad/s   ``qvel[..., spec.actuated_qvel_index]`` (dof
                                                       addresses)
``ref_base_local_pos``        [E, T, 3]        m       ``p_t``: world frame (the qpos base xyz)
``ref_base_local_trans``      [E, T, 3]        m       ``p_t - p_o``: world axes, 0 at the episode's
                                                       first step
``ref_base_local_ori``        [E, T, 3]        rad     ``(roll_t, pitch_t, yaw_t)``: absolute, of
                                                       ``R_t`` (ZYX)
``ref_base_robot_lin_vel``    [E, T, 3]        m/s     ``R_t^T v_t`` for world-frame ``v_t``, else
                                                       ``v_t``: body frame
``ref_base_robot_ang_vel``    [E, T, 3]        rad/s   ``R_t^T omega_t`` for world-frame
                                                       ``omega_t``, else ``omega_t``: body frame
``ref_local_ee_pos``          [E, T, n_ee, 3]  m       ``x_k,t``: world frame
``ref_base_local_ee_pos``     [E, T, n_ee, 3]  m       ``H(psi_t)^T (x_k,t - p_t)``: from the base,
                                                       in its own heading axes
``ref_len``                   [E] int32        steps   number of True in ``valid`` (T when there is
                                                       no ``valid``)
----------------------------  ---------------  ------  ---------------------------------------------
with ``heading_frame_keys=True`` (``config.references.heading_frame_keys``), also:
----------------------------  ---------------  ------  ---------------------------------------------
``ref_base_heading_pos``      [E, T, 3]        m       ``H(psi_w)^T (p_t - p_w)``: window-local,
                                                       window's first heading axes
``ref_base_heading_trans``    [E, T, 3]        m       ``H(psi_o)^T (p_t - p_o)``: episode-local,
                                                       episode's first heading axes
``ref_base_heading_ori``      [E, T, 3]        rad     ``(roll_t, pitch_t, wrap(yaw_t - psi_o))`` =
                                                       ZYX angles of ``H(psi_o)^T R_t``
``ref_ee_heading_pos``        [E, T, n_ee, 3]  m       ``H(psi_o)^T (x_k,t - p_t)``: from the base,
                                                       episode's first heading axes
----------------------------  ---------------  ------  ---------------------------------------------
with ``body_keys=True`` (``config.references.body_keys``; ``references_bodies.py``), also:
----------------------------  ---------------  ------  ---------------------------------------------
``ref_body_pos``              [E, T, nb, 3]    m       ``x_b,t``: world frame
``ref_body_quat``             [E, T, nb, 4]    1       ``q_b,t`` (wxyz): body -> world
``ref_body_lin_vel``          [E, T, nb, 3]    m/s     ``v_b,t``: world axes, at the body frame
                                                       origin
``ref_body_ang_vel``          [E, T, nb, 3]    rad/s   ``omega_b,t``: world axes
``ref_body_heading_pos``      [E, T, nb, 3]    m       ``H(psi_a,t)^T (x_b,t - x_a,t)``: from the
                                                       anchor, its own heading axes
``ref_body_heading_quat``     [E, T, nb, 4]    1       ``H(psi_a,t)^T R_b,t`` as ``qz(-psi_a,t)
                                                       q_b,t`` (wxyz)
``ref_body_heading_lin_vel``  [E, T, nb, 3]    m/s     ``H(psi_a,t)^T v_b,t``: anchor's heading axes
                                                       (not relative to its velocity)
``ref_body_heading_ang_vel``  [E, T, nb, 3]    rad/s   ``H(psi_a,t)^T omega_b,t``: anchor's heading
                                                       axes
============================  ===============  ======  =============================================

The keys above the line are the predecessor's names with its meanings (``ref_base_local_ee_pos``
included: it computed ``Rz(-yaw_t) (x_k,t - p_t)``, the same quantity), with its defects fixed:
the quaternion order comes from the data's :class:`~trajopt_loader.Convention` (it assumed xyzw);
velocities are rotated only when the convention stores them in the world frame (MuJoCo's angular
velocity and Pinocchio's linear + angular velocity are already body-frame; it rotated them again);
``ref_base_local_trans`` is relative to the episode's first step (it used each window's first
step); end-effector keys exist only when end-effector positions are given or computed (it
filled zeros). After a cyclic wrap (``transforms/cycles.py``) ``p_t``, ``R_t`` and
``x_k,t`` are the continued ones, so the world-frame keys keep growing along the episode.
Rows where ``valid`` is False hold the references of the nearest earlier valid row (or the first
valid row if none is earlier); an env without any valid row gets zeros and ``ref_len = 0``.
Rotations use ``scipy.spatial.transform.Rotation``; ``references_jax.py`` is the jit-able twin;
the heading-frame keys are computed in ``references_heading.py``; ``references_transform.py``
holds the grain transform ``BuildReferences`` that adds these keys to batches.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from trajopt_loader.conventions import flag_table, quat_as_xyzw
from trajopt_loader.errors import ReferenceInputError
from trajopt_loader.geometry import heading_mats
from trajopt_loader.robots.spec import RobotSpec
from trajopt_loader.transforms.references_heading import (
    HEADING_EE_REF_KEYS,
    HEADING_REF_KEYS,
    heading_references,
    to_heading,
)

REF_KEYS = (
    "ref_motor_joint_pos",
    "ref_motor_joint_vel",
    "ref_base_local_pos",
    "ref_base_local_trans",
    "ref_base_local_ori",
    "ref_base_robot_lin_vel",
    "ref_base_robot_ang_vel",
    "ref_len",
)
EE_REF_KEYS = ("ref_local_ee_pos", "ref_base_local_ee_pos")
__all__ = [
    "REF_KEYS",
    "EE_REF_KEYS",
    "HEADING_REF_KEYS",
    "HEADING_EE_REF_KEYS",
    "compute_references",
    "convention_flags",
    "fill_index",
]


def convention_flags(conventions, convention_index, n_env: int) -> np.ndarray:
    """Per-env booleans ``[E, 3]``: (quat is xyzw, lin vel is world-frame, ang vel is world-frame).

    Args:
      conventions: one convention for all envs, or a sequence of them; each a :class:`Convention`
        or its name (``"mujoco"``, ``"pinocchio"``, ``"crocoddyl"``; case-insensitive).
      convention_index: int [E] index into ``conventions`` per env, or None (one convention,
        or exactly one per env).

    Raises:
      ConventionError: an unknown name or a value that is no convention (lists the valid names).
      ReferenceInputError: no convention, or a length / index mismatch.
    """
    table = flag_table(conventions)  # [n_conventions, 3]
    n_conv = len(table)
    if not n_conv:
        raise ReferenceInputError("conventions is empty; give one (e.g. 'mujoco') or one per env.")
    if convention_index is None:
        if n_conv not in (1, n_env):
            raise ReferenceInputError(
                f"{n_conv} conventions for {n_env} envs: give one, one per "
                "env, or a convention_index [E]."
            )
        convention_index = np.zeros(n_env, int) if n_conv == 1 else np.arange(n_env)
    idx = np.asarray(convention_index)
    if idx.shape != (n_env,) or (idx.size and (idx.min() < 0 or idx.max() >= n_conv)):
        raise ReferenceInputError(
            f"convention_index has shape {idx.shape} / values outside "
            f"[0, {n_conv}); expected int [{n_env}]."
        )
    return table[idx]


def fill_index(valid: np.ndarray) -> np.ndarray:
    """int [E, T]: for each step, the nearest valid step at or before it (else the first valid
    step)."""
    last = np.maximum.accumulate(np.where(valid, np.arange(valid.shape[1]), -1), axis=1)
    return np.where(last < 0, np.argmax(valid, axis=1)[:, None], last)


def _check(name: str, arr: np.ndarray, shape: tuple, fix: str) -> None:
    if arr.ndim != len(shape) or any(
        s is not None and a != s for a, s in zip(arr.shape, shape, strict=True)
    ):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ReferenceInputError(f"{name} has shape {arr.shape}; expected {want}. {fix}")


def compute_references(
    qpos,
    qvel,
    spec: RobotSpec,
    conventions,
    *,
    convention_index=None,
    origin_qpos=None,
    valid=None,
    ee_pos=None,
    dtype=None,
    heading_frame_keys: bool = False,
) -> dict[str, np.ndarray]:
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
      heading_frame_keys: also return the heading-frame keys (``HEADING_REF_KEYS``, and
        ``HEADING_EE_REF_KEYS`` with ``ee_pos``).

    Returns:
      dict of the ``ref_*`` arrays listed in the module docstring.

    Raises:
      ConventionError: see :func:`convention_flags`.
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
        _check(
            "ee_pos",
            ee_pos,
            (n_env, n_t, spec.n_ee or None, 3),
            f"ee_pos must be world positions [E, T, n_ee, 3] of the sites {spec.ee_sites}.",
        )
    ref_len = valid.sum(axis=1).astype(np.int32)
    qa, va = spec.base_qpos_adr, spec.base_dof_adr  # base + actuated columns only (less to copy)
    q = qpos[..., np.r_[qa : qa + 7, list(spec.actuated_qpos_index)]]
    v = qvel[..., np.r_[va : va + 6, list(spec.actuated_qvel_index)]]
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
        origin = origin[:, qa : qa + 7].astype(np.float64)
    pos, lin, ang = q[..., 0:3].astype(np.float64), v[..., 0:3].astype(np.float64), v[..., 3:6]
    quat = quat_as_xyzw(q[..., 3:7], xyzw).astype(np.float64)
    quat_o = quat_as_xyzw(origin[:, 3:7], xyzw[:, 0]).astype(np.float64)
    empty = ref_len == 0
    quat[empty], quat_o[empty] = (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 1.0)
    for name, qq in (("qpos", quat), ("origin_qpos", quat_o[:, None])):
        norm = np.linalg.norm(qq, axis=-1)
        bad = ~(np.isfinite(norm) & (norm > 1e-6))
        if bad.any():
            e, t = np.argwhere(bad)[0]
            raise ReferenceInputError(
                f"{name} env row {e}, step {t}: base quaternion {qq[e, t].tolist()} (as xyzw) has "
                f"norm {norm[e, t]}; expected a unit quaternion. Check the data and its convention."
            )
    rot = Rotation.from_quat(quat.reshape(-1, 4))
    ypr = rot.as_euler("ZYX").reshape(n_env, n_t, 3)  # (yaw, pitch, roll)
    inv_apply = lambda x: rot.apply(x.reshape(-1, 3), inverse=True).reshape(x.shape)  # noqa: E731
    refs = {
        "ref_motor_joint_pos": q[..., 7:].astype(out_dtype),
        "ref_motor_joint_vel": v[..., 6:].astype(out_dtype),
        "ref_base_local_pos": pos,
        "ref_base_local_trans": pos - origin[:, None, 0:3],
        "ref_base_local_ori": np.ascontiguousarray(ypr[..., ::-1]),
        "ref_base_robot_lin_vel": np.where(lin_world, inv_apply(lin), lin),
        "ref_base_robot_ang_vel": np.where(ang_world, inv_apply(ang), ang),
    }
    rel = None
    if ee_pos is not None:
        ee = ee_pos.astype(np.float64)
        rel = ee - pos[:, :, None]
        refs["ref_local_ee_pos"] = ee
        refs["ref_base_local_ee_pos"] = to_heading(heading_mats(ypr[..., 0]), rel)
    if heading_frame_keys:
        yaw_o = Rotation.from_quat(quat_o).as_euler("ZYX")[:, 0]
        refs.update(heading_references(pos, ypr, origin[:, 0:3], yaw_o, rel))
    for key, arr in refs.items():
        arr = arr.astype(out_dtype, copy=False)
        if empty.any():
            arr[empty] = 0.0
        refs[key] = arr
    refs["ref_len"] = ref_len
    return refs
