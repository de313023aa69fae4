"""Robot specs: hard-coded constants vs the MuJoCo models, and spec_from_mjcf (qpos vs qvel
addresses)."""

from __future__ import annotations

import subprocess
import sys

import mujoco
import numpy as np
import pytest
from conftest import SHARED_DATA

from trajopt_loader.errors import ModelNotFoundError, RobotSpecError
from trajopt_loader.robots import (
    ROBOTS,
    RobotSpec,
    cassie,
    digit_v3,
    digit_v3_thirdarm,
    get_spec,
    spec_from_mjcf,
)

DATA = SHARED_DATA
DIGIT_XML = DATA / "digit_v3" / "digit-v3.xml"
CASSIE_XML = DATA / "cassie" / "cassie.xml"
# As listed in shared/data/README.md (independent of the robot modules).
README_DIGIT_QPOS = [7, 8, 9, 14, 18, 23, 30, 31, 32, 33, 34, 35, 36, 41, 45, 50, 57, 58, 59, 60]
README_DIGIT_DOF = [6, 7, 8, 12, 16, 20, 26, 27, 28, 29, 30, 31, 32, 36, 40, 44, 50, 51, 52, 53]


@pytest.fixture(scope="module")
def thirdarm_model():
    return digit_v3_thirdarm.build_mjspec(DIGIT_XML).compile()


def test_digit_constants_equal_model():
    derived = spec_from_mjcf(DIGIT_XML, ee_sites=digit_v3.EE_SITES, name="digit_v3")
    assert derived == digit_v3.spec(DIGIT_XML)
    assert list(derived.actuated_qpos_index) == README_DIGIT_QPOS
    assert list(derived.actuated_qvel_index) == README_DIGIT_DOF
    assert (derived.nq, derived.nv, derived.n_act, derived.base_body) == (61, 54, 20, "torso/base")


def test_cassie_constants_equal_model():
    assert spec_from_mjcf(CASSIE_XML, name="cassie") == cassie.spec(CASSIE_XML)
    m = mujoco.MjModel.from_xml_path(str(CASSIE_XML))
    assert cassie.ACTUATED_JOINTS == tuple(
        m.joint(m.actuator_trnid[a, 0]).name for a in range(m.nu)
    )


def test_thirdarm_constants_equal_mjspec_model(thirdarm_model):
    m = thirdarm_model
    assert (m.nq, m.nv, m.nu) == (65, 58, 24)
    derived = spec_from_mjcf(m, ee_sites=digit_v3_thirdarm.EE_SITES, name="digit_v3_thirdarm")
    assert derived == digit_v3_thirdarm.SPEC
    assert derived.actuated_qpos_index[-4:] == (61, 62, 63, 64)
    assert derived.actuated_qvel_index[-4:] == (54, 55, 56, 57)
    assert derived.actuated_qpos_index[:20] == tuple(README_DIGIT_QPOS)


@pytest.mark.parametrize("robot", ["digit_v3", "cassie", "digit_v3_thirdarm"])
def test_indices_read_joint_state_like_mujoco(robot, thirdarm_model):
    """qpos vs qvel addresses: MuJoCo's own per-joint views (data.joint(name).qpos / .qvel) equal
    qpos[qpos index] and qvel[dof index]; reading velocities at the qpos index would be wrong."""
    m = {
        "digit_v3": lambda: mujoco.MjModel.from_xml_path(str(DIGIT_XML)),
        "cassie": lambda: mujoco.MjModel.from_xml_path(str(CASSIE_XML)),
        "digit_v3_thirdarm": lambda: thirdarm_model,
    }[robot]()
    spec = ROBOTS[robot].SPEC
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    d.qpos[:] = rng.normal(size=m.nq)
    d.qvel[:] = rng.normal(size=m.nv)
    q_mj = [d.joint(j).qpos[0] for j in spec.actuated_joints]
    v_mj = [d.joint(j).qvel[0] for j in spec.actuated_joints]
    np.testing.assert_array_equal(d.qpos[list(spec.actuated_qpos_index)], q_mj)
    np.testing.assert_array_equal(d.qvel[list(spec.actuated_qvel_index)], v_mj)
    assert spec.actuated_qpos_index != spec.actuated_qvel_index  # the two addresses do differ


def test_free_joint_and_ball_before_hinge():
    """qpos vs qvel addresses on a free-joint model: a ball joint before the hinge shifts qpos by 4
    but dofs by 3."""
    s = mujoco.MjSpec()
    base = s.worldbody.add_body(name="base", pos=(0, 0, 1))
    base.add_freejoint(name="root")
    base.add_geom(size=(0.1, 0, 0))
    link = base.add_body(name="link", pos=(0, 0, 0.2))
    link.add_joint(name="ball", type=mujoco.mjtJoint.mjJNT_BALL)
    link.add_geom(size=(0.05, 0, 0))
    tip = link.add_body(name="tip", pos=(0, 0, 0.2))
    tip.add_joint(name="hinge", type=mujoco.mjtJoint.mjJNT_HINGE, axis=(0, 1, 0))
    tip.add_geom(size=(0.05, 0, 0))
    tip.add_site(name="tip_site")
    s.add_actuator(name="motor", target="hinge", trntype=mujoco.mjtTrn.mjTRN_JOINT)
    spec = spec_from_mjcf(s, ee_sites=("tip_site",), name="toy")
    assert (spec.nq, spec.nv) == (12, 10)
    assert spec.actuated_qpos_index == (11,) and spec.actuated_qvel_index == (9,)
    assert (spec.base_body, spec.base_qpos_adr, spec.base_dof_adr) == ("base", 0, 0)
    with pytest.raises(RobotSpecError, match="'ball' is not a hinge or slide"):
        spec_from_mjcf(s, joint_names=("ball",))


def test_spec_from_mjcf_selections_and_errors():
    sub = spec_from_mjcf(DIGIT_XML, actuator_names=("right-leg/knee", "left-leg/knee"))
    assert sub.actuated_qpos_index == (41, 14) and sub.actuated_qvel_index == (36, 12)
    by_joint = spec_from_mjcf(CASSIE_XML, joint_names=("left-knee", "right-foot"))
    assert by_joint.actuated_qpos_index == (14, 34) and by_joint.actuated_qvel_index == (12, 31)
    with pytest.raises(RobotSpecError, match="site 'left-toe' is not in the model"):
        spec_from_mjcf(DIGIT_XML, ee_sites=("left-toe",))
    with pytest.raises(RobotSpecError, match="actuator 'nope'"):
        spec_from_mjcf(CASSIE_XML, actuator_names=("nope",))
    with pytest.raises(RobotSpecError, match="not both"):
        spec_from_mjcf(CASSIE_XML, actuator_names=(), joint_names=())
    with pytest.raises(ModelNotFoundError, match="no MuJoCo model at .*no-such-robot.xml"):
        spec_from_mjcf(DATA / "no-such-robot.xml")
    fixed = mujoco.MjSpec()
    arm = fixed.worldbody.add_body(name="arm")
    arm.add_joint(name="j", type=mujoco.mjtJoint.mjJNT_HINGE)
    arm.add_geom(size=(0.1, 0, 0))
    with pytest.raises(RobotSpecError, match="floating base"):
        spec_from_mjcf(fixed)


def test_robot_spec_validation_and_registry():
    with pytest.raises(RobotSpecError, match="outside \\[0, 61\\)"):
        RobotSpec("bad", 61, 54, (7, 61), (6, 7))
    with pytest.raises(RobotSpecError, match="2 qpos indices but 1 qvel"):
        RobotSpec("bad", 61, 54, (7, 8), (6,))
    spec = get_spec("digit_v3", DIGIT_XML)
    assert spec.model_path == str(DIGIT_XML) and digit_v3.SPEC.model_path is None
    assert hash(spec) == hash(digit_v3.spec(str(DIGIT_XML)))  # hashable: a static jit argument
    assert (spec.base_quat_slice, spec.base_ang_vel_slice) == (slice(3, 7), slice(3, 6))
    with pytest.raises(RobotSpecError, match="robot 'atlas' is unknown"):
        get_spec("atlas")


@pytest.mark.slow
def test_import_opens_no_model_and_no_mujoco():
    code = (
        "import sys, trajopt_loader.robots as r; "
        "print('mujoco' in sys.modules, [s.model_path for s in map(r.get_spec, r.ROBOTS)])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False [None, None, None]"
