"""Agility Robotics Cassie constants (model: ``cassie.xml`` from osudrl/apex, MIT).

Layout (base = 3 world-axis slides + 1 ball joint on ``cassie-pelvis``):
``qpos [35] = [pelvis pos (3, m, world), pelvis quat (4), joints...]``,
``qvel [32] = [pelvis lin vel (3), pelvis ang vel (3), joint dofs...]``.
The 10 motors drive, in actuator order, the joints below (motor -> joint through each
actuator's joint transmission, ``actuator_trnid``); their qpos and dof addresses differ by one
after the ball joint and by more after each passive ball-jointed achilles rod.
``tests/robots/test_robots.py`` checks every constant against ``spec_from_mjcf`` on the model.

The model has no foot sites (only ``imu``), so :data:`EE_SITES` is empty: end-effector
references need data with an ``ee_pos`` key or a model with foot sites passed to
``spec_from_mjcf(..., ee_sites=...)``.
"""

from __future__ import annotations

from trajopt_loader.robots.spec import RobotSpec

MODEL_FILENAME = "cassie.xml"
ROOT_BODY = "cassie-pelvis"
NQ = 35
NV = 32

ACTUATED_JOINTS = (
    "left-hip-roll",
    "left-hip-yaw",
    "left-hip-pitch",
    "left-knee",
    "left-foot",
    "right-hip-roll",
    "right-hip-yaw",
    "right-hip-pitch",
    "right-knee",
    "right-foot",
)
QPOS_INDEX = (7, 8, 9, 14, 20, 21, 22, 23, 28, 34)
QVEL_INDEX = (6, 7, 8, 12, 18, 19, 20, 21, 25, 31)
EE_SITES: tuple[str, ...] = ()
IMU_SITE = "imu"

SPEC = RobotSpec(
    name="cassie",
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
