"""Robot specification: which ``qpos`` / ``qvel`` entries are the base and the actuated joints.

A :class:`RobotSpec` is a frozen, hashable dataclass (usable as a static argument of ``jax.jit``).
:func:`spec_from_mjcf` derives one from a MuJoCo model so that the hard-coded constants of the
robot modules (``digit_v3``, ``cassie``, ...) can be checked against the model itself.

Addresses (MuJoCo docs, ``mjModel.jnt_qposadr`` / ``mjModel.jnt_dofadr``): a joint's position is
read at its *qpos address* and its velocity at its *dof address*. They differ as soon as a free or
ball joint (4-number quaternion, 3 dofs) precedes the joint, so they are kept apart here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from trajopt_loader.errors import RobotSpecError


@dataclasses.dataclass(frozen=True)
class RobotSpec:
    """Index layout of a floating-base robot's ``qpos [nq]`` / ``qvel [nv]`` rows.

    Attributes:
      name: robot name, e.g. ``"digit_v3"``.
      nq: length of a ``qpos`` row.
      nv: length of a ``qvel`` row.
      actuated_qpos_index: tuple[int] [n_act], qpos address of each actuated joint, actuator order.
      actuated_qvel_index: tuple[int] [n_act], dof (qvel) address of the same joints.
      ee_sites: tuple[str] [n_ee], MuJoCo site names of the end effectors (may be empty).
      actuated_joints: tuple[str] [n_act], joint names (informational; may be empty).
      base_body: name of the floating-base body in the MuJoCo model.
      base_qpos_adr: base position at ``qpos[adr:adr+3]`` (m, world), quaternion at
        ``qpos[adr+3:adr+7]`` (order given by the data's :class:`~trajopt_loader.Convention`).
      base_dof_adr: base linear velocity at ``qvel[adr:adr+3]`` (m/s), angular velocity at
        ``qvel[adr+3:adr+6]`` (rad/s); frames given by the data's Convention.
      model_path: path of the MJCF model, or ``None`` when not known.
    """

    name: str
    nq: int
    nv: int
    actuated_qpos_index: tuple[int, ...]
    actuated_qvel_index: tuple[int, ...]
    ee_sites: tuple[str, ...] = ()
    actuated_joints: tuple[str, ...] = ()
    base_body: str = ""
    base_qpos_adr: int = 0
    base_dof_adr: int = 0
    model_path: str | None = None

    def __post_init__(self) -> None:
        for field in ("actuated_qpos_index", "actuated_qvel_index", "ee_sites", "actuated_joints"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        object.__setattr__(
            self, "actuated_qpos_index", tuple(int(i) for i in self.actuated_qpos_index)
        )
        object.__setattr__(
            self, "actuated_qvel_index", tuple(int(i) for i in self.actuated_qvel_index)
        )
        if self.model_path is not None:
            object.__setattr__(self, "model_path", os.fspath(self.model_path))
        if len(self.actuated_qpos_index) != len(self.actuated_qvel_index):
            raise RobotSpecError(
                f"robot {self.name!r}: {len(self.actuated_qpos_index)} qpos indices but "
                f"{len(self.actuated_qvel_index)} qvel indices; give one of each per actuated "
                "joint."
            )
        checks = (
            ("actuated_qpos_index", self.actuated_qpos_index, self.nq),
            ("actuated_qvel_index", self.actuated_qvel_index, self.nv),
            ("base_qpos_adr + 7", (self.base_qpos_adr + 6,), self.nq),
            ("base_dof_adr + 6", (self.base_dof_adr + 5,), self.nv),
        )
        for field, values, size in checks:
            bad = [i for i in values if not 0 <= i < size]
            if bad:
                raise RobotSpecError(
                    f"robot {self.name!r}: {field} has {bad} outside [0, {size}); check the "
                    "indices against the model's jnt_qposadr / jnt_dofadr (spec_from_mjcf)."
                )

    @property
    def n_act(self) -> int:
        """Number of actuated joints."""
        return len(self.actuated_qpos_index)

    @property
    def n_ee(self) -> int:
        """Number of end-effector sites."""
        return len(self.ee_sites)

    @property
    def base_pos_slice(self) -> slice:
        """``qpos[base_pos_slice]``: base position [3] (m, world frame)."""
        return slice(self.base_qpos_adr, self.base_qpos_adr + 3)

    @property
    def base_quat_slice(self) -> slice:
        """``qpos[base_quat_slice]``: base orientation quaternion [4] (order from the
        Convention)."""
        return slice(self.base_qpos_adr + 3, self.base_qpos_adr + 7)

    @property
    def base_lin_vel_slice(self) -> slice:
        """``qvel[base_lin_vel_slice]``: base linear velocity [3] (m/s, frame from the
        Convention)."""
        return slice(self.base_dof_adr, self.base_dof_adr + 3)

    @property
    def base_ang_vel_slice(self) -> slice:
        """``qvel[base_ang_vel_slice]``: base angular velocity [3] (rad/s, frame from the
        Convention)."""
        return slice(self.base_dof_adr + 3, self.base_dof_adr + 6)

    def with_model_path(self, model_path: str | os.PathLike | None) -> RobotSpec:
        """A copy with ``model_path`` set: the MJCF used for forward kinematics of the ee sites.

        The file is not opened here, so nothing is raised. Indices stay MuJoCo ``jnt_qposadr`` /
        ``jnt_dofadr`` (MuJoCo docs, "mjModel"); base quaternion order and velocity frames come
        from the data's :class:`~trajopt_loader.Convention`, not from the spec. Each robot module
        exposes it as ``spec(model_path)`` (e.g. ``digit_v3.spec("digit-v3.xml")``).
        """
        return dataclasses.replace(
            self, model_path=None if model_path is None else os.fspath(model_path)
        )


def load_model(model):
    """``mujoco.MjModel`` from a path (str / PathLike), an ``MjSpec`` (compiled) or an ``MjModel``.

    Raises:
      ModelNotFoundError: a path where no file is. ModelError: MuJoCo cannot load the file
        (both from :func:`trajopt_loader.kinematics.model.load_model`).
    """
    import mujoco  # Imported lazily: the numpy reference path does not need MuJoCo.

    if isinstance(model, mujoco.MjModel):
        return model
    if isinstance(model, mujoco.MjSpec):
        return model.compile()
    from trajopt_loader.kinematics.model import load_model as load_mjcf

    return load_mjcf(model)


def _floating_base(m) -> tuple[int, int, int]:
    """(body id, qpos adr, dof adr) of the floating base
    (:func:`trajopt_loader.kinematics.model.floating_base`); RobotSpecError when there is none."""
    from trajopt_loader.kinematics.model import floating_base

    if m.njnt == 0:
        raise RobotSpecError("the model has no joints, so no floating base.")
    found = floating_base(m)
    if found is None:
        raise RobotSpecError(
            "the model's first joint is neither a free joint nor 3 slides (x, y, z) + 1 ball joint "
            f"on one world-aligned body whose parent is the world (got joint types "
            f"{[int(t) for t in m.jnt_type[:4]]}); references need a floating base laid out as "
            "[pos(3), quat(4)] / [lin vel(3), ang vel(3)]."
        )
    return found


def spec_from_mjcf(
    model,
    *,
    actuator_names: Sequence[str] | None = None,
    joint_names: Sequence[str] | None = None,
    ee_sites: Sequence[str] = (),
    name: str | None = None,
) -> RobotSpec:
    """Derive a :class:`RobotSpec` from a MuJoCo model.

    Actuated joints are, by default, the joints driven by every actuator in actuator order
    (``actuator_trnid[a, 0]`` of joint transmissions); ``actuator_names`` picks a subset / order,
    ``joint_names`` names joints directly instead. Positions are read at ``jnt_qposadr`` and
    velocities at ``jnt_dofadr`` of each joint.

    Args:
      model: path of an MJCF file, a ``mujoco.MjSpec`` or a ``mujoco.MjModel``.
      actuator_names: actuators whose joints are actuated (exclusive with ``joint_names``).
      joint_names: names of 1-dof (hinge / slide) joints, in the wanted order.
      ee_sites: site names of the end effectors; each must exist in the model.
      name: spec name (default: the model's name).

    Returns:
      RobotSpec with ``model_path`` set when ``model`` was a path.

    Raises:
      RobotSpecError: unknown actuator / joint / site name, an actuator that does not drive a
        joint, a multi-dof actuated joint, or no floating base.
    """
    import mujoco

    if actuator_names is not None and joint_names is not None:
        raise RobotSpecError("give actuator_names or joint_names, not both.")
    m = load_model(model)
    model_path = None if isinstance(model, (mujoco.MjModel, mujoco.MjSpec)) else os.fspath(model)

    def lookup(kind, obj_name):
        idx = mujoco.mj_name2id(m, kind, obj_name)
        if idx < 0:
            raise RobotSpecError(
                f"{kind.name[6:].lower()} {obj_name!r} is not in the model"
                f"{'' if model_path is None else ' ' + model_path}; check the name."
            )
        return idx

    if joint_names is None:
        acts = (
            range(m.nu)
            if actuator_names is None
            else [lookup(mujoco.mjtObj.mjOBJ_ACTUATOR, a) for a in actuator_names]
        )
        joints = []
        for a in acts:
            if int(m.actuator_trntype[a]) not in (
                int(mujoco.mjtTrn.mjTRN_JOINT),
                int(mujoco.mjtTrn.mjTRN_JOINTINPARENT),
            ):
                raise RobotSpecError(
                    f"actuator {m.actuator(a).name!r} has transmission type "
                    f"{int(m.actuator_trntype[a])}, not a joint; pass joint_names instead."
                )
            joints.append(int(m.actuator_trnid[a, 0]))
    else:
        joints = [lookup(mujoco.mjtObj.mjOBJ_JOINT, j) for j in joint_names]
    one_dof = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    for j in joints:
        if int(m.jnt_type[j]) not in one_dof:
            raise RobotSpecError(
                f"joint {m.joint(j).name!r} is not a hinge or slide joint "
                f"(type {int(m.jnt_type[j])}); actuated joints must have 1 dof."
            )
    for s in ee_sites:
        lookup(mujoco.mjtObj.mjOBJ_SITE, s)
    body, qadr, dadr = _floating_base(m)
    return RobotSpec(
        name=name if name is not None else m.names[: m.names.index(b"\0")].decode(),
        nq=int(m.nq),
        nv=int(m.nv),
        actuated_qpos_index=tuple(int(m.jnt_qposadr[j]) for j in joints),
        actuated_qvel_index=tuple(int(m.jnt_dofadr[j]) for j in joints),
        ee_sites=tuple(ee_sites),
        actuated_joints=tuple(m.joint(j).name for j in joints),
        base_body=m.body(body).name,
        base_qpos_adr=qadr,
        base_dof_adr=dadr,
        model_path=model_path,
    )
