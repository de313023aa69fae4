"""JAX references (jit, device arrays) equal the numpy references to float32 tolerance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _mujoco_oracle import DATA, model, quat, random_state, to_pinocchio, turn  # noqa: I001

from trajopt_loader import MUJOCO, PINOCCHIO
from trajopt_loader.errors import ReferenceInputError
from trajopt_loader.robots import cassie, digit_v3
from trajopt_loader.transforms.references import (
    EE_REF_KEYS,
    HEADING_EE_REF_KEYS,
    HEADING_REF_KEYS,
    REF_KEYS,
    compute_references,
)
from trajopt_loader.transforms.references_jax import compute_references_jax


def assert_refs_close(got, want, keys):
    for key in keys:
        g, w = np.asarray(got[key], np.float64), np.asarray(want[key], np.float64)
        assert g.shape == w.shape, key
        if key.endswith("_ori"):  # compare angles on the circle (yaw near +-pi)
            g, w = np.angle(np.exp(1j * (g - w))), np.zeros_like(w)
        np.testing.assert_allclose(g, w, atol=3e-5, rtol=1e-5, err_msg=key)


@pytest.fixture(scope="module")
def digit_batch():
    """6 envs x 9 steps of Digit states, envs 1, 3 and 5 in Pinocchio convention, env 4 half
    padded (zero rows), env 5 without any valid row; origins, world ee positions."""
    m, rng = model("digit"), np.random.default_rng(10)
    qpos, qvel = np.zeros((6, 9, 61)), np.zeros((6, 9, 54))
    for e in range(6):
        for t in range(9):
            q, v = random_state(m, rng, rng.uniform(-180, 180))
            qpos[e, t], qvel[e, t] = to_pinocchio(m, q, v, digit_v3.SPEC) if e % 2 else (q, v)
    valid = np.ones((6, 9), bool)
    valid[4, 5:], valid[5] = False, False
    qpos[~valid], qvel[~valid] = 0.0, 0.0
    return {
        "qpos": qpos.astype(np.float32),
        "qvel": qvel.astype(np.float32),
        "valid": valid,
        "origin": qpos[:, 3].astype(np.float32),
        "conv_idx": np.arange(6, dtype=np.int32) % 2,
        "ee": rng.uniform(-2, 2, (6, 9, 4, 3)).astype(np.float32),
    }


def test_jax_equals_numpy_mixed_conventions_padding_ee(digit_batch):
    b = digit_batch
    kw = dict(
        convention_index=b["conv_idx"], origin_qpos=b["origin"], valid=b["valid"], ee_pos=b["ee"]
    )
    want = compute_references(
        b["qpos"], b["qvel"], digit_v3.SPEC, (MUJOCO, PINOCCHIO), **kw, heading_frame_keys=True
    )
    got = compute_references_jax(
        *jax.device_put((b["qpos"], b["qvel"])),
        digit_v3.SPEC,
        ("mujoco", "pinocchio"),
        **jax.device_put(kw),
        heading_frame_keys=True,
    )
    assert {k: (v.shape, v.dtype) for k, v in got.items()} == {
        k: (v.shape, v.dtype) for k, v in want.items()
    }
    assert_refs_close(got, want, REF_KEYS + EE_REF_KEYS + HEADING_REF_KEYS + HEADING_EE_REF_KEYS)
    np.testing.assert_array_equal(got["ref_len"], [9, 9, 9, 9, 5, 0])
    assert not np.asarray(got["ref_motor_joint_pos"][5]).any()


def test_inside_a_users_jit_on_device_arrays(digit_batch):
    b = digit_batch

    @jax.jit
    def train_step(qpos, qvel, valid):
        refs = compute_references_jax(qpos, qvel, digit_v3.SPEC, MUJOCO, valid=valid)
        return refs["ref_base_robot_lin_vel"], refs["ref_len"].sum()

    lin, n = train_step(*jax.device_put((b["qpos"], b["qvel"], b["valid"])))
    want = compute_references(b["qpos"], b["qvel"], digit_v3.SPEC, MUJOCO, valid=b["valid"])
    np.testing.assert_allclose(lin, want["ref_base_robot_lin_vel"], atol=3e-5)
    assert int(n) == want["ref_len"].sum() == 41 and isinstance(lin, jax.Array)


@pytest.mark.parametrize("yaw", [0.0, 90.0, 170.0, -135.0])
def test_real_cassie_window(yaw):
    d = np.load(DATA / "cassie" / "trajopt" / "agility_reference" / "traj_0.npz")
    qpos, qvel = turn(d["qpos"][None, ::50], d["qvel"][None, ::50], yaw)
    want = compute_references(qpos, qvel, cassie.SPEC, MUJOCO)
    got = compute_references_jax(
        jnp.asarray(qpos, jnp.float32), jnp.asarray(qvel, jnp.float32), cassie.SPEC, MUJOCO
    )
    assert_refs_close(got, want, REF_KEYS)


def test_quaternion_order_and_velocity_frames_in_jax():
    qpos, qvel = np.zeros((2, 1, 35), np.float32), np.zeros((2, 1, 32), np.float32)
    qpos[0, 0, 3:7] = (1, 0, 0, 0)  # quaternion order: MuJoCo identity -> rpy 0
    qpos[1, 0, 3:7] = quat(np.pi / 2)  # velocity frames: yaw +90 deg
    qvel[1, 0, 0:3], qvel[1, 0, 3:6] = (1, 0, 0), (1, 0, 0)
    got = compute_references_jax(
        jnp.asarray(qpos),
        jnp.asarray(qvel),
        cassie.SPEC,
        MUJOCO,
        origin_qpos=jnp.asarray(qpos[:, 0] * 0 + qpos[0, 0]),
    )
    np.testing.assert_allclose(got["ref_base_local_ori"][0, 0], 0.0, atol=1e-7)
    np.testing.assert_allclose(got["ref_base_local_ori"][1, 0], (0, 0, np.pi / 2), atol=1e-6)
    np.testing.assert_allclose(got["ref_base_robot_ang_vel"][1, 0], (1, 0, 0), atol=1e-6)
    np.testing.assert_allclose(got["ref_base_robot_lin_vel"][1, 0], (0, -1, 0), atol=1e-6)


def test_trace_time_errors():
    with pytest.raises(ReferenceInputError, match="expected \\[E, T, 35\\]"):
        compute_references_jax(jnp.zeros((1, 2, 34)), jnp.zeros((1, 2, 32)), cassie.SPEC, MUJOCO)
    with pytest.raises(ReferenceInputError, match="2 conventions for 3 envs"):
        compute_references_jax(
            jnp.zeros((3, 2, 35)), jnp.zeros((3, 2, 32)), cassie.SPEC, (MUJOCO, PINOCCHIO)
        )
