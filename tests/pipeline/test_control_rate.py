"""Streaming at a control rate: Cassie's mixed 2 kHz / 29 Hz ``agility_reference`` clips at one
``control_dt`` against MuJoCo, unknown dt refused, ``control_dt`` validated and fingerprinted."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from trajopt_loader import load_config, make_dataset
from trajopt_loader.errors import CheckpointError, ConfigError
from trajopt_loader.store import TrajectoryStore, export_npz

CONTROL_DT = 0.02


def _config(shared_data, **overrides):
    fields = {
        "num_envs": 3,
        "window_size": 16,
        "num_batches": 4,
        "dtype": "float64",
        "motions": ("agility_reference",),
        "assignment": "explicit",
        "traj_ids": (0, 1, 2),
        "cyclic": False,
        "control_dt": CONTROL_DT,
        "references.model_path": str(shared_data / "cassie" / "cassie.xml"),
    }
    return load_config("default", {**fields, **overrides})


def test_mixed_rate_cassie_streams_at_one_control_dt(cassie_store, shared_data):
    store = TrajectoryStore(cassie_store)
    np.testing.assert_allclose(store.dts[:3], [0.0005, 0.0005, 0.0344], rtol=1e-3)
    with pytest.raises(ConfigError, match="time steps from 0.0005 s to 0.03439 s"):
        make_dataset(_config(shared_data, control_dt=None), store, 0, 1)  # without: refused
    model = mujoco.MjModel.from_xml_path(str(shared_data / "cassie" / "cassie.xml"))
    stored = {t: {k: store.read(t, k) for k in ("qpos", "qvel", "action")} for t in range(3)}
    # control steps: floor(1681 * 0.0005 / 0.02) + 1 = 43; floor(27 * 0.03439 / 0.02) + 1 = 47
    lengths = [43, 43, 47]
    batches = list(make_dataset(_config(shared_data), store, 0, 1))
    for k, batch in enumerate(batches):
        np.testing.assert_array_equal(batch["traj_id"], [0, 1, 2])
        for e, length in enumerate(lengths):  # one window of 16 control steps, wrapping at L
            np.testing.assert_array_equal(batch["step"][e], (16 * k + np.arange(16)) % length)
            dt, arrays = store.dts[e], stored[e]
            for w, step in enumerate(batch["step"][e]):
                s = step * CONTROL_DT / dt  # fractional stored frame
                i = min(int(np.floor(s + 1e-9)), len(arrays["qpos"]) - 1)
                alpha = 0.0 if s - i < 1e-9 else s - i
                q = arrays["qpos"][i].copy()
                if alpha:
                    v = np.zeros(model.nv)
                    mujoco.mj_differentiatePos(
                        model, v, dt, arrays["qpos"][i], arrays["qpos"][i + 1]
                    )
                    mujoco.mj_integratePos(model, q, v, alpha * dt)
                    for key in ("qvel", "action"):
                        want = (1 - alpha) * arrays[key][i] + alpha * arrays[key][i + 1]
                        np.testing.assert_allclose(batch[key][e, w], want, atol=1e-12)
                    np.testing.assert_allclose(batch["qpos"][e, w], q, atol=1e-12)
                else:  # on a stored frame: read bit for bit
                    for key in ("qpos", "qvel", "action"):
                        np.testing.assert_array_equal(batch[key][e, w], arrays[key][i])
    quats = np.stack([b["qpos"][2][..., a : a + 4] for b in batches for a in (3, 10, 24)])
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-12)
    # the default cyclic continuation works on top (loops counted in control steps)
    cyclic = list(make_dataset(_config(shared_data, cyclic=True), store, 0, 1))
    assert cyclic[2]["loop"][2].tolist() == [0] * 15 + [1]  # 32..46, then step 0 of loop 1
    np.testing.assert_array_equal(cyclic[2]["qpos"][2, :15], batches[2]["qpos"][2, :15])


def test_cassie_needs_its_model_for_the_achilles_ball_joints(cassie_store, shared_data):
    with pytest.raises(ConfigError, match=r"robot 'cassie' has nq - nv = 3 quaternion joints"):
        make_dataset(
            _config(shared_data, **{"references.model_path": None, "references.robot": "cassie"}),
            TrajectoryStore(cassie_store),
            0,
            1,
        )


def test_unknown_dt_is_refused_with_the_fix(tmp_path, make_npz_tree):
    root = make_npz_tree(tmp_path / "npz", {"walk": [6, 8]}, nq=7, nv=6, dt=None)
    export_npz(
        root, tmp_path / "s.zarr", source="s", dt="unknown", progress=False, convention="mujoco"
    )
    config = load_config(
        "default",
        {
            "num_envs": 2,
            "window_size": 4,
            "control_dt": 0.02,
            "references.robot": "cassie",
            "cyclic": False,
        },
    )
    with pytest.raises(
        ConfigError,
        match=r"control_dt=0.02 .* 2 played trajectories .* no known "
        r"dt \(e.g. s/walk/traj0.* dt=SECONDS",
    ):
        make_dataset(config, TrajectoryStore(tmp_path / "s.zarr"), 0, 1)


@pytest.mark.parametrize("value", [0, -0.01, float("inf"), float("nan"), "0.02"])
def test_control_dt_must_be_a_positive_time_step(value):
    with pytest.raises(ConfigError, match="control_dt"):
        load_config("default", {"control_dt": value})


def test_control_dt_is_part_of_the_stream_fingerprint(cassie_store, shared_data):
    store = TrajectoryStore(cassie_store)
    it = iter(make_dataset(_config(shared_data), store, 0, 1))
    next(it)
    state = it.get_state()
    assert state["stream"]["config"]["control_dt"] == CONTROL_DT
    for other, shown in ((0.01, "config 0.01"), (None, "config 'stored'")):
        fresh = iter(
            make_dataset(
                _config(
                    shared_data,
                    control_dt=other,
                    **({"traj_ids": (0, 1, 1)} if other is None else {}),
                ),
                store,
                0,
                1,
            )
        )  # stored frames: one rate (traj 2 left out)
        with pytest.raises(CheckpointError, match=rf"control_dt: saved 0.02, {shown}"):
            fresh.set_state(state)
    same = iter(make_dataset(_config(shared_data), store, 0, 1))
    same.set_state(state)
    np.testing.assert_array_equal(next(same)["qpos"], next(it)["qpos"])


def test_origin_and_look_ahead_at_a_control_rate(cassie_store, shared_data):
    """With control_dt the episode origin is the state interpolated at the episode's first control
    step (the window row at episode_start), and look-ahead frames are the next control steps."""
    store = TrajectoryStore(cassie_store)
    common = {"random_start": True, "seed": 3}  # episodes start between stored frames
    plain = list(make_dataset(_config(shared_data, **common), store, 0, 1))
    ahead = list(
        make_dataset(
            _config(shared_data, future_steps=4, episode_origin_keys=True, **common), store, 0, 1
        )
    )
    starts = ahead[0]["episode_first_step"] * CONTROL_DT / store.dts[:3]
    assert np.any(np.abs(starts - np.round(starts)) > 1e-3)  # an interpolated origin is tested
    for k, (p, a) in enumerate(zip(plain, ahead, strict=True)):
        assert a["qpos"].shape == (3, 16 + 4, 35) and a["valid"].shape == (3, 20)
        np.testing.assert_array_equal(a["qpos"][:, :16], p["qpos"])  # the window is unchanged
        if k + 1 < len(plain):  # look-ahead = the first frames of the next window (marching)
            np.testing.assert_array_equal(a["qpos"][:, 16:], plain[k + 1]["qpos"][:, :4])
        first = ahead[0]  # one episode per env here: its first step is the first window's row 0
        np.testing.assert_array_equal(a["origin_qpos"], first["qpos"][:, 0])
        np.testing.assert_array_equal(a["origin_qvel"], first["qvel"][:, 0])
