"""References (numpy core + grain transform) against MuJoCo itself and hand-computed cases:
quaternion order, velocity frames, qpos vs qvel addresses."""

from __future__ import annotations

import dataclasses
import pickle

import mujoco
import numpy as np
import pytest
from _mujoco_oracle import (
    DATA,
    MODELS,
    YAWS,
    mj_truth,
    model,
    quat,
    random_state,  # noqa: I001
    to_pinocchio,
    turn,
)
from scipy.spatial.transform import Rotation

from trajopt_loader import MUJOCO, PINOCCHIO
from trajopt_loader.errors import MissingKeyError, ReferenceInputError
from trajopt_loader.robots import cassie, digit_v3, digit_v3_thirdarm
from trajopt_loader.transforms.references import (
    EE_REF_KEYS,
    HEADING_REF_KEYS,
    REF_KEYS,
    compute_references,
)
from trajopt_loader.transforms.references_transform import BuildReferences


def refs_of(states, spec, conv=MUJOCO, **kw):
    qpos = np.stack([s[0] for s in states])[None]
    qvel = np.stack([s[1] for s in states])[None]
    return {k: v[0] for k, v in compute_references(qpos, qvel, spec, conv, **kw).items()}


@pytest.mark.parametrize("name", ["digit", "cassie"])
def test_base_rotation_matches_mju_quat2Mat(name):
    m, spec = model(name), MODELS[name][1]
    rng = np.random.default_rng(1)
    states = [random_state(m, rng) for _ in range(16)]
    origin = states[0][0].copy()
    origin[3:7] = quat(np.radians(-135.0), 0.3, -0.2)  # episode heading -135 deg
    refs = refs_of(states, spec, origin_qpos=origin[None], heading_frame_keys=True)
    turn_o = np.zeros(9)  # H(psi_o): MuJoCo's matrix of a pure yaw of -135 deg
    mujoco.mju_quat2Mat(turn_o, quat(np.radians(-135.0)))
    for (qpos, qvel), abs_rpy, rel_rpy in zip(
        states, refs["ref_base_local_ori"], refs["ref_base_heading_ori"], strict=True
    ):
        xmat = mj_truth(m, qpos, qvel, spec)["xmat"]
        for (roll, pitch, yaw), want in ((abs_rpy, xmat), (rel_rpy, turn_o.reshape(3, 3).T @ xmat)):
            got = np.zeros(9)
            mujoco.mju_quat2Mat(got, quat(yaw, pitch, roll))
            np.testing.assert_allclose(got.reshape(3, 3), want, atol=1e-12)


@pytest.mark.parametrize("name", ["digit", "cassie"])
@pytest.mark.parametrize("yaw", YAWS + (None,))
def test_body_velocities_match_mj_objectVelocity(name, yaw):
    m, spec = model(name), MODELS[name][1]
    rng = np.random.default_rng(2)
    states = [random_state(m, rng, yaw) for _ in range(6)]
    refs = refs_of(states, spec)
    for t, (qpos, qvel) in enumerate(states):
        truth = mj_truth(m, qpos, qvel, spec)
        np.testing.assert_allclose(refs["ref_base_robot_lin_vel"][t], truth["lin"], atol=1e-12)
        np.testing.assert_allclose(refs["ref_base_robot_ang_vel"][t], truth["ang"], atol=1e-12)
        # the known bug, rotating the body-frame angular velocity again, gives something else
        assert np.abs(truth["xmat"].T @ qvel[3:6] - truth["ang"]).max() > 1e-3


@pytest.mark.parametrize("yaw", YAWS)
def test_real_cassie_states_match_mujoco_and_are_yaw_invariant(yaw):
    m, spec = model("cassie"), cassie.SPEC
    d = np.load(DATA / "cassie" / "trajopt" / "agility_reference" / "traj_0.npz")
    qpos, qvel = turn(d["qpos"][::120], d["qvel"][::120], yaw)  # same motion, turned by `yaw`
    refs = refs_of(list(zip(qpos, qvel, strict=True)), spec, heading_frame_keys=True)
    for t in range(len(qpos)):
        truth = mj_truth(m, qpos[t], qvel[t], spec)
        np.testing.assert_allclose(refs["ref_base_robot_lin_vel"][t], truth["lin"], atol=1e-12)
        np.testing.assert_allclose(refs["ref_base_robot_ang_vel"][t], truth["ang"], atol=1e-12)
    unturned = refs_of(
        list(zip(d["qpos"][::120], d["qvel"][::120], strict=True)), spec, heading_frame_keys=True
    )
    invariant = (
        "ref_motor_joint_pos",
        "ref_motor_joint_vel",
        "ref_base_robot_lin_vel",
        "ref_base_robot_ang_vel",
        "ref_len",
    ) + HEADING_REF_KEYS
    for key in invariant:  # body and heading frames do not depend on the world yaw
        np.testing.assert_allclose(refs[key], unturned[key], atol=1e-9, err_msg=key)
    # world-frame keys turn with the world: positions by Rz(yaw), the yaw angle by yaw
    rz = Rotation.from_euler("z", yaw, degrees=True)
    np.testing.assert_allclose(refs["ref_base_local_pos"], qpos[:, 0:3], atol=0)
    np.testing.assert_allclose(
        refs["ref_base_local_trans"], rz.apply(unturned["ref_base_local_trans"]), atol=1e-9
    )
    dyaw = refs["ref_base_local_ori"][:, 2] - unturned["ref_base_local_ori"][:, 2] - np.radians(yaw)
    np.testing.assert_allclose(np.angle(np.exp(1j * dyaw)), 0.0, atol=1e-9)
    np.testing.assert_allclose(
        refs["ref_base_local_ori"][:, :2], unturned["ref_base_local_ori"][:, :2], atol=1e-9
    )
    assert refs["ref_base_heading_trans"][-1, 0] == pytest.approx(0.6207, abs=1e-3)  # walks forward


@pytest.mark.parametrize("yaw,yaw_o", [(0.0, 0.0), (90.0, 0.0), (170.0, -135.0), (-135.0, 90.0)])
def test_ee_positions_match_mj_kinematics_site_xpos(yaw, yaw_o):
    """ee from MuJoCo FK (site_xpos). ref_local_ee_pos = site_xpos (world); ref_base_local_ee_pos =
    sites relative to the base with the base yaw removed (MuJoCo FK of the same state at yaw 0);
    ref_ee_heading_pos = same at yaw - yaw_o (the episode's heading removed)."""
    m, spec = model("digit"), digit_v3.SPEC
    rng = np.random.default_rng(3)
    states, want_world, want_base, want_local = [], [], [], []
    for _ in range(4):
        tilt = rng.uniform(-0.4, 0.4, 2)
        qpos, qvel = random_state(m, rng)
        for deg, out in ((0.0, want_base), (yaw - yaw_o, want_local)):
            qpos[3:7] = quat(np.radians(deg), *tilt)
            truth = mj_truth(m, qpos, qvel, spec)
            out.append(truth["sites"] - truth["xpos"])
        qpos[3:7] = quat(np.radians(yaw), *tilt)
        want_world.append(mj_truth(m, qpos, qvel, spec)["sites"])
        states.append((qpos.copy(), qvel))
    ee_fn = lambda q, convention: np.stack(  # noqa: E731  FK oracle: MuJoCo site_xpos per row
        [[mj_truth(m, r, np.zeros(m.nv), spec)["sites"] for r in env] for env in q]
    )
    origin = states[0][0].copy()
    origin[3:7] = quat(np.radians(yaw_o), 0.2, 0.1)
    batch = {
        "qpos": np.stack([s[0] for s in states])[None],
        "valid": np.ones((1, 4), bool),
        "qvel": np.stack([s[1] for s in states])[None],
        "episode_origin_qpos": origin[None],
    }
    out = BuildReferences(
        None, spec, convention="mujoco", ee_fn=ee_fn, heading_frame_keys=True
    ).map(batch)
    np.testing.assert_allclose(out["ref_local_ee_pos"][0], want_world, atol=1e-12)
    np.testing.assert_allclose(out["ref_base_local_ee_pos"][0], want_base, atol=1e-9)
    np.testing.assert_allclose(out["ref_ee_heading_pos"][0], want_local, atol=1e-9)


def one_state(base_quat, conv, lin=(0, 0, 0), ang=(0, 0, 0)):
    qpos, qvel = np.zeros((1, 1, 35)), np.zeros((1, 1, 32))
    qpos[..., 3:7], qvel[..., 0:3], qvel[..., 3:6] = base_quat, lin, ang
    return {
        k: v[0, 0]
        for k, v in compute_references(qpos, qvel, cassie.SPEC, conv).items()
        if v.ndim > 1
    }


def test_identity_quaternion_order_comes_from_the_convention():
    assert not one_state((1, 0, 0, 0), MUJOCO)["ref_base_local_ori"].any()  # identity (w,x,y,z)
    assert not one_state((0, 0, 0, 1), PINOCCHIO)["ref_base_local_ori"].any()  # identity (x,y,z,w)
    wrong = one_state((1, 0, 0, 0), PINOCCHIO)["ref_base_local_ori"]  # read as xyzw: roll = pi
    assert abs(wrong[0]) == pytest.approx(np.pi)


def test_yaw_90_velocity_frames():
    refs = one_state(quat(np.pi / 2), MUJOCO, lin=(1, 0, 0), ang=(1, 0, 0))
    np.testing.assert_allclose(refs["ref_base_robot_ang_vel"], (1.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(refs["ref_base_robot_lin_vel"], (0.0, -1.0, 0.0), atol=1e-12)
    refs = one_state(quat(np.pi / 2)[[1, 2, 3, 0]], PINOCCHIO, lin=(1, 0, 0), ang=(1, 0, 0))
    np.testing.assert_allclose(refs["ref_base_robot_lin_vel"], (1.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(refs["ref_base_robot_ang_vel"], (1.0, 0.0, 0.0), atol=1e-12)


@pytest.mark.parametrize("name", ["digit", "cassie"])
def test_same_motion_in_both_conventions_gives_same_references(name):
    m, spec = model(name), MODELS[name][1]
    rng = np.random.default_rng(4)
    mj = [[random_state(m, rng, yaw) for _ in range(5)] for yaw in (None, 170.0)]
    pin = [[to_pinocchio(m, q, v, spec) for q, v in env] for env in mj]
    stack = lambda envs, i: np.stack([np.stack([s[i] for s in env]) for env in envs])  # noqa: E731
    a = compute_references(stack(mj, 0), stack(mj, 1), spec, MUJOCO, heading_frame_keys=True)
    b = compute_references(stack(pin, 0), stack(pin, 1), spec, "pinocchio", heading_frame_keys=True)
    mixed = compute_references(
        np.stack([stack(mj, 0)[0], stack(pin, 0)[1]]),
        np.stack([stack(mj, 1)[0], stack(pin, 1)[1]]),
        spec,
        ("MuJoCo", "crocoddyl"),
        convention_index=np.array([0, 1]),
        heading_frame_keys=True,
    )
    for key in REF_KEYS + HEADING_REF_KEYS:
        np.testing.assert_allclose(a[key], b[key], atol=1e-12, err_msg=key)
        np.testing.assert_allclose(mixed[key], a[key], atol=1e-12, err_msg=key)


def test_thirdarm_velocities_read_at_dof_address():
    m = digit_v3_thirdarm.build_mjspec(MODELS["digit"][0]).compile()
    d = mujoco.MjData(m)
    rng = np.random.default_rng(5)
    qpos, qvel = random_state(m, rng)
    refs = refs_of([(qpos, qvel)], digit_v3_thirdarm.SPEC)
    d.qpos[:], d.qvel[:] = qpos, qvel
    for k, joint in enumerate(digit_v3_thirdarm.ACTUATED_JOINTS):
        assert refs["ref_motor_joint_vel"][0, k] == d.joint(joint).qvel[0]
        assert refs["ref_motor_joint_pos"][0, k] == d.joint(joint).qpos[0]


def test_frames_hand_computed():
    """Origin at (1, 2, .5) heading 90 deg; step 0 at (1, 3, .5) heading 90; step 1 at (0, 3, .7)
    heading 180; one ee at (2, 3, .5) then (0, 4, .7); a second env checks the yaw wrap."""
    qpos, qvel = np.zeros((2, 2, 35)), np.zeros((2, 2, 32))
    qpos[0, :, 0:3] = (1, 3, 0.5), (0, 3, 0.7)
    qpos[0, :, 3:7] = quat(np.pi / 2), quat(np.pi)
    qpos[1, :, 3:7] = quat(np.radians(-170)), quat(np.radians(-170))
    origin = np.zeros((2, 35))
    origin[0, 0:7] = (1, 2, 0.5, *quat(np.pi / 2))
    origin[1, 3:7] = quat(np.radians(170))
    ee = np.zeros((2, 2, 1, 3))
    ee[0, :, 0] = (2, 3, 0.5), (0, 4, 0.7)
    r = compute_references(
        qpos, qvel, cassie.SPEC, "mujoco", origin_qpos=origin, ee_pos=ee, heading_frame_keys=True
    )
    # the predecessor's keys: world frame / world axes, absolute angles
    np.testing.assert_allclose(r["ref_base_local_pos"][0], [(1, 3, 0.5), (0, 3, 0.7)], atol=1e-12)
    np.testing.assert_allclose(r["ref_base_local_trans"][0], [(0, 1, 0), (-1, 1, 0.2)], atol=1e-12)
    np.testing.assert_allclose(r["ref_base_local_ori"][0, :, 2], (np.pi / 2, np.pi), atol=1e-12)
    np.testing.assert_allclose(r["ref_base_local_ori"][1, :, 2], np.radians(-170), atol=1e-12)
    np.testing.assert_allclose(
        r["ref_local_ee_pos"][0, :, 0], [(2, 3, 0.5), (0, 4, 0.7)], atol=1e-12
    )
    np.testing.assert_allclose(
        r["ref_base_local_ee_pos"][0, :, 0], [(0, -1, 0), (0, -1, 0)], atol=1e-12
    )
    # heading frames: window heading 90 deg, episode heading 90 deg (env 1: 170 deg)
    np.testing.assert_allclose(r["ref_base_heading_trans"][0], [(1, 0, 0), (1, 1, 0.2)], atol=1e-12)
    np.testing.assert_allclose(r["ref_base_heading_pos"][0], [(0, 0, 0), (0, 1, 0.2)], atol=1e-12)
    np.testing.assert_allclose(r["ref_base_heading_ori"][0, :, 2], (0, np.pi / 2), atol=1e-12)
    np.testing.assert_allclose(r["ref_base_heading_ori"][1, :, 2], np.radians(20), atol=1e-12)
    np.testing.assert_allclose(
        r["ref_ee_heading_pos"][0, :, 0], [(0, -1, 0), (1, 0, 0)], atol=1e-12
    )


def test_invalid_rows_hold_the_nearest_valid_row_and_ref_len_counts():
    rng = np.random.default_rng(6)
    qpos = np.stack(
        [np.stack([random_state(model("cassie"), rng)[0] for _ in range(6)]) for _ in range(3)]
    )
    qvel = rng.normal(size=(3, 6, 32))
    valid = np.ones((3, 6), bool)
    valid[0, 4:], valid[1, :2], valid[2] = False, False, False
    qpos[~valid] = 0.0  # padding rows: zero quaternions must not be read
    kw = {"heading_frame_keys": True}
    r = compute_references(qpos, qvel, cassie.SPEC, MUJOCO, valid=valid, **kw)
    full = compute_references(
        qpos[:1, [0, 1, 2, 3, 3, 3]], qvel[:1, [0, 1, 2, 3, 3, 3]], cassie.SPEC, MUJOCO, **kw
    )
    late = compute_references(
        qpos[1:2, [2, 2, 2, 3, 4, 5]], qvel[1:2, [2, 2, 2, 3, 4, 5]], cassie.SPEC, MUJOCO, **kw
    )
    np.testing.assert_array_equal(r["ref_len"], [4, 4, 0])
    for key in REF_KEYS[:-1] + HEADING_REF_KEYS:
        np.testing.assert_allclose(r[key][0], full[key][0], err_msg=key)
        np.testing.assert_allclose(r[key][1], late[key][0], err_msg=key)
        assert not r[key][2].any(), key


def test_bad_input_errors():
    qpos, qvel = np.zeros((2, 3, 35)), np.zeros((2, 3, 32))
    qpos[..., 3] = 1.0
    qpos[1, 2, 3:7] = 0.0
    with pytest.raises(ReferenceInputError, match="env row 1, step 2: base quaternion"):
        compute_references(qpos, qvel, cassie.SPEC, MUJOCO)
    with pytest.raises(
        ReferenceInputError, match=r"qpos has shape \(2, 3, 34\); expected \[\*, \*, 35\]"
    ):
        compute_references(qpos[..., :34], qvel, cassie.SPEC, MUJOCO)
    with pytest.raises(ReferenceInputError, match="3 conventions for 2 envs"):
        compute_references(qpos, qvel, cassie.SPEC, (MUJOCO,) * 3)
    with pytest.raises(ReferenceInputError, match="needs convention="):
        BuildReferences(None, cassie.SPEC)
    with pytest.raises(MissingKeyError, match="episode_origin_qpos"):
        BuildReferences(None, cassie.SPEC, convention=MUJOCO).map({"qpos": qpos, "qvel": qvel})
    with pytest.raises(MissingKeyError, match="no key 'qvel'"):
        BuildReferences(None, cassie.SPEC, convention=MUJOCO).map({"qpos": qpos})
    q61 = np.zeros((1, 1, 61))
    q61[..., 6] = 1.0
    batch = {"qpos": q61, "qvel": np.zeros((1, 1, 54)), "episode_origin_qpos": q61[0]}
    with pytest.raises(MissingKeyError, match="no end-effector positions"):
        BuildReferences(None, digit_v3.SPEC, convention=PINOCCHIO, require_ee=True).map(batch)
    with pytest.raises(ReferenceInputError, match=r"batch\['ee_pos'\] has shape \(1, 1, 13\)"):
        BuildReferences(None, digit_v3.SPEC, convention=PINOCCHIO).map(
            {**batch, "ee_pos": np.zeros((1, 1, 13))}
        )
    with pytest.raises(
        ReferenceInputError, match=r"ee_pos has shape \(1, 1, 5, 3\); expected \[1, 1, 4, 3\]"
    ):
        BuildReferences(None, digit_v3.SPEC, convention=PINOCCHIO).map(
            {**batch, "ee_pos": np.zeros((1, 1, 15))}
        )


def test_transform_on_batch_dict_exact_keys_shapes_dtypes(caplog):
    rng = np.random.default_rng(7)
    qpos = np.stack([[random_state(model("digit"), rng)[0] for _ in range(5)] for _ in range(3)])
    batch = {
        "qpos": qpos.astype(np.float32),
        "qvel": rng.normal(size=(3, 5, 54)).astype(np.float32),
        "valid": np.ones((3, 5), bool),
        "episode_origin_qpos": qpos[:, 0].astype(np.float32),
        "ee_pos": rng.normal(size=(3, 5, 12)).astype(np.float32),
        "traj_id": np.zeros(3, np.int32),
    }
    out = BuildReferences(None, digit_v3.SPEC, convention=MUJOCO).map(batch)
    f32 = np.dtype(np.float32)
    assert {k: (v.shape, v.dtype) for k, v in out.items() if k.startswith("ref_")} == {
        "ref_motor_joint_pos": ((3, 5, 20), f32),
        "ref_motor_joint_vel": ((3, 5, 20), f32),
        "ref_base_local_pos": ((3, 5, 3), f32),
        "ref_base_local_trans": ((3, 5, 3), f32),
        "ref_base_local_ori": ((3, 5, 3), f32),
        "ref_base_robot_lin_vel": ((3, 5, 3), f32),
        "ref_base_robot_ang_vel": ((3, 5, 3), f32),
        "ref_local_ee_pos": ((3, 5, 4, 3), f32),
        "ref_base_local_ee_pos": ((3, 5, 4, 3), f32),
        "ref_len": ((3,), np.dtype(np.int32)),
    }
    want = compute_references(
        batch["qpos"],
        batch["qvel"],
        digit_v3.SPEC,
        MUJOCO,
        ee_pos=batch["ee_pos"].reshape(3, 5, 4, 3),
    )
    for key in REF_KEYS + EE_REF_KEYS:
        np.testing.assert_array_equal(out[key], want[key], err_msg=key)
    del batch["ee_pos"]
    out = BuildReferences(None, digit_v3.SPEC, convention=MUJOCO).map(batch)
    assert (
        not set(EE_REF_KEYS) & set(out) and "no end-effector positions" in caplog.text
    )  # never zeros
    # A robot spec without end-effector sites expects none: no warning.
    caplog.clear()
    no_ee = dataclasses.replace(digit_v3.SPEC, ee_sites=())
    out = BuildReferences(None, no_ee, convention=MUJOCO).map(batch)
    assert not set(EE_REF_KEYS) & set(out) and "no end-effector positions" not in caplog.text


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    """Store with the real Cassie traj_2 twice: source 'mj' as recorded (MuJoCo convention) and
    source 'pin' converted to Pinocchio order/frames with MuJoCo."""
    from trajopt_loader.store import TrajectoryStore, export_npz

    root, d, m = (
        tmp_path_factory.mktemp("mixed"),
        np.load(DATA / "cassie" / "trajopt" / "agility_reference" / "traj_2.npz"),
        model("cassie"),
    )
    pin = [to_pinocchio(m, q, v, cassie.SPEC) for q, v in zip(d["qpos"], d["qvel"], strict=True)]
    for src, conv, q, v in (
        ("mj", "mujoco", d["qpos"], d["qvel"]),
        ("pin", "pinocchio", np.stack([p[0] for p in pin]), np.stack([p[1] for p in pin])),
    ):
        (root / src / "walk").mkdir(parents=True)
        np.savez(root / src / "walk" / "traj_0.npz", qpos=q, qvel=v, dt=d["dt"])
        export_npz(root / src, root / "s.zarr", source=src, convention=conv, progress=False)
    return TrajectoryStore(str(root / "s.zarr"))


def test_transform_reads_conventions_and_episode_origin_from_store(mixed_store):
    store, traj = mixed_store, np.array([0, 1, 1, 0], np.int32)  # traj 0 = 'mj', traj 1 = 'pin'
    first, start = np.array([3, 3, 5, 5], np.int32), np.array([10, 10, 5, 5], np.int32)
    steps = start[:, None] + np.arange(8)
    batch = {k: store.gather(k, traj, steps).astype(np.float32) for k in ("qpos", "qvel")}
    batch.update(traj_id=traj, episode_first_step=first, start=start, valid=np.ones((4, 8), bool))
    transform = BuildReferences(store, cassie.SPEC, heading_frame_keys=True)
    out = pickle.loads(pickle.dumps(transform)).map(batch)  # as in workers
    want = compute_references(
        batch["qpos"][:1],
        batch["qvel"][:1],
        cassie.SPEC,
        MUJOCO,
        origin_qpos=store.read(0, "qpos", 3, 4),
        dtype=np.float32,
        heading_frame_keys=True,
    )
    for key in REF_KEYS + HEADING_REF_KEYS:
        np.testing.assert_allclose(out[key][:1], want[key], atol=1e-6, err_msg=key)
        np.testing.assert_allclose(out[key][1], out[key][0], atol=1e-5, err_msg=key)
        np.testing.assert_allclose(out[key][2], out[key][3], atol=1e-5, err_msg=key)
    pos = out["ref_base_local_pos"][2:]  # these windows start at the episode's first step
    np.testing.assert_allclose(out["ref_base_local_trans"][2:], pos - pos[:, :1], atol=1e-6)
    np.testing.assert_allclose(
        out["ref_base_heading_trans"][2:], out["ref_base_heading_pos"][2:], atol=1e-6
    )
    assert not out["ref_base_local_trans"][2:, 0].any() and out["ref_base_local_trans"][0, 0].any()


@pytest.mark.slow
def test_inside_make_dataset_with_fk_end_effectors(cassie_store):
    """make_dataset + kinematics.EndEffectorPositions (MJX FK of the 'imu' site) +
    BuildReferences."""
    from trajopt_loader.configs import load_config
    from trajopt_loader.pipeline import make_dataset
    from trajopt_loader.store import TrajectoryStore
    from trajopt_loader.transforms.end_effectors import EndEffectorPositions

    store, m = TrajectoryStore(str(cassie_store)), model("cassie")
    spec = dataclasses.replace(cassie.SPEC, ee_sites=("imu",))
    # All three agility trajectories on purpose (2 kHz and 29 Hz): references are per step.
    config = load_config(
        "cassie",
        {
            "zarr_path": str(cassie_store),
            "motions": ("agility_reference",),
            "allow_mixed_dt": True,
            "num_envs": 4,
            "window_size": 8,
            "num_batches": 2,
            "references.enabled": True,
        },
    )
    batches = list(
        make_dataset(
            config,
            store,
            0,
            1,
            extra_transforms=[
                EndEffectorPositions(MODELS["cassie"][0], spec.ee_sites, MUJOCO),
                BuildReferences(store, spec),
            ],
        )
    )
    assert len(batches) == 2
    for b in batches:
        assert {k: b[k].shape for k in REF_KEYS + EE_REF_KEYS} == {
            "ref_motor_joint_pos": (4, 8, 10),
            "ref_motor_joint_vel": (4, 8, 10),
            "ref_len": (4,),
            **{k: (4, 8, 3) for k in REF_KEYS[2:7]},
            **{k: (4, 8, 1, 3) for k in EE_REF_KEYS},
        }
        origin = store.gather("qpos", b["traj_id"], b["episode_first_step"][:, None])[:, 0]
        sites = [[mj_truth(m, q, np.zeros(m.nv), spec)["sites"] for q in env] for env in b["qpos"]]
        want = compute_references(
            b["qpos"],
            b["qvel"],
            spec,
            MUJOCO,
            valid=b["valid"],
            origin_qpos=origin.astype(np.float32),
            ee_pos=np.array(sites),
        )
        for key in REF_KEYS + EE_REF_KEYS:
            np.testing.assert_allclose(b[key], want[key], atol=2e-5, err_msg=key)
