"""What the pictures show of one trajectory: base pose, joints, ``inspect`` flags per step, refs.

Pure numpy (plus MuJoCo only when a model path is given); the drawing lives in
:mod:`trajopt_loader.viz.trajectory`. Everything is read through :class:`TrajectoryStore`, so
local and remote stores work alike.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy.spatial.transform import Rotation

from trajopt_loader.conventions import reorder_quat
from trajopt_loader.errors import MissingKeyError, RobotSpecError
from trajopt_loader.robots import ROBOTS, RobotSpec, get_spec, spec_from_mjcf
from trajopt_loader.store.inspect import FEW_DISTINCT, distinct_rows
from trajopt_loader.store.velocity import (
    SCALE_TOLERANCE,
    check_velocity_consistency,
    model_joint_addresses,
)


@dataclasses.dataclass
class TrajectoryView:
    """Arrays of one trajectory as plotted (``T`` = its length).

    Attributes:
      path: ``source/motion/trajN``. dt: time step (s). time: float64 ``[T]`` s.
      qpos: ``[T, nq]`` as stored. qvel: ``[T, nv]`` or None when the trajectory has none.
      pos: float64 ``[T, 3]`` base position (m, world). rpy: float64 ``[T, 3]`` roll, pitch, yaw
        (rad, intrinsic ZYX; yaw unwrapped over time).
      joint_names: ``n_act`` names. joint_pos ``[T, n_act]`` (rad or m), joint_vel ``[T, n_act]``
        (rad/s or m/s) or None.
      flags: ``inspect``'s flag texts for this trajectory.
      frozen: bool ``[T]``, True where the ``qpos`` or ``qvel`` row repeats the previous row.
      vel_mismatch: bool ``[T]``, True where a flagged ``qvel`` differs from the forward difference
        of ``qpos`` by more than ``SCALE_TOLERANCE`` of its size (all False when not flagged).
      refs: ``{ref_key: [T, ...]}`` from :func:`compute_references` with the trajectory as one
        window (episode origin = step 0; end-effector keys when the trajectory has ``ee_pos``),
        or None when not asked for.
    """

    path: str
    dt: float
    time: np.ndarray
    qpos: np.ndarray
    qvel: np.ndarray | None
    pos: np.ndarray
    rpy: np.ndarray
    joint_names: tuple
    joint_pos: np.ndarray
    joint_vel: np.ndarray | None
    flags: list
    frozen: np.ndarray
    vel_mismatch: np.ndarray
    refs: dict | None = None


def resolve_spec(
    store, traj_id: int, *, robot: str | None = None, model_path: str | None = None
) -> RobotSpec:
    """The :class:`RobotSpec` used to read a trajectory's base and joints.

    ``robot`` (a name of :data:`trajopt_loader.robots.ROBOTS`) wins, then ``model_path``
    (:func:`spec_from_mjcf`), then a robot named like the trajectory's source or motion, then a
    generic free-joint layout (``qpos[0:7]`` base, joints ``qpos[7:]`` / ``qvel[6:]``, named by
    address) when ``nq - nv == 1``.

    Raises:
      RobotSpecError: unknown robot, missing model, a spec whose nq / nv differ from the data, or a
        layout that is not a free-joint base and no robot or model was given.
    """
    info = store.info(traj_id)
    nq = info.keys["qpos"][0][0] if "qpos" in info.keys else None
    nv = info.keys["qvel"][0][0] if "qvel" in info.keys else None
    if robot is not None:
        spec = get_spec(robot, model_path)
    elif model_path is not None:
        spec = spec_from_mjcf(model_path)
    else:
        named = [n for n in (info.source, info.motion) if n in ROBOTS]
        spec = get_spec(named[0]) if named else None
    if spec is None:
        if nq is None or nq < 7 or (nv is not None and nq - nv != 1):
            raise RobotSpecError(
                f"{info.path}: cannot tell the base and joint layout (qpos {nq} wide, qvel {nv}); "
                f"pass --robot (one of {sorted(ROBOTS)}) or --model PATH/TO/robot.xml."
            )
        nv = nq - 1 if nv is None else nv
        return RobotSpec(
            name="free-base",
            nq=nq,
            nv=nv,
            actuated_qpos_index=range(7, nq),
            actuated_qvel_index=range(6, nv),
            actuated_joints=tuple(f"qpos[{i}]" for i in range(7, nq)),
        )
    if spec.nq != nq or (nv is not None and spec.nv != nv):
        raise RobotSpecError(
            f"{info.path}: robot {spec.name!r} has nq={spec.nq}, nv={spec.nv} but "
            f"the data has qpos {nq}, qvel {nv} wide; pass the matching --robot "
            "or --model."
        )
    return spec


def base_pose(qpos: np.ndarray, spec: RobotSpec, quat_order: str) -> tuple[np.ndarray, np.ndarray]:
    """``(pos [T, 3] m world, rpy [T, 3] rad)`` of the base; yaw is unwrapped over time.

    Raises:
      RobotSpecError: a base quaternion with norm below 1e-6 (names the step).
    """
    q = reorder_quat(np.asarray(qpos[:, spec.base_quat_slice], np.float64), quat_order, "xyzw")
    bad = np.flatnonzero(np.linalg.norm(q, axis=1) < 1e-6)
    if bad.size:
        raise RobotSpecError(
            f"base quaternion at step {int(bad[0])} has norm < 1e-6; is the base "
            "at qpos[3:7] (check --robot / --model)?"
        )
    ypr = Rotation.from_quat(q).as_euler("ZYX")
    rpy = ypr[:, ::-1].copy()
    rpy[:, 2] = np.unwrap(rpy[:, 2])
    return np.asarray(qpos[:, spec.base_pos_slice], np.float64), rpy


_joint_addresses = functools.lru_cache(maxsize=4)(model_joint_addresses)  # one load per model


def _flags(qpos, qvel, dt, model_path):
    """inspect's flags (frozen, nearly frozen, qvel vs dq/dt) and their per-step marks."""
    n = qpos.shape[0]
    flags = []
    frozen = np.zeros(n, bool)
    for a in (qpos, qvel):
        if a is not None:
            frozen[1:] |= np.all(a[1:] == a[:-1], axis=1)
    mismatch = np.zeros(n, bool)
    for key, a in (("qpos", qpos), ("qvel", qvel)):
        if a is None:
            continue
        d = distinct_rows(a)
        if n > 1 and d == 1:
            flags.append(f"{key} frozen: 1 distinct row of {n}")
        elif n >= 20 and d < FEW_DISTINCT * n:
            flags.append(f"{key} nearly frozen: {d} distinct rows of {n}")
    if qvel is None or n < 2:
        return flags, frozen, mismatch
    try:
        qadr = dadr = None
        if model_path is not None:
            mnq, mnv, qadr, dadr = _joint_addresses(str(model_path))
            if (mnq, mnv) != (qpos.shape[1], qvel.shape[1]):
                return flags, frozen, mismatch
        check = check_velocity_consistency(qpos, qvel, dt, qadr, dadr)
    except ValueError:  # not addressable without a model: inspect skips it too
        return flags, frozen, mismatch
    if check.flagged:
        flags.append(f"velocity: {check.reason}")
        if qadr is None:
            dadr = np.arange(6, qvel.shape[1])
            qadr = dadr + 1
        fd = (qpos[1:, qadr] - qpos[:-1, qadr]) / dt
        err = np.linalg.norm(qvel[:-1, dadr] - fd, axis=1)
        mismatch[:-1] = err > SCALE_TOLERANCE * np.linalg.norm(fd, axis=1) + 1e-9
    return flags, frozen, mismatch


def trajectory_view(
    store,
    traj,
    *,
    spec: RobotSpec | None = None,
    model_path: str | None = None,
    robot: str | None = None,
    refs: bool = False,
) -> TrajectoryView:
    """Read trajectory ``traj`` (traj_id or ``"source/motion/trajN"``) and derive what is plotted.

    Raises:
      MissingKeyError: unknown trajectory, no ``qpos``, or ``refs=True`` without ``qvel``.
      RobotSpecError: see :func:`resolve_spec` / :func:`base_pose`.
      ReferenceInputError: from :func:`compute_references`.
    """
    info = store.info(traj)
    if "qpos" not in info.keys:
        raise MissingKeyError(
            f"{info.path} has no 'qpos' (keys: {sorted(info.keys)}); plots need it."
        )
    spec = spec or resolve_spec(store, info.traj_id, robot=robot, model_path=model_path)
    conv = store.convention(info.source)
    qpos = np.asarray(store.read(info.traj_id, "qpos"), np.float64)
    qvel = np.asarray(store.read(info.traj_id, "qvel"), np.float64) if "qvel" in info.keys else None
    if qpos.shape[1] != spec.nq or (qvel is not None and qvel.shape[1] != spec.nv):
        raise RobotSpecError(
            f"{info.path}: qpos {qpos.shape[1]} / qvel "
            f"{None if qvel is None else qvel.shape[1]} wide, but robot "
            f"{spec.name!r} has nq={spec.nq}, nv={spec.nv}; plot trajectories of "
            "one robot together."
        )
    pos, rpy = base_pose(qpos, spec, conv.quat_order)
    flags, frozen, mismatch = _flags(qpos, qvel, info.dt, model_path)
    idx_q, idx_v = list(spec.actuated_qpos_index), list(spec.actuated_qvel_index)
    names = spec.actuated_joints or tuple(f"qpos[{i}]" for i in idx_q)
    ref = None
    if refs:
        if qvel is None:
            raise MissingKeyError(
                f"{info.path} has no 'qvel'; the ref_* signals need it (export "
                "with --derive-qvel --model MODEL.xml)."
            )
        from trajopt_loader.transforms.references import compute_references

        ee = (
            np.asarray(store.read(info.traj_id, "ee_pos"), np.float64).reshape(
                1, info.length, -1, 3
            )
            if "ee_pos" in info.keys
            else None
        )
        out = compute_references(qpos[None], qvel[None], spec, (conv,), ee_pos=ee)
        ref = {k: v[0] for k, v in out.items() if np.ndim(v) >= 2}
    return TrajectoryView(
        path=info.path,
        dt=float(info.dt),
        time=np.arange(info.length) * float(info.dt),
        qpos=qpos,
        qvel=qvel,
        pos=pos,
        rpy=rpy,
        joint_names=tuple(names),
        joint_pos=qpos[:, idx_q],
        joint_vel=None if qvel is None else qvel[:, idx_v],
        flags=flags,
        frozen=frozen,
        vel_mismatch=mismatch,
        refs=ref,
    )
