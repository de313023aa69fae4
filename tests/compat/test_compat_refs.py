"""Seed names DigitRefSpec / build_refs_from_window / DigitTrajoptRefBuilder over the numpy core."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _mujoco_oracle import DATA, model, random_state, to_pinocchio  # noqa: I001

from trajopt_loader import MUJOCO, PINOCCHIO
from trajopt_loader.compat import DigitRefSpec, DigitTrajoptRefBuilder, build_refs_from_window
from trajopt_loader.errors import MissingKeyError, ReferenceInputError
from trajopt_loader.robots import cassie, digit_v3
from trajopt_loader.transforms.references import REF_KEYS, compute_references

DIGIT_REF = DigitRefSpec(np.array(digit_v3.QPOS_INDEX), np.array(digit_v3.QVEL_INDEX))


def write_files(root, lengths, rng, nq=8, nv=7, **extra):
    """traj_{i}.npz with Pinocchio-order unit quaternions (x, y, z, w) in qpos[3:7]."""
    root.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(lengths):
        qpos, qvel = rng.normal(size=(n, nq)), rng.normal(size=(n, nv))
        qpos[:, 3:7] /= np.linalg.norm(qpos[:, 3:7], axis=1, keepdims=True)
        np.savez(
            root / f"traj_{i}.npz", qpos=qpos, qvel=qvel, **{k: v[i] for k, v in extra.items()}
        )
    return root


def test_window_defaults_to_pinocchio_and_matches_the_mujoco_motion():
    m, rng = model("digit"), np.random.default_rng(20)
    mj = [random_state(m, rng, rng.uniform(-180, 180)) for _ in range(7)]
    pin = [to_pinocchio(m, q, v, digit_v3.SPEC) for q, v in mj]
    qpos_mj, qvel_mj = np.stack([s[0] for s in mj]), np.stack([s[1] for s in mj])
    want = compute_references(qpos_mj[None], qvel_mj[None], digit_v3.SPEC, MUJOCO)
    got = build_refs_from_window(
        np.stack([s[0] for s in pin]), np.stack([s[1] for s in pin]), DIGIT_REF
    )
    over = build_refs_from_window(qpos_mj, qvel_mj, DIGIT_REF, convention=MUJOCO)
    for key in REF_KEYS[:-1]:
        np.testing.assert_allclose(got[key], want[key][0], atol=1e-12, err_msg=key)
        np.testing.assert_allclose(over[key], want[key][0], atol=1e-12, err_msg=key)
    np.testing.assert_array_equal(got["ref_len"], [7])
    assert not got["ref_base_local_trans"][0].any() and "ref_local_ee_pos" not in got
    ee = build_refs_from_window(
        qpos_mj, qvel_mj, digit_v3.SPEC, ee_pos=np.ones((7, 12)), convention=MUJOCO
    )
    assert ee["ref_base_local_ee_pos"].shape == (7, 4, 3)


def test_builder_natural_order_padding_and_seed_usage(tmp_path):
    rng = np.random.default_rng(21)
    lengths = [9, 7, 3, 5, 4, 6, 2, 8, 3, 3, 11, 4]
    root = write_files(tmp_path / "npz", lengths, rng)
    spec = DigitRefSpec(a_pos_index=np.array([7]), a_vel_index=np.array([6]))
    builder = DigitTrajoptRefBuilder(root, spec)
    assert [p.rsplit("/", 1)[1] for p in builder.files[:3]] == [
        "traj_0.npz",
        "traj_1.npz",
        "traj_2.npz",
    ]
    assert builder.files[10].endswith("traj_10.npz") and builder.lengths == lengths
    assert builder.max_len == 11 and builder.num_trajectories == 12
    refs = builder.build_by_index(1)
    with np.load(root / "traj_1.npz") as f:
        want = build_refs_from_window(f["qpos"], f["qvel"], spec)  # default: Pinocchio
        assert refs["ref_motor_joint_pos"][:7, 0].tolist() == f["qpos"][:, 7].tolist()
    np.testing.assert_array_equal(refs["ref_len"], [7])
    for key in REF_KEYS[:-1]:
        assert refs[key].shape[0] == 11
        np.testing.assert_array_equal(refs[key][:7], want[key], err_msg=key)
        np.testing.assert_array_equal(
            refs[key][7:], np.repeat(want[key][-1:], 4, axis=0), err_msg=key
        )
    stacked = {
        k: jnp.stack([jnp.asarray(builder.build_by_index(i)[k]) for i in (0, 1)]) for k in REF_KEYS
    }
    first = jax.jit(lambda r, t: r["ref_motor_joint_pos"][:, t])(stacked, 0)  # the seed's jit use
    np.testing.assert_allclose(
        first, [[np.load(root / f"traj_{i}.npz")["qpos"][0, 7]] for i in (0, 1)], atol=1e-6
    )


def test_true_length_subsample_and_ee(tmp_path):
    rng = np.random.default_rng(22)
    ee = [rng.normal(size=(64, 6)), rng.normal(size=(10, 6))]
    root = write_files(
        tmp_path / "npz", [64, 10], rng, ee_pos=ee, true_length=[np.int64(40), np.int64(10)]
    )
    spec = DigitRefSpec([7], [6], subsample=3)
    builder = DigitTrajoptRefBuilder(root, spec, "MuJoCo")  # a convention by name
    assert (
        builder.convention == MUJOCO and builder.lengths == [14, 4] and builder.max_len == 14
    )  # rows 0, 3, ..., 39 of 40 real rows
    refs = builder.build_by_index(0)
    with np.load(root / "traj_0.npz") as f:
        want = build_refs_from_window(
            f["qpos"][:40:3], f["qvel"][:40:3], spec, f["ee_pos"][:40:3], "mujoco"
        )
    for key in want:
        np.testing.assert_array_equal(refs[key], want[key], err_msg=key)
    assert refs["ref_local_ee_pos"].shape == (14, 2, 3)


def test_real_cassie_files_and_errors(tmp_path):
    builder = DigitTrajoptRefBuilder(
        DATA / "cassie" / "trajopt" / "agility_reference", cassie.SPEC, MUJOCO
    )
    assert builder.lengths == [1682, 1682, 28] and builder.max_len == 1682
    refs = builder.build_by_index(2)
    d = np.load(DATA / "cassie" / "trajopt" / "agility_reference" / "traj_2.npz")
    want = compute_references(d["qpos"][None], d["qvel"][None], cassie.SPEC, MUJOCO)
    for key in REF_KEYS[:-1]:
        np.testing.assert_array_equal(refs[key][:28], want[key][0], err_msg=key)
    aslip = DigitTrajoptRefBuilder(DATA / "cassie" / "trajopt" / "aslip_walk", cassie.SPEC, MUJOCO)
    assert aslip.files[2].endswith("traj_2.npz") and aslip.files[10].endswith("traj_10.npz")
    with pytest.raises(MissingKeyError, match="traj_0.npz: no key 'qvel'"):
        aslip.build_by_index(0)  # ASLIP data has no qvel
    with pytest.raises(IndexError, match="traj_index=21 outside \\[0, 21\\)"):
        aslip.build_by_index(21)
    with pytest.raises(FileNotFoundError, match="no .npz files"):
        DigitTrajoptRefBuilder(tmp_path, DIGIT_REF)
    np.savez(
        tmp_path / "traj_0.npz", qpos=np.array([{"a": 1}], dtype=object), qvel=np.zeros((1, 6))
    )
    with pytest.raises(ReferenceInputError, match="traj_0.npz: key 'qpos': needs pickle to load"):
        DigitTrajoptRefBuilder(tmp_path, DIGIT_REF)
    bad = np.zeros((3, 8))
    bad[:, 6] = 1.0
    bad[1, 3:7] = 0.0
    with pytest.raises(ReferenceInputError, match="step 1: base quaternion"):
        build_refs_from_window(bad, np.zeros((3, 7)), DigitRefSpec([7], [6]), convention=PINOCCHIO)
    with pytest.raises(ReferenceInputError, match="subsample=0"):
        DigitRefSpec([7], [6], subsample=0)


def test_builder_reads_files_by_the_store_rules(tmp_path):
    """true_length, one-row-per-interval padding and non-finite refusal are the export's
    (store.validate.load_trajectory), with the same message."""
    from trajopt_loader.errors import ExportError
    from trajopt_loader.store.time_step import UNKNOWN_DT
    from trajopt_loader.store.validate import load_trajectory

    rng = np.random.default_rng(23)
    root = write_files(
        tmp_path / "npz",
        [6, 5],
        rng,
        true_length=[np.int64(4), np.int64(5)],
        ee_pos=[rng.normal(size=(5, 1, 3)), rng.normal(size=(5, 1, 3))],
    )
    spec = DigitRefSpec(a_pos_index=np.array([7]), a_vel_index=np.array([6]))
    builder = DigitTrajoptRefBuilder(root, spec)
    assert builder.lengths == [4, 5]  # traj_0: true_length 4 of 6 rows
    for i in (0, 1):
        t = load_trajectory(root / f"traj_{i}.npz", dt=UNKNOWN_DT)
        n = t.length
        want = build_refs_from_window(
            t.arrays["qpos"], t.arrays["qvel"], spec, t.arrays["ee_pos"], PINOCCHIO
        )
        refs = builder.build_by_index(i)
        assert int(refs["ref_len"][0]) == n
        for key, value in want.items():
            if key != "ref_len":
                np.testing.assert_array_equal(refs[key][:n], value, err_msg=key)
    # (traj_0's ee_pos had 5 rows for 6 knots: padded by its last row, then cut to true_length)
    qpos = np.load(root / "traj_0.npz")["qpos"].copy()
    qpos[2, 0] = np.nan
    np.savez(root / "traj_0.npz", qpos=qpos, qvel=np.zeros((6, 7)))
    with pytest.raises(ExportError) as want_err:
        load_trajectory(root / "traj_0.npz", dt=UNKNOWN_DT)
    with pytest.raises(ReferenceInputError) as got_err:
        DigitTrajoptRefBuilder(root, spec)
    assert str(got_err.value) == f"{root}/{want_err.value}"
    assert "key 'qpos': has a non-finite value nan at row 2, column (0,)" in str(got_err.value)
