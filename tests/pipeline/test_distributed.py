"""trajopt_loader.pipeline.distributed and .process_state in one process: sharding helpers,
initialization guards, per-process states (same and different process counts, every refusal). The
real 2-process run is tests/test_multihost.py."""

from __future__ import annotations

import itertools
import json

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec
from ml_collections import ConfigDict

from trajopt_loader.configs import load_config
from trajopt_loader.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    ShardingError,
)
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.pipeline.distributed import (
    env_sharding,
    maybe_initialize_distributed,
    process_env_range,
)
from trajopt_loader.pipeline.fingerprint import STREAM_FIELDS, stream_fields
from trajopt_loader.pipeline.process_state import restore_process_state, save_process_state
from trajopt_loader.store import TrajectoryStore, export_npz

E, SAVE_AT = 8, 3


@pytest.fixture(scope="module")
def store(cassie_store):
    return TrajectoryStore(cassie_store)


def config_of(store, **overrides):
    # aslip_walk: 21 trajectories of one rate (dt 0.0246-0.0254 s), qpos and motor_vel.
    base = {
        "zarr_path": store.path,
        "num_envs": E,
        "window_size": 16,
        "allow_wrap": False,
        "assignment": "random",
        "motions": ("aslip_walk",),
        "keys": ("qpos", "motor_vel"),
        "seed": 7,
    }
    return load_config("default", {**base, **overrides})


def batches(config, store, n, p=0, count=1, state=None):
    it = iter(make_dataset(config, store, p, count))
    if state is not None:
        it.set_state(state)
    return list(itertools.islice(it, n))


def test_process_env_range_splits_evenly_or_names_the_counts():
    assert [process_env_range(8, p, 4) for p in range(4)] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert process_env_range(8) == (0, 8)  # one JAX process here
    with pytest.raises(ShardingError, match="num_envs=7 is not divisible by process_count=2"):
        process_env_range(7, 0, 2)


def test_env_sharding_spans_all_devices_in_process_order():
    s = env_sharding()
    assert isinstance(s, NamedSharding) and s.spec == PartitionSpec("env")
    assert list(s.mesh.devices.flat) == sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    assert s.mesh.axis_names == ("env",)
    x = jax.device_put(np.arange(E * 3.0).reshape(E, 3), s)
    np.testing.assert_array_equal(np.asarray(x), np.arange(E * 3.0).reshape(E, 3))
    with pytest.raises(ShardingError, match="no devices"):
        env_sharding([])


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"num_processes": 2}, "coordinator_address is unset"),
        ({"coordinator_address": "127.0.0.1:1", "num_processes": 2}, "set both"),
        ({"coordinator_address": "127.0.0.1:1", "process_id": 0}, "set both"),
        (
            {"coordinator_address": "127.0.0.1:1", "num_processes": 2, "process_id": 2},
            r"process_id=2 must be in \[0, num_processes=2\)",
        ),
    ],
)
def test_initialize_refuses_incomplete_settings(fields, match):
    dist = ConfigDict({"coordinator_address": None, "num_processes": None, "process_id": None})
    dist.update(fields)
    with pytest.raises(ConfigError, match=match):
        maybe_initialize_distributed(dist)
    assert not jax.distributed.is_initialized()


def test_initialize_without_coordinator_is_a_no_op(store):
    assert maybe_initialize_distributed(config_of(store).distributed) is False
    assert not jax.distributed.is_initialized() and jax.process_count() == 1


def _save_two_process_run(store, config, directory):
    """Streams SAVE_AT batches in each of 2 simulated processes and saves both states."""
    for p in range(2):
        it = iter(make_dataset(config, store, p, 2))
        list(itertools.islice(it, SAVE_AT))
        save_process_state(directory, it, config, process_index=p, process_count=2)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_restore_continues_the_global_stream_with_any_process_count(store, tmp_path, count):
    config = config_of(store)
    single = batches(config, store, SAVE_AT + 2)
    _save_two_process_run(store, config, tmp_path)
    saved = json.loads((tmp_path / "process_1-of-2.json").read_text())["state"]
    stream = make_dataset(config, store, 0, 1).stream  # fingerprint: same for any process count
    assert saved == {
        "iterator": {"next_index": SAVE_AT, "stream": stream},
        "process_index": 1,
        "process_count": 2,
    }
    assert stream["config"] == stream_fields(config) and stream["store"]["trajectories"] == 21
    for p in range(count):
        it = iter(make_dataset(config, store, p, count))
        record = restore_process_state(tmp_path, it, config, process_index=p, process_count=count)
        assert record["iterator"] == {"next_index": SAVE_AT, "stream": stream}
        lo, hi = process_env_range(E, p, count)
        for k in (SAVE_AT, SAVE_AT + 1):
            got = next(it)
            for key in ("qpos", "motor_vel", "traj_id", "step", "valid", "env_id"):
                np.testing.assert_array_equal(got[key], single[k][key][lo:hi], err_msg=key)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"num_envs": 16}, "num_envs: saved 8, config 16"),
        ({"seed": 8}, "seed: saved 7, config 8"),
        ({"schedule": "random"}, "schedule: saved 'sequential', config 'random'"),
    ],
)
def test_restore_refuses_another_stream(store, tmp_path, change, match):
    _save_two_process_run(store, config_of(store), tmp_path)
    other = config_of(store, **change)
    it = iter(make_dataset(other, store, 0, 2))
    with pytest.raises(CheckpointError, match=match):
        restore_process_state(tmp_path, it, other, process_index=0, process_count=2)


def test_restore_accepts_another_spelling_of_the_same_stream(store, tmp_path):
    config = config_of(store)
    single = batches(config, store, SAVE_AT + 1)
    _save_two_process_run(store, config, tmp_path)
    same = config_of(
        store, motions=("cassie/aslip_walk",), stride=16, keys=("motor_vel", "qpos")
    )  # stride None = window_size 16
    it = iter(make_dataset(same, store, 0, 1))
    restore_process_state(tmp_path, it, same, process_index=0, process_count=1)
    got = next(it)
    for key in ("qpos", "motor_vel", "traj_id", "step"):
        np.testing.assert_array_equal(got[key], single[SAVE_AT][key], err_msg=key)


def test_restore_refuses_incomplete_or_inconsistent_runs(store, tmp_path):
    config = config_of(store)
    it = iter(make_dataset(config, store, 0, 1))
    with pytest.raises(CheckpointNotFoundError, match="no process_.*-of-.*json state"):
        restore_process_state(tmp_path, it, config, process_index=0, process_count=1)
    _save_two_process_run(store, config, tmp_path)
    with pytest.raises(ShardingError, match="num_envs=8 is not divisible by process_count=3"):
        restore_process_state(tmp_path, it, config, process_index=0, process_count=3)
    lagging = iter(make_dataset(config, store, 1, 2))
    next(lagging)  # process 1 saved one batch earlier than process 0
    save_process_state(tmp_path, lagging, config, process_index=1, process_count=2)
    with pytest.raises(CheckpointError, match="differ"):
        restore_process_state(tmp_path, it, config, process_index=0, process_count=1)
    (tmp_path / "process_1-of-2.json").unlink()
    with pytest.raises(CheckpointError, match=r"files of processes \[1\] are missing"):
        restore_process_state(tmp_path, it, config, process_index=0, process_count=1)
    (tmp_path / "process_0-of-2.json").rename(tmp_path / "process_1-of-2.json")
    with pytest.raises(CheckpointError, match="records process 0 of 2"):
        restore_process_state(tmp_path, it, config, process_index=1, process_count=2)
    save_process_state(tmp_path, it, config, process_index=0, process_count=4)
    with pytest.raises(CheckpointError, match=r"runs with \[2, 4\] processes"):
        restore_process_state(tmp_path, it, config, process_index=0, process_count=1)
    assert set(STREAM_FIELDS) <= set(config)


def test_restore_refuses_a_state_saved_before_the_store_changed(tmp_path, make_npz_tree):
    make_npz_tree(tmp_path / "npz", {"walk": [20, 12]})
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    config = load_config(
        "default",
        {
            "zarr_path": str(tmp_path / "s.zarr"),
            "num_envs": 2,
            "window_size": 4,
            "keys": ("qpos",),
            "cyclic": False,
        },
    )
    it = iter(make_dataset(config, TrajectoryStore(tmp_path / "s.zarr"), 0, 1))
    list(itertools.islice(it, 2))
    save_process_state(tmp_path / "ckpt", it, config, process_index=0, process_count=1)
    make_npz_tree(tmp_path / "npz2", {"walk": [20, 13]})
    export_npz(
        tmp_path / "npz2",
        tmp_path / "s.zarr",
        source="s",
        overwrite=True,
        progress=False,
        convention="mujoco",
    )
    fresh = iter(make_dataset(config, TrajectoryStore(tmp_path / "s.zarr"), 0, 2))
    with pytest.raises(
        CheckpointError,
        match=r"cannot restore the state in .*ckpt: iterator "
        r"state belongs to another stream than this pipeline \(store index "
        r"changed: 2 played trajectories → 2, first difference at position 1: saved "
        r"traj_id 1 = s/walk/traj1 \(12 steps.*now traj_id 1 = s/walk/traj1 \(13 ",
    ):
        restore_process_state(tmp_path / "ckpt", fresh, config, process_index=0, process_count=2)
    assert fresh.get_state()["next_index"] == 0


def test_older_records_without_fingerprint_still_restore_and_are_checked(store, tmp_path):
    config = config_of(store)
    want = batches(config, store, SAVE_AT + 1)[SAVE_AT]
    legacy = {
        "iterator": {"next_index": SAVE_AT},
        "process_index": 0,
        "process_count": 1,
        "stream": {**stream_fields(config), "num_batches": None},
    }  # as written before
    (tmp_path / "process_0-of-1.json").write_text(
        json.dumps({"format": "trajopt_loader.iterator_state", "version": 1, "state": legacy})
    )
    it = iter(make_dataset(config, store, 0, 1))
    with pytest.warns(UserWarning, match="has no stream fingerprint"):
        restore_process_state(tmp_path, it, config, process_index=0, process_count=1)
    np.testing.assert_array_equal(next(it)["qpos"], want["qpos"])
    other = config_of(store, window_size=8)
    with pytest.raises(CheckpointError, match="window_size: saved 16, config 8"):
        restore_process_state(
            tmp_path,
            iter(make_dataset(other, store, 0, 1)),
            other,
            process_index=0,
            process_count=1,
        )


def test_malformed_process_file_is_named(store, tmp_path):
    config = config_of(store)
    (tmp_path / "process_0-of-1.json").write_text(
        json.dumps({"iterator": {"next_idx": 3}, "process_index": 0, "process_count": 1})
    )
    with pytest.raises(
        CheckpointError,
        match=r"the iterator state in .*process_0-of-1.json is "
        r"not an iterator state .* it holds \{\"next_idx\": 3\}",
    ):
        restore_process_state(
            tmp_path,
            iter(make_dataset(config, store, 0, 1)),
            config,
            process_index=0,
            process_count=1,
        )
    (tmp_path / "process_0-of-1.json").write_text(json.dumps({"next_index": 3}))
    with pytest.raises(
        CheckpointError,
        match=r"not a per-process state written by "
        r"save_process_state \(expected keys iterator",
    ):
        restore_process_state(
            tmp_path,
            iter(make_dataset(config, store, 0, 1)),
            config,
            process_index=0,
            process_count=1,
        )
