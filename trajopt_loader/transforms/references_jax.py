"""JAX twin of :func:`trajopt_loader.transforms.references.compute_references`, usable inside
``jit``.

Same outputs, shapes, frames and units as the numpy version (its module docstring defines every
``ref_*`` key, the heading-frame ones included); rotations use
``jax.scipy.spatial.transform.Rotation``. Envs of different
conventions are handled in one pass with per-env ``jnp.where`` (``convention_index`` is data,
``conventions`` is static). Differences from numpy: nothing is raised from inside ``jit``, so a
valid row with a zero-norm base quaternion gives NaN outputs instead of an error; the output dtype
is the dtype of ``qpos`` (float32 unless x64 is on).

Usage::

    refs = compute_references_jax(
        qpos, qvel, spec=digit_v3.SPEC, conventions=("mujoco", "pinocchio"),
        convention_index=conv_idx, origin_qpos=origin, valid=valid,
    )
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.spatial.transform import Rotation

from trajopt_loader.conventions import flag_table, quat_as_xyzw
from trajopt_loader.errors import ReferenceInputError
from trajopt_loader.geometry import heading_mats_jax, wrap_angle
from trajopt_loader.robots.spec import RobotSpec


@functools.partial(jax.jit, static_argnames=("spec", "conventions", "heading_frame_keys"))
def compute_references_jax(
    qpos,
    qvel,
    spec: RobotSpec,
    conventions,
    *,
    convention_index=None,
    origin_qpos=None,
    valid=None,
    ee_pos=None,
    heading_frame_keys: bool = False,
) -> dict[str, jax.Array]:
    """Reference signals of a batch of windows, traceable / jitted (``spec``, ``conventions``,
    ``heading_frame_keys`` static).

    Args:
      qpos: float [E, T, nq]; qvel: float [E, T, nv] (rows in each env's convention).
      spec: the robot's :class:`RobotSpec` (hashable, static).
      conventions: a :class:`Convention` or its name (``"mujoco"``, ``"pinocchio"``,
        ``"crocoddyl"``; case-insensitive), or a tuple of them (static, hashable).
      convention_index: int [E] index into ``conventions`` per env; None = ``conventions`` has one
        entry (all envs) or one per env.
      origin_qpos: float [E, nq] qpos at each env's episode first step; None = window's first step.
      valid: bool [E, T] (True = real data) or None (all valid).
      ee_pos: float [E, T, n_ee, 3] end-effector world positions (m) or None (no ee keys).
      heading_frame_keys: also return the heading-frame keys (static).

    Returns:
      dict of ``ref_*`` arrays (``ref_len`` int32 [E]), as in the numpy version.

    Raises:
      ReferenceInputError: at trace time, for shape mismatches or a wrong number of conventions.
      ConventionError: at trace time, an unknown convention name (lists the valid ones).
    """
    n_env, n_t = qpos.shape[:2]
    if qpos.shape[2] != spec.nq or qvel.shape != (n_env, n_t, spec.nv):
        raise ReferenceInputError(
            f"qpos {qpos.shape} / qvel {qvel.shape}: expected [E, T, {spec.nq}]"
            f" / [E, T, {spec.nv}] for robot {spec.name!r}."
        )
    table = flag_table(conventions)
    if not len(table):
        raise ReferenceInputError("conventions is empty; give one (e.g. 'mujoco') or one per env.")
    if convention_index is None:
        if len(table) not in (1, n_env):
            raise ReferenceInputError(
                f"{len(table)} conventions for {n_env} envs: give one, one "
                "per env, or convention_index [E]."
            )
        convention_index = jnp.zeros(n_env, jnp.int32) if len(table) == 1 else jnp.arange(n_env)
    flags = jnp.asarray(table)[convention_index]
    xyzw, lin_world, ang_world = (flags[:, i, None, None] for i in range(3))
    out_dtype = qpos.dtype
    valid = jnp.ones((n_env, n_t), bool) if valid is None else valid.astype(bool)
    ref_len = valid.sum(axis=1).astype(jnp.int32)
    t = jnp.arange(n_t)
    last = jax.lax.cummax(jnp.where(valid, t, -1), axis=1)
    src = jnp.where(last < 0, jnp.argmax(valid, axis=1)[:, None], last)[:, :, None]
    qpos = jnp.take_along_axis(qpos, src, axis=1)
    qvel = jnp.take_along_axis(qvel, src, axis=1)
    origin = qpos[:, 0] if origin_qpos is None else origin_qpos.astype(qpos.dtype)
    empty = (ref_len == 0)[:, None, None]
    identity = jnp.array([0.0, 0.0, 0.0, 1.0], qpos.dtype)

    def to_xyzw(q, flag):
        return jnp.where(empty, identity, quat_as_xyzw(q, flag, jnp))

    rot = Rotation.from_quat(to_xyzw(qpos[..., spec.base_quat_slice], xyzw))
    ypr = rot.as_euler("ZYX")  # (yaw, pitch, roll)
    pos, pos_o = qpos[..., spec.base_pos_slice], origin[:, spec.base_pos_slice]
    lin, ang = qvel[..., spec.base_lin_vel_slice], qvel[..., spec.base_ang_vel_slice]
    refs = {
        "ref_motor_joint_pos": qpos[..., np.asarray(spec.actuated_qpos_index)],
        "ref_motor_joint_vel": qvel[..., np.asarray(spec.actuated_qvel_index)],
        "ref_base_local_pos": pos,
        "ref_base_local_trans": pos - pos_o[:, None],
        "ref_base_local_ori": ypr[..., ::-1],
        "ref_base_robot_lin_vel": jnp.where(lin_world, rot.apply(lin, inverse=True), lin),
        "ref_base_robot_ang_vel": jnp.where(ang_world, rot.apply(ang, inverse=True), ang),
    }
    if ee_pos is not None:
        ee_pos = jnp.take_along_axis(ee_pos, src[..., None], axis=1).astype(qpos.dtype)
        rel = ee_pos - pos[:, :, None]
        refs["ref_local_ee_pos"] = ee_pos
        refs["ref_base_local_ee_pos"] = jnp.einsum(
            "etji,etkj->etki", heading_mats_jax(ypr[..., 0]), rel
        )
    if heading_frame_keys:
        quat_o = to_xyzw(origin[:, None, spec.base_quat_slice], xyzw)[:, 0]
        yaw_o = Rotation.from_quat(quat_o).as_euler("ZYX")[:, 0]
        h_o, h_w = heading_mats_jax(yaw_o), heading_mats_jax(ypr[:, 0, 0])
        refs["ref_base_heading_pos"] = jnp.einsum("eji,etj->eti", h_w, pos - pos[:, :1])
        refs["ref_base_heading_trans"] = jnp.einsum("eji,etj->eti", h_o, pos - pos_o[:, None])
        yaw_rel = wrap_angle(ypr[..., 0] - yaw_o[:, None], jnp)
        refs["ref_base_heading_ori"] = jnp.stack([ypr[..., 2], ypr[..., 1], yaw_rel], axis=-1)
        if ee_pos is not None:
            refs["ref_ee_heading_pos"] = jnp.einsum("eji,etkj->etki", h_o, rel)
    refs = {
        k: jnp.where(empty.reshape((n_env,) + (1,) * (v.ndim - 1)), 0, v).astype(out_dtype)
        for k, v in refs.items()
    }
    refs["ref_len"] = ref_len
    return refs
