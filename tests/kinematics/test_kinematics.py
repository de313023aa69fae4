"""Tests of trajopt_loader.kinematics against MuJoCo, scipy and hand-computed oracles."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from conftest import SHARED_DATA
from scipy.spatial.transform import Rotation, Slerp

from trajopt_loader import kinematics as K
from trajopt_loader.conventions import MUJOCO, PINOCCHIO, Convention
from trajopt_loader.errors import (
    ConventionError,
    ExportError,
    MissingKeyError,
    ModelError,
    ModelNotFoundError,
)

DATA = SHARED_DATA
CASSIE_XML = DATA / "cassie" / "cassie.xml"
TRAJOPT = DATA / "cassie" / "trajopt"


@pytest.fixture(scope="module")
def cassie():
    return K.load_kinematics_model(str(CASSIE_XML))


def free_hinge_model() -> mujoco.MjModel:
    """free base -> hinge A -> ball -> hinges B, C, D: nq = 15, nv = 13 (built with MjSpec)."""
    spec = mujoco.MjSpec()
    body = spec.worldbody.add_body(name="base", pos=[0, 0, 1])
    body.add_freejoint(name="root")
    body.add_geom(size=[0.1, 0, 0])
    for name, kind in (
        ("A", "hinge"),
        ("ball", "ball"),
        ("B", "hinge"),
        ("C", "hinge"),
        ("D", "hinge"),
    ):
        body = body.add_body(name=f"link_{name}", pos=[0.1, 0, 0])
        jtype = mujoco.mjtJoint.mjJNT_BALL if kind == "ball" else mujoco.mjtJoint.mjJNT_HINGE
        body.add_joint(name=name, type=jtype, axis=[0, 1, 0])
        body.add_geom(size=[0.05, 0, 0])
    return spec.compile()


def integrate(model, q0, qvel, dt, steps):
    """Positions under constant MuJoCo-convention qvel, by mj_integratePos (the oracle)."""
    out = np.empty((steps, model.nq))
    out[0] = q0
    for t in range(1, steps):
        out[t] = out[t - 1]
        mujoco.mj_integratePos(model, out[t], qvel, dt)
    return out


def random_state(model, rng):
    q = model.qpos0.copy()
    q[3:7] = Rotation.random(random_state=rng).as_quat(scalar_first=True)
    return q


def test_load_kinematics_model_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="nope.xml"):
        K.load_kinematics_model(str(tmp_path / "nope.xml"))
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body><joint type='bogus'/></body></worldbody></mujoco>")
    with pytest.raises(ModelError, match="bad.xml"):
        K.load_kinematics_model(str(bad))


def test_load_kinematics_model_keeps_kinematics(cassie):
    full = mujoco.MjModel.from_xml_path(str(CASSIE_XML))
    assert full.opt.solver == mujoco.mjtSolver.mjSOL_PGS and full.nmesh > 0
    assert (cassie.nq, cassie.nv, cassie.nsite) == (full.nq, full.nv, full.nsite)
    np.testing.assert_array_equal(cassie.jnt_qposadr, full.jnt_qposadr)
    np.testing.assert_array_equal(cassie.jnt_dofadr, full.jnt_dofadr)
    assert cassie.opt.solver == mujoco.mjtSolver.mjSOL_NEWTON and cassie.nmesh == 0
    assert not cassie.geom_contype.any() and not cassie.geom_conaffinity.any()
    qpos = np.load(TRAJOPT / "agility_reference" / "traj_0.npz")["qpos"][800]
    a, b = mujoco.MjData(full), mujoco.MjData(cassie)
    for model, data in ((full, a), (cassie, b)):
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
    np.testing.assert_allclose(b.xpos, a.xpos, atol=1e-12)
    np.testing.assert_allclose(b.site_xpos, a.site_xpos, atol=1e-12)


def test_differentiate_pos_free_joint_convention():
    """mj_differentiatePos / mj_integratePos: free joint [v_world, omega_body]."""
    model = free_hinge_model()
    q0 = model.qpos0.copy()
    yaw = Rotation.from_euler("z", 90, degrees=True)
    q0[3:7] = yaw.as_quat(scalar_first=True)
    vel = np.zeros(model.nv)
    vel[0], vel[3] = 1.0, 0.2  # world +x; 0.2 rad about the BODY x axis (world +y after the yaw)
    q1 = q0.copy()
    mujoco.mj_integratePos(model, q1, vel, 1.0)
    np.testing.assert_allclose(q1[:3], q0[:3] + [1, 0, 0], atol=1e-12)
    expected = yaw * Rotation.from_rotvec([0.2, 0, 0])
    assert Rotation.from_quat(q1[3:7], scalar_first=True).approx_equal(expected, atol=1e-12)
    back = np.zeros(model.nv)
    mujoco.mj_differentiatePos(model, back, 1.0, q0, q1)
    np.testing.assert_allclose(back, vel, atol=1e-12)


@pytest.mark.parametrize("which", ["free_hinge", "cassie"])
def test_qvel_from_qpos_constant_twist_exact(which, cassie):
    rng = np.random.default_rng(1)
    model = free_hinge_model() if which == "free_hinge" else cassie
    vel = rng.normal(size=model.nv)
    qpos = integrate(model, random_state(model, rng), vel, 0.01, 40)
    derived = K.qvel_from_qpos(model, qpos, 0.01, MUJOCO)
    assert derived.shape == (40, model.nv)
    np.testing.assert_allclose(derived, np.broadcast_to(vel, derived.shape), atol=1e-9)


def test_qvel_pinocchio_round_trip(cassie):
    rng = np.random.default_rng(2)
    vel = rng.normal(size=cassie.nv)
    qpos_mj = integrate(cassie, random_state(cassie, rng), vel, 0.01, 30)
    qpos_pin = K.qpos_from_mujoco(cassie, qpos_mj, PINOCCHIO)
    np.testing.assert_array_equal(qpos_pin[:, 3:7], qpos_mj[:, [4, 5, 6, 3]])  # xyzw
    np.testing.assert_array_equal(K.qpos_to_mujoco(cassie, qpos_pin, PINOCCHIO), qpos_mj)
    pin = K.qvel_from_qpos(cassie, qpos_pin, 0.01, PINOCCHIO)
    rot = Rotation.from_quat(qpos_pin[:, 3:7])  # scipy's own order is xyzw, like Pinocchio's
    np.testing.assert_allclose(
        pin[:, 0:3], rot.apply(np.tile(vel[:3], (30, 1)), inverse=True), atol=1e-9
    )
    np.testing.assert_allclose(pin[:, 3:], np.broadcast_to(vel[3:], (30, cassie.nv - 3)), atol=1e-9)
    np.testing.assert_allclose(
        K.qvel_to_mujoco(cassie, pin, qpos_mj, PINOCCHIO),
        np.broadcast_to(vel, pin.shape),
        atol=1e-9,
    )
    # conventions by name: the same results
    np.testing.assert_array_equal(K.qpos_from_mujoco(cassie, qpos_mj, "Crocoddyl"), qpos_pin)
    np.testing.assert_array_equal(
        K.qvel_to_mujoco(cassie, pin, qpos_mj, "pinocchio"),
        K.qvel_to_mujoco(cassie, pin, qpos_mj, PINOCCHIO),
    )


def test_base_velocity_frames_hand_oracle(cassie):
    """Velocity frames: base yawed +90 deg, world linear velocity (1, 0, 0) is (0, -1, 0) in the
    body frame; body angular velocity (1, 0, 0) is (0, 1, 0) in the world frame."""
    qpos = cassie.qpos0.copy()
    qpos[3:7] = [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]  # wxyz, +90 deg about z
    qvel = np.zeros(cassie.nv)
    qvel[0], qvel[3] = 1.0, 1.0
    pin = K.qvel_from_mujoco(cassie, qvel, qpos, PINOCCHIO)
    np.testing.assert_allclose(pin[:6], [0, -1, 0, 1, 0, 0], atol=1e-12)
    world = K.qvel_from_mujoco(cassie, qvel, qpos, Convention("wxyz", "world", "world"))
    np.testing.assert_allclose(world[:6], [1, 0, 0, 0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(K.qvel_to_mujoco(cassie, pin, qpos, PINOCCHIO), qvel, atol=1e-12)
    np.testing.assert_array_equal(pin[6:], qvel[6:])


def test_qvel_pinocchio_circle_walk_hand_oracle():
    """Constant body twist (Pinocchio): forward 0.5 m/s while yawing 0.8 rad/s -> a circle.
    A symmetric chord is parallel to the tangent, so interior frames give exactly
    v_body = (v sin(w dt) / (w dt), 0, 0), omega = (0, 0, w)."""
    model, v, w, dt = free_hinge_model(), 0.5, 0.8, 0.05
    t = np.arange(60) * dt
    qpos = np.tile(model.qpos0, (60, 1))
    qpos[:, 0], qpos[:, 1] = v / w * np.sin(w * t), v / w * (1 - np.cos(w * t))
    qpos[:, 3:7] = Rotation.from_euler("z", w * t[:, None]).as_quat()  # xyzw
    derived = K.qvel_from_qpos(model, qpos, dt, PINOCCHIO)
    expected = np.zeros(model.nv)
    expected[0], expected[5] = v * np.sin(w * dt) / (w * dt), w
    np.testing.assert_allclose(derived[1:-1], np.broadcast_to(expected, (58, model.nv)), atol=1e-12)


def test_qvel_matches_recorded_cassie_qvel(cassie):
    """traj_0 records qvel at 2 kHz. It is not an exact finite difference of the stored qpos
    (even the best-aligned one, the backward difference, is off by a median 0.0036 rad/s), so the
    central difference is held to ~2x its observed error (median 0.0049 rad/s over joints,
    ~0.4 % of their 1.2 rad/s RMS speed). A wrong dof address or dt errs by ~the speed itself."""
    traj = np.load(TRAJOPT / "agility_reference" / "traj_0.npz")
    derived = K.qvel_from_qpos(cassie, traj["qpos"], float(traj["dt"]), MUJOCO)
    recorded = traj["qvel"]
    joints, base = np.s_[:, 6:], np.s_[:, :6]
    err = np.abs(derived - recorded)
    assert np.median(err[joints]) < 0.01
    assert np.percentile(err[joints], 99) < 0.1  # impacts: velocity jumps within one frame
    assert np.median(err[base]) < 0.015
    scale = (derived[joints] * recorded[joints]).sum() / (recorded[joints] ** 2).sum()
    assert abs(scale - 1.0) < 0.005
    assert np.corrcoef(derived[joints].ravel(), recorded[joints].ravel())[0, 1] > 0.9995


@pytest.mark.parametrize("index", [0, 5, 20])
def test_qvel_at_dof_address_matches_motor_vel(cassie, index):
    """qpos vs qvel addresses on real data: aslip motor_vel[t] is the backward difference of the
    motor joint, so the central difference at the joint's DOF address equals (motor_vel[t] +
    motor_vel[t+1]) / 2; at the qpos address (7 slots later in this model) it does not."""
    traj = np.load(TRAJOPT / "aslip_walk" / f"traj_{index}.npz")
    derived = K.qvel_from_qpos(cassie, traj["qpos"], float(traj["dt"]), MUJOCO)
    joints = cassie.actuator_trnid[:, 0]
    dof, qadr = cassie.jnt_dofadr[joints], cassie.jnt_qposadr[joints]
    assert (qadr != dof).all()
    mv = traj["motor_vel"]
    expected = (mv[1:-1] + mv[2:]) / 2
    scale = np.abs(mv).max()
    assert np.abs(derived[1:-1, dof] - expected).max() < 0.02 * scale
    ok = qadr < cassie.nv
    assert np.median(np.abs(derived[1:-1, qadr[ok]] - expected[:, ok])) > 0.05 * scale


def test_velocity_lands_at_dof_address():
    model = free_hinge_model()
    jid = {n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in "BD"}
    qadr_b, dof_b = model.jnt_qposadr[jid["B"]], model.jnt_dofadr[jid["B"]]
    assert (model.nq, model.nv, qadr_b, dof_b) == (15, 13, 12, 10)
    t = np.arange(20) * 0.01
    qpos = np.tile(model.qpos0, (20, 1))
    qpos[:, qadr_b] = 0.3 + 2.0 * t
    qpos[:, model.jnt_qposadr[jid["D"]]] = -0.5 * t
    derived = K.qvel_from_qpos(model, qpos, 0.01, MUJOCO)
    expected = np.zeros((20, model.nv))
    expected[:, dof_b], expected[:, model.jnt_dofadr[jid["D"]]] = 2.0, -0.5
    np.testing.assert_allclose(derived, expected, atol=1e-9)
    assert np.allclose(derived[:, qadr_b], -0.5)  # the qpos address holds D's velocity


@pytest.mark.parametrize(
    "length,dt,new_dt",
    [
        (32, 0.0248, 0.01),
        (32, 0.0248, 0.0124),
        (1682, 0.0005, 0.002),
        (5, 0.1, 0.3),
        (1, 0.1, 0.02),
        (10, 0.03, 0.01),
    ],
)
def test_resample_grid_and_linear(length, dt, new_dt):
    i, alpha = K.resample_grid(length, dt, new_dt)
    count = int(np.floor(round((length - 1) * dt / new_dt, 9))) + 1
    assert i.shape == alpha.shape == (count,)
    np.testing.assert_allclose(i + alpha, np.arange(count) * new_dt / dt, atol=1e-9)
    x = np.random.default_rng(3).normal(size=(length, 2, 3))
    times, new_times = np.arange(length) * dt, np.arange(count) * new_dt
    out = K.resample_linear(x, dt, new_dt)
    for a in range(2):
        for b in range(3):
            np.testing.assert_allclose(
                out[:, a, b], np.interp(new_times, times, x[:, a, b]), atol=1e-12
            )
    steps = K.resample_linear(np.arange(length), dt, new_dt)
    np.testing.assert_array_equal(steps, i)


def test_resample_qpos_slerp_unit_norm_and_coinciding_frames():
    model, rng = free_hinge_model(), np.random.default_rng(4)
    qpos = np.tile(model.qpos0, (12, 1))
    rots = Rotation.random(12, random_state=rng)
    qpos[:, 3:7] = rots.as_quat(scalar_first=True)
    qpos[:, [0, 1, 2, 7, 12, 13, 14]] = rng.normal(size=(12, 7))
    ball = Rotation.random(12, random_state=rng).as_quat(scalar_first=True)
    qpos[:, 8:12] = ball
    up = K.resample_qpos(model, qpos, 0.03, 0.01, MUJOCO)
    assert up.shape == (34, 15)
    np.testing.assert_array_equal(up[::3], qpos)  # coinciding times: the frames themselves
    np.testing.assert_allclose(np.linalg.norm(up[:, 3:7], axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(up[:, 8:12], axis=1), 1.0, atol=1e-12)
    new_t = np.arange(34) * 0.01
    oracle = Slerp(np.arange(12) * 0.03, rots)(np.minimum(new_t, 11 * 0.03))
    assert Rotation.from_quat(up[:, 3:7], scalar_first=True).approx_equal(oracle, atol=1e-9).all()
    lin = [0, 1, 2, 7, 12, 13, 14]
    np.testing.assert_allclose(up[:, lin], K.resample_linear(qpos[:, lin], 0.03, 0.01), atol=1e-12)
    pin = K.resample_qpos(model, K.qpos_from_mujoco(model, qpos, PINOCCHIO), 0.03, 0.01, PINOCCHIO)
    np.testing.assert_allclose(pin, K.qpos_from_mujoco(model, up, PINOCCHIO), atol=1e-15)
    down = K.resample_qpos(model, qpos, 0.03, 0.06, MUJOCO)
    np.testing.assert_array_equal(down, qpos[::2])


def test_convention_needs_floating_base():
    spec = mujoco.MjSpec()
    body = spec.worldbody.add_body(name="arm")
    body.add_joint(name="h", type=mujoco.mjtJoint.mjJNT_HINGE)
    body.add_geom(size=[0.1, 0, 0])
    fixed = spec.compile()
    assert K.qvel_from_qpos(fixed, np.zeros((3, 1)), 0.1, MUJOCO).shape == (3, 1)
    with pytest.raises(ConventionError, match="no.*floating base|none at qpos"):
        K.qvel_from_qpos(fixed, np.zeros((3, 1)), 0.1, PINOCCHIO)
    with pytest.raises(ModelError, match="nq=1"):
        K.qvel_from_qpos(fixed, np.zeros((3, 2)), 0.1, MUJOCO)
    with pytest.raises(ValueError, match="dt"):
        K.qvel_from_qpos(fixed, np.zeros((3, 1)), 0.0, MUJOCO)


def test_export_preprocess_aslip_end_to_end(cassie):
    path = TRAJOPT / "aslip_walk" / "traj_7.npz"
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    assert "qvel" not in arrays
    dt = float(arrays["dt"])
    pre = K.make_export_preprocess(
        str(CASSIE_XML), convention="mujoco", derive_qvel=True, ee_sites=("imu",)
    )
    out, out_dt, prov = pre(arrays, dt, path.name)
    assert out_dt == dt and out["qvel"].shape == (32, 32) and out["ee_pos"].shape == (32, 1, 3)
    np.testing.assert_allclose(out["qvel"], K.qvel_from_qpos(cassie, arrays["qpos"], dt, MUJOCO))
    full = mujoco.MjModel.from_xml_path(str(CASSIE_XML))
    data = mujoco.MjData(full)
    data.qpos[:] = arrays["qpos"][9]
    mujoco.mj_kinematics(full, data)
    np.testing.assert_allclose(out["ee_pos"][9, 0], data.site_xpos[0], atol=1e-12)
    assert prov == {
        "model": "cassie.xml",
        "convention": "mujoco",
        "qvel": K.QVEL_METHOD,
        "ee_pos": "mj_kinematics site_xpos (world frame, m)",
        "ee_sites": ["imu"],
    }
    assert set(out) == set(arrays) | {"qvel", "ee_pos"}

    pre = K.make_export_preprocess(
        str(CASSIE_XML), convention="mujoco", derive_qvel=True, resample_dt=0.01
    )
    out, out_dt, prov = pre(arrays, dt, path.name)
    count = int(np.floor(31 * dt / 0.01)) + 1
    assert out_dt == 0.01 and float(out["dt"]) == 0.01 and prov["resampled_from_dt"] == dt
    assert {k: v.shape[0] for k, v in out.items() if v.ndim} == {
        k: count for k, v in arrays.items() if v.ndim
    } | {"qvel": count}
    np.testing.assert_allclose(out["time"], np.arange(count) * 0.01 + arrays["time"][0], atol=1e-9)
    np.testing.assert_allclose(out["qvel"], K.qvel_from_qpos(cassie, out["qpos"], 0.01, MUJOCO))
    assert out["speed"] == arrays["speed"]


def test_export_preprocess_errors(tmp_path):
    path = TRAJOPT / "agility_reference" / "traj_2.npz"
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    pre = K.make_export_preprocess(str(CASSIE_XML), convention="mujoco", derive_qvel=True)
    kept, _, prov = pre(arrays, 0.03, "traj_2.npz")  # recorded qvel is kept, never replaced
    np.testing.assert_array_equal(kept["qvel"], arrays["qvel"])
    assert prov["qvel"] == "recorded"
    digit = DATA / "digit_v3" / "digit-v3.xml"
    pre = K.make_export_preprocess(str(digit), convention="mujoco")
    with pytest.raises(ExportError, match=r"traj_2.npz.*35.*nq=61"):
        pre(arrays, 0.03, "traj_2.npz")
    pre = K.make_export_preprocess(str(CASSIE_XML), convention="mujoco", resample_dt=0.01)
    with pytest.raises(ExportError, match="traj_2.npz.*'action'.*27"):
        pre({**arrays, "action": arrays["action"][:-1]}, 0.03, "traj_2.npz")
    zero = arrays["qpos"].copy()
    zero[5, 3:7] = 0.0
    with pytest.raises(ExportError, match=r"traj_2.npz.*row 5.*norm 0.*columns 3:7"):
        pre({**arrays, "qpos": zero}, 0.03, "traj_2.npz")
    with pytest.raises(ExportError, match="no 'qpos'"):
        pre({"qvel": arrays["qvel"]}, 0.03, "traj_2.npz")
    with pytest.raises(MissingKeyError, match="left-toe.*available sites.*imu"):
        K.make_export_preprocess(str(CASSIE_XML), convention="mujoco", ee_sites=("left-toe",))
    with pytest.raises(ModelNotFoundError):
        K.make_export_preprocess(str(tmp_path / "x.xml"), convention="mujoco")
