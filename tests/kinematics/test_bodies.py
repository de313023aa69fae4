"""Body poses and velocities at export equal MuJoCo's (xpos, xquat, mj_objectVelocity with
mjOBJ_XBODY, flg_local=0) on Cassie and Digit, for recorded and random states, both conventions."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from trajopt_loader.errors import MissingKeyError
from trajopt_loader.kinematics import load_kinematics_model, load_model
from trajopt_loader.kinematics.bodies import body_names_of, body_states
from trajopt_loader.kinematics.model import qpos_from_mujoco, qvel_from_mujoco


@pytest.fixture(scope="module", params=["cassie/cassie.xml", "digit_v3/digit-v3.xml"])
def models(request, shared_data):
    """(full model for the oracle, kinematics-only model used by body_states)."""
    path = shared_data / request.param
    return load_model(path), load_kinematics_model(path)


def _oracle(model, qpos, qvel, ids):
    """xpos, xquat and [ang, lin] of mj_objectVelocity after mj_forward, frame by frame."""
    data, res = mujoco.MjData(model), np.empty(6)
    pos, quat, lin, ang = ([] for _ in range(4))
    for q, v in zip(qpos, qvel, strict=True):
        data.qpos[:], data.qvel[:] = q, v
        mujoco.mj_forward(model, data)
        pos.append(data.xpos[ids].copy())
        quat.append(data.xquat[ids].copy())
        rows = []
        for b in ids:
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_XBODY, int(b), res, 0)
            rows.append(res.copy())
        rows = np.array(rows)
        ang.append(rows[:, :3])
        lin.append(rows[:, 3:])
    return {
        "body_pos": np.array(pos),
        "body_quat": np.array(quat),
        "body_lin_vel": np.array(lin),
        "body_ang_vel": np.array(ang),
    }


def _random_states(model, n, seed=0):
    rng = np.random.default_rng(seed)
    qpos = np.tile(model.qpos0, (n, 1)) + 0.3 * rng.standard_normal((n, model.nq))
    for j in np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_BALL):
        a = model.jnt_qposadr[j]
        qpos[:, a : a + 4] /= np.linalg.norm(qpos[:, a : a + 4], axis=1, keepdims=True)
    return qpos, rng.standard_normal((n, model.nv))


def _recorded_or_random(models, shared_data):
    full, _ = models
    if full.nq == 35:  # Cassie: recorded reference trajectory frames
        with np.load(shared_data / "cassie/trajopt/agility_reference/traj_0.npz") as f:
            return f["qpos"][::200], f["qvel"][::200]
    return _random_states(full, 6, seed=1)


@pytest.mark.parametrize("kind", ["recorded", "random"])
@pytest.mark.parametrize("convention", ["mujoco", "pinocchio"])
def test_body_states_equal_mujoco(models, shared_data, kind, convention):
    full, kin = models
    qpos, qvel = (
        _recorded_or_random(models, shared_data) if kind == "recorded" else _random_states(full, 5)
    )
    names = body_names_of(kin, "all")
    ids = np.arange(1, full.nbody)
    want = _oracle(full, qpos, qvel, ids)
    q_in = qpos_from_mujoco(kin, qpos, convention)
    v_in = qvel_from_mujoco(kin, qvel, qpos, convention)
    got = body_states(kin, q_in, v_in, names, convention)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, atol=1e-9, err_msg=key)


def test_linear_velocity_is_the_derivative_of_position(models):
    """Independent of mj_objectVelocity: body_lin_vel = d(xpos)/dt and the body rotation
    advances by body_ang_vel (world axes), by central differences along qvel."""
    full, kin = models
    qpos, qvel = _random_states(full, 2, seed=3)
    names, h = body_names_of(kin, "all"), 1e-6
    got = body_states(kin, qpos, qvel, names, "mujoco")
    for k in range(2):
        ahead, behind = qpos[k].copy(), qpos[k].copy()
        mujoco.mj_integratePos(full, ahead, qvel[k], h)
        mujoco.mj_integratePos(full, behind, qvel[k], -h)
        two = body_states(kin, np.stack([ahead, behind]), np.zeros((2, full.nv)), names, "mujoco")
        lin = (two["body_pos"][0] - two["body_pos"][1]) / (2 * h)
        np.testing.assert_allclose(got["body_lin_vel"][k], lin, atol=1e-5)
        r_a, r_b = (np.array([_mat(q) for q in two["body_quat"][i]]) for i in (0, 1))
        r_now = np.array([_mat(q) for q in got["body_quat"][k]])
        skew = np.einsum("bij,bkj->bik", r_a - r_b, r_now) / (2 * h)  # dR/dt R^T = [omega]x
        omega = np.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], axis=-1)
        np.testing.assert_allclose(got["body_ang_vel"][k], omega, atol=1e-4)


def _mat(quat_wxyz):
    out = np.empty(9)
    mujoco.mju_quat2Mat(out, quat_wxyz)
    return out.reshape(3, 3)


def test_body_names(models):
    _, kin = models
    names = body_names_of(kin, "all")
    assert names == tuple(kin.body(i).name for i in range(1, kin.nbody))
    assert body_names_of(kin, f"{names[2]}, {names[0]}") == (names[2], names[0])
    with pytest.raises(MissingKeyError, match="not bodies of model"):
        body_names_of(kin, "nose")
    with pytest.raises(MissingKeyError, match="world body is excluded"):
        body_names_of(kin, ["world"])
