"""Digit v3 with a 4-hinge "third arm" attached to the base as its last child.

Such a model is Digit v3 (``digit-v3.xml``) plus four hinge joints in a chain below
``torso/base``. Because MuJoCo lays out ``qpos`` / ``qvel`` in depth-first body order, the arm's
joints come last: qpos addresses 61..64 and dof addresses 54..57 (``nq = 65``, ``nv = 58``).
The 24 actuated joints are Digit's 20 followed by the arm's 4. :func:`build_mjspec` builds the
model with ``mujoco.MjSpec``; ``tests/robots/test_robots.py`` checks these constants against it.
"""

from __future__ import annotations

import os

from trajopt_loader.robots import digit_v3
from trajopt_loader.robots.spec import RobotSpec

NQ = digit_v3.NQ + 4
NV = digit_v3.NV + 4
ARM_JOINTS = ("third-arm/joint-1", "third-arm/joint-2", "third-arm/joint-3", "third-arm/joint-4")
ACTUATED_JOINTS = digit_v3.ACTUATED_JOINTS + ARM_JOINTS
QPOS_INDEX = digit_v3.QPOS_INDEX + (61, 62, 63, 64)
QVEL_INDEX = digit_v3.QVEL_INDEX + (54, 55, 56, 57)
EE_SITES = digit_v3.EE_SITES + ("third-arm/tip",)
_AXES = ((0, 0, 1), (0, 1, 0), (0, 1, 0), (1, 0, 0))

SPEC = RobotSpec(
    name="digit_v3_thirdarm",
    nq=NQ,
    nv=NV,
    actuated_qpos_index=QPOS_INDEX,
    actuated_qvel_index=QVEL_INDEX,
    ee_sites=EE_SITES,
    actuated_joints=ACTUATED_JOINTS,
    base_body=digit_v3.ROOT_BODY,
    base_qpos_adr=0,
    base_dof_adr=0,
    model_path=None,
)


spec = SPEC.with_model_path  # spec(model_path) -> RobotSpec; see RobotSpec.with_model_path


def build_mjspec(digit_model_path: str | os.PathLike):
    """Digit v3 plus the third arm, as a ``mujoco.MjSpec`` (call ``.compile()`` for an MjModel).

    Args:
      digit_model_path: path of ``digit-v3.xml`` (meshes resolved relative to it).

    Returns:
      ``mujoco.MjSpec``: 4 capsule links (0.15 m, 0.5 kg each) in a chain under ``torso/base``,
      hinge joints :data:`ARM_JOINTS` (axes z, y, y, x), one motor per joint (same names), and
      a site ``third-arm/tip`` at the end of the last link.

    Raises:
      FileNotFoundError: if ``digit_model_path`` does not exist.
    """
    import mujoco

    path = os.fspath(digit_model_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Digit v3 model {path!r} does not exist; pass the path of {digit_v3.MODEL_FILENAME}."
        )
    s = mujoco.MjSpec.from_file(path)
    parent = s.body(digit_v3.ROOT_BODY)
    pos = (0.0, 0.0, 0.45)  # above the torso, clear of Digit's own links
    for i, (joint, axis) in enumerate(zip(ARM_JOINTS, _AXES, strict=True)):
        body = parent.add_body(name=f"third-arm/link-{i + 1}", pos=pos)
        body.add_joint(name=joint, type=mujoco.mjtJoint.mjJNT_HINGE, axis=axis, range=(-2.0, 2.0))
        body.add_geom(
            type=mujoco.mjtGeom.mjGEOM_CAPSULE,
            fromto=(0, 0, 0, 0, 0, 0.15),
            size=(0.02, 0, 0),
            mass=0.5,
            contype=0,
            conaffinity=0,
        )
        parent, pos = body, (0.0, 0.0, 0.15)
    parent.add_site(name="third-arm/tip", pos=(0.0, 0.0, 0.15))
    for joint in ARM_JOINTS:
        s.add_actuator(
            name=joint, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT, gear=(1, 0, 0, 0, 0, 0)
        )
    return s
