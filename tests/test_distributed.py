"""trajopt_loader.pipeline.distributed in one process: sharding helpers, initialization guards,
per-process states (same and different process counts, every refusal). The real 2-process run is
tests/test_multihost.py."""

from __future__ import annotations

import itertools
import json

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec
from ml_collections import ConfigDict

from trajopt_loader.configs import load_config
from trajopt_loader.errors import (CheckpointError, CheckpointNotFoundError, ConfigError,
                                   ShardingError)
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.pipeline.distributed import (STREAM_FIELDS, env_sharding,
                                                 maybe_initialize_distributed, process_env_range,
                                                 restore_process_state, save_process_state,
                                                 stream_fields)
from trajopt_loader.store import TrajectoryStore

E, SAVE_AT = 8, 3


@pytest.fixture(scope="module")
def store(cassie_store):
    return TrajectoryStore(cassie_store)


def config_of(store, **overrides):
    base = {"zarr_path": store.path, "num_envs": E, "window_size": 16, "allow_wrap": False,
            "assignment": "random", "motions": ("agility_reference",), "seed": 7}
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


@pytest.mark.parametrize("fields, match", [
    ({"num_processes": 2}, "coordinator_address is unset"),
    ({"coordinator_address": "127.0.0.1:1", "num_processes": 2}, "set both"),
    ({"coordinator_address": "127.0.0.1:1", "process_id": 0}, "set both"),
    ({"coordinator_address": "127.0.0.1:1", "num_processes": 2, "process_id": 2},
     r"process_id=2 must be in \[0, num_processes=2\)"),
])
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
    assert saved == {"iterator": {"next_index": SAVE_AT}, "process_index": 1, "process_count": 2,
                     "stream": stream_fields(config)}
    for p in range(count):
        it = iter(make_dataset(config, store, p, count))
        record = restore_process_state(tmp_path, it, config, process_index=p, process_count=count)
        assert record["iterator"] == {"next_index": SAVE_AT}
        lo, hi = process_env_range(E, p, count)
        for k in (SAVE_AT, SAVE_AT + 1):
            got = next(it)
            for key in ("qpos", "action", "traj_id", "step", "valid", "env_id"):
                np.testing.assert_array_equal(got[key], single[k][key][lo:hi], err_msg=key)


@pytest.mark.parametrize("change, match", [
    ({"num_envs": 16}, "num_envs: saved 8, config 16"),
    ({"seed": 8}, "seed: saved 7, config 8"),
    ({"schedule": "random"}, "schedule: saved 'sequential', config 'random'"),
])
def test_restore_refuses_another_stream(store, tmp_path, change, match):
    _save_two_process_run(store, config_of(store), tmp_path)
    other = config_of(store, **change)
    it = iter(make_dataset(other, store, 0, 2))
    with pytest.raises(CheckpointError, match=match):
        restore_process_state(tmp_path, it, other, process_index=0, process_count=2)


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
