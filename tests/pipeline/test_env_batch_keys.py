"""What an environment reads from a batch: look-ahead frames (future_steps), a random first
phase (random_start), the episode origin (episode_origin_keys), against the .npz files."""

import logging

import numpy as np
import pytest

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline.dataset import make_dataset
from trajopt_loader.store import TrajectoryStore


def _batches(store, n=None, **fields):
    config = load_config("default", {"zarr_path": str(store.path), **fields})
    ds = make_dataset(config, store, 0, 1)
    return ds, list(ds)


@pytest.fixture(scope="module")
def store(cassie_store):
    return TrajectoryStore(str(cassie_store))


def test_future_steps_append_the_next_frames_and_keep_the_window(store):
    common = dict(motions=("aslip_walk",), keys=("qpos",), num_envs=3, window_size=8, num_batches=6)
    _, plain = _batches(store, **common)
    _, ahead = _batches(store, future_steps=5, **common)
    for k, (p, a) in enumerate(zip(plain, ahead, strict=True)):
        for key in ("qpos", "step", "loop", "valid"):
            assert a[key].shape[:2] == (3, 13)
            np.testing.assert_array_equal(a[key][:, :8], p[key])  # the window is unchanged
        if k + 1 < len(ahead):  # frames W.. are the next window's first frames (one episode)
            for key in ("qpos", "step", "loop"):
                np.testing.assert_array_equal(a[key][:, 8:], ahead[k + 1][key][:, :5])
        assert (a["start"] == p["start"]).all()  # schedules still advance by stride
    # clamp: look-ahead past the last frame repeats it, marked invalid
    _, clamped = _batches(store, future_steps=5, end_policy="clamp", **common)
    lengths = np.asarray(store.lengths)
    for b in clamped:
        want_step = b["start"][:, None] + np.arange(13)
        length = lengths[b["traj_id"]][:, None]
        np.testing.assert_array_equal(b["valid"], want_step < length)
        np.testing.assert_array_equal(b["step"], np.minimum(want_step, length - 1))
    with pytest.raises(ConfigError, match="future_steps=-1"):
        load_config("default", {"future_steps": -1})


def test_random_start_and_origin_keys_against_the_npz(store, shared_data, caplog):
    fields = dict(
        assignment="explicit",
        traj_ids=(0, 1, 0, 1),
        num_envs=4,
        window_size=16,
        keys=("qpos", "qvel"),
        num_batches=3,
        random_start=True,
        episode_origin_keys=True,
        future_steps=2,
        **{"references.enabled": True, "references.robot": "cassie"},
    )
    with caplog.at_level(logging.WARNING):
        ds, batches = _batches(store, **fields)
    warnings = [r for r in caplog.records if "no end-effector sites" in r.getMessage()]
    assert len(warnings) == 1 and "cassie" in warnings[0].getMessage()  # Cassie's model has none
    root = shared_data / "cassie" / "trajopt"
    data = {
        i: np.load(root / store.trajectories[i].motion / store.trajectories[i].source_file)
        for i in (0, 1)
    }
    first = batches[0]["episode_first_step"]
    assert (first > 0).all() and len(set(first.tolist())) == 4  # no lockstep duplicates
    np.testing.assert_array_equal(batches[0]["start"], first)
    for b in batches:
        np.testing.assert_array_equal(b["episode_first_step"], first)
        for e, traj in enumerate(b["traj_id"]):
            for key in ("qpos", "qvel"):
                want = data[int(traj)][key][first[e]].astype(np.float32)
                np.testing.assert_array_equal(b[f"origin_{key}"][e], want)
        assert b["ref_base_local_trans"].shape == (4, 18, 3)
        np.testing.assert_allclose(
            b["ref_base_local_trans"], b["qpos"][..., :3] - b["origin_qpos"][:, None, :3], atol=2e-6
        )
    config = ds.stream["config"]
    assert config["random_start"] is True and config["episode_origin_keys"] is True
    assert config["future_steps"] == 2 and config["seed"] == 0  # the seed now shapes the stream
    other, _ = _batches(store, **{**fields, "seed": 1, "num_batches": 1})
    assert other.stream["fingerprint"] != ds.stream["fingerprint"]
    with pytest.raises(ConfigError, match="'random_start' cannot take 'yes'"):
        load_config("default", {"random_start": "yes"})


def test_new_stream_fields_are_compared_against_their_defaults():
    from trajopt_loader.pipeline.fingerprint import stream_fields
    from trajopt_loader.pipeline.state_check import config_differences

    plain = stream_fields(load_config("default"))
    assert not {"future_steps", "random_start", "episode_origin_keys"} & set(plain)
    changed = stream_fields(
        load_config(
            "default", {"future_steps": 2, "random_start": True, "episode_origin_keys": True}
        )
    )
    # a state saved before these fields existed (or without them) is refused by such a config
    assert config_differences(plain, changed) == [
        "future_steps: saved 0, config 2",
        "random_start: saved False, config True",
        "episode_origin_keys: saved False, config True",
    ]
    assert config_differences(changed, changed) == []
    random = load_config("default", {"schedule": "random", "random_start": True})
    assert "random_start" not in stream_fields(random)  # unused by random windows
