"""Agility Robotics Digit v3 constants (model: ``digit-v3.xml`` from osudrl/roadrunner, MIT).

Layout (MuJoCo model, base = 3 world-axis slides + 1 ball joint on ``torso/base``):
``qpos [61] = [base pos (3, m, world), base quat (4), joints...]``,
``qvel [54] = [base lin vel (3), base ang vel (3), joint dofs...]``. The 20 actuated joints, in
actuator order, sit at the qpos / dof addresses below (they differ because the ball joint and the
passive closed-loop joints are not 1 number each in both vectors). ``tests/robots/test_robots.py``
checks every constant against ``spec_from_mjcf`` on the model.

Usage::

    from trajopt_loader.robots import digit_v3
    spec = digit_v3.spec("/path/to/digit-v3.xml")   # or digit_v3.SPEC (model_path=None)
"""

from __future__ import annotations

from trajopt_loader.robots.spec import RobotSpec

MODEL_FILENAME = "digit-v3.xml"
ROOT_BODY = "torso/base"
NQ = 61
NV = 54

ACTUATED_JOINTS = (
    "left-leg/hip-roll",
    "left-leg/hip-yaw",
    "left-leg/hip-pitch",
    "left-leg/knee",
    "left-leg/toe-a",
    "left-leg/toe-b",
    "left-arm/shoulder-roll",
    "left-arm/shoulder-pitch",
    "left-arm/shoulder-yaw",
    "left-arm/elbow",
    "right-leg/hip-roll",
    "right-leg/hip-yaw",
    "right-leg/hip-pitch",
    "right-leg/knee",
    "right-leg/toe-a",
    "right-leg/toe-b",
    "right-arm/shoulder-roll",
    "right-arm/shoulder-pitch",
    "right-arm/shoulder-yaw",
    "right-arm/elbow",
)
QPOS_INDEX = (7, 8, 9, 14, 18, 23, 30, 31, 32, 33, 34, 35, 36, 41, 45, 50, 57, 58, 59, 60)
QVEL_INDEX = (6, 7, 8, 12, 16, 20, 26, 27, 28, 29, 30, 31, 32, 36, 40, 44, 50, 51, 52, 53)
EE_SITES = ("left-hand", "right-hand", "left-foot-mid", "right-foot-mid")
IMU_SITE = "torso/base/imu"

SPEC = RobotSpec(
    name="digit_v3",
    nq=NQ,
    nv=NV,
    actuated_qpos_index=QPOS_INDEX,
    actuated_qvel_index=QVEL_INDEX,
    ee_sites=EE_SITES,
    actuated_joints=ACTUATED_JOINTS,
    base_body=ROOT_BODY,
    base_qpos_adr=0,
    base_dof_adr=0,
    model_path=None,
)


spec = SPEC.with_model_path  # spec(model_path) -> RobotSpec; see RobotSpec.with_model_path
