"""env_helpers against numpy indexing: eagerly, under jit and inside lax.scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trajopt_loader.env_helpers import PER_ENV_KEYS, reference_state, step_slice, where_envs


def _batch(E=3, T=5, nq=7, nv=6, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "qpos": rng.normal(size=(E, T, nq)).astype(np.float32),
        "qvel": rng.normal(size=(E, T, nv)).astype(np.float32),
        "ref_motor_joint_pos": rng.normal(size=(E, T, 2)).astype(np.float32),
        "ref_local_ee_pos": rng.normal(size=(E, T, 2, 3)).astype(np.float32),
        "valid": rng.random((E, T)) > 0.3,
        "step": rng.integers(0, 9, (E, T), dtype=np.int32),
        "episode_start": np.array([True, False, True]),
        "ref_len": np.full(E, T, np.int32),
        "origin_qpos": rng.normal(size=(E, nq)).astype(np.float32),
    }


def test_step_slice_and_reference_state_equal_numpy_indexing():
    batch = _batch()
    for t in range(5):
        got = step_slice(batch, t)
        assert set(got) == {k for k in batch if k not in PER_ENV_KEYS}
        for key, value in got.items():
            assert value.dtype == batch[key].dtype
            np.testing.assert_array_equal(np.asarray(value), batch[key][:, t])
        qpos, qvel = jax.jit(reference_state)(batch, jnp.int32(t))
        np.testing.assert_array_equal(np.asarray(qpos), batch["qpos"][:, t])
        np.testing.assert_array_equal(np.asarray(qvel), batch["qvel"][:, t])
    assert set(step_slice(batch, 1, keys=("qpos",))) == {"qpos"}


def test_step_slice_inside_scan_stacks_to_the_time_major_batch():
    batch = _batch(T=6)

    @jax.jit
    def run(b):
        def body(carry, t):
            now, nxt = step_slice(b, t), step_slice(b, t + 1)
            return carry + now["ref_motor_joint_pos"].sum(), (now, nxt["qpos"])

        return jax.lax.scan(body, jnp.float32(0), jnp.arange(5))

    total, (per_step, ahead) = run(batch)
    for key, value in per_step.items():
        np.testing.assert_array_equal(np.asarray(value), np.moveaxis(batch[key][:, :5], 1, 0))
    np.testing.assert_array_equal(np.asarray(ahead), np.moveaxis(batch["qpos"][:, 1:6], 1, 0))
    np.testing.assert_allclose(float(total), batch["ref_motor_joint_pos"][:, :5].sum(), rtol=1e-5)


def test_where_envs_selects_rows_per_env_and_errors_name_the_key():
    batch = _batch()
    new, old = reference_state(batch, 2), reference_state(batch, 4)
    got = where_envs(batch["episode_start"], new, old)
    for g, n, o in zip(got, new, old, strict=True):
        want = np.where(batch["episode_start"][:, None], np.asarray(n), np.asarray(o))
        np.testing.assert_array_equal(np.asarray(g), want)
    with pytest.raises(KeyError, match="'qvel'"):
        reference_state({"qpos": batch["qpos"]}, 0)
    with pytest.raises(ValueError, match="ref_len"):
        step_slice(batch, 0, keys=("ref_len",))
