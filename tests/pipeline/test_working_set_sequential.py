"""Working-set mode of the sequential schedule (pipeline/working_set_sequential.py).

Oracle: the same config streamed without the working set (every trajectory in the host cache).
The exact sets change nothing about the stream, so every batch must be equal bit for bit, while
each resident set holds only the trajectories its window of batches plays.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from conftest import _make_npz_tree

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.pipeline.working_set_sequential import SequentialSets
from trajopt_loader.store import TrajectoryStore, export_npz

LENGTHS = [20, 35, 18, 40, 25, 30, 22, 19, 33, 27, 24, 36, 21, 28, 17, 26]
ROW = (9 + 8) * 4  # qpos + qvel float32 bytes per step


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wss")
    _make_npz_tree(tmp / "npz", {"walk": LENGTHS})
    export_npz(tmp / "npz", tmp / "s.zarr", source="toy", progress=False, convention="mujoco")
    return tmp / "s.zarr"


def _config(store: Path, working_set: bool, **kw):
    over = {
        "zarr_path": str(store),
        "num_envs": 4,
        "window_size": 4,
        "schedule": "sequential",
        "allow_wrap": False,
        "assignment": "random",
        "keys": ("qpos", "qvel"),
        "cyclic": False,
        "seed": 3,
        "host_prefetch": 0,
        "episode_length": 0,
        "cache_bytes": 2 * 12 * max(LENGTHS) * ROW,  # two sets of 12 of the longest
        "working_set.enabled": working_set,
        "working_set.rotate_every": 3,
    }
    over.update(kw)
    return load_config("default", over)


def _stream(store: Path, n: int, working_set: bool, process_index=0, process_count=1, **kw):
    ds = make_dataset(
        _config(store, working_set, **kw), TrajectoryStore(store), process_index, process_count
    )
    return ds, list(itertools.islice(iter(ds), n))


def _assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"assignment": "round_robin", "random_start": True},
        {"stride": 2, "end_policy": "clamp", "episode_length": 12},
        {"allow_wrap": True, "end_policy": "wrap"},
    ],
)
def test_batches_equal_the_in_memory_sequential_stream(toy, kw):
    _, want = _stream(toy, 40, False, **kw)
    _, got = _stream(toy, 40, True, **kw)
    _assert_same(got, want)
    store = TrajectoryStore(toy)
    for i, b in enumerate(got):  # and the rows are the stored ones (rows of the files)
        rows = [store.read(int(t), "qpos") for t in b["traj_id"]]
        first = [r[int(s)] for r, s in zip(rows, b["start"], strict=True)]
        np.testing.assert_array_equal(b["qpos"][:, 0], np.stack(first).astype(np.float32), i)


def test_each_set_holds_exactly_the_trajectories_of_its_batches(toy):
    cfg = _config(toy, True)
    _, got = _stream(toy, 12, True)
    from trajopt_loader.pipeline.stages import make_schedule

    store = TrajectoryStore(toy)
    schedule = make_schedule(cfg, store.lengths, np.arange(len(LENGTHS)), 0, 1)
    sets = SequentialSets(schedule, 3)
    for w in range(4):
        played = np.unique(np.concatenate([b["traj_id"] for b in got[3 * w : 3 * w + 3]]))
        np.testing.assert_array_equal(sets.resident(w), played)
        assert sets.resident(w).size <= sets.max_trajectories()


def test_two_processes_each_hold_their_own_envs_trajectories(toy):
    _, whole = _stream(toy, 9, False)
    for p in range(2):
        _, part = _stream(toy, 9, True, process_index=p, process_count=2)
        for a, b in zip(part, whole, strict=True):
            np.testing.assert_array_equal(a["qpos"], b["qpos"][2 * p : 2 * p + 2])


def test_restore_mid_run_continues_bit_identically(toy):
    _, first = _stream(toy, 7, True)
    it = iter(make_dataset(_config(toy, True), TrajectoryStore(toy), 0, 1))
    for _ in range(4):
        next(it)
    state = it.get_state()
    it2 = iter(make_dataset(_config(toy, True), TrajectoryStore(toy), 0, 1))
    it2.set_state(state)
    _assert_same([next(it2) for _ in range(3)], first[4:7])


def test_a_budget_too_small_names_the_rotate_every_that_fits(toy):
    # 4 envs, shortest episode ceil(17 / 4) = 5 chunks: 32 batches may play min(16, 4 (1 +
    # ceil(31 / 5))) = all 16 trajectories; 1 batch plays 4 of them
    all_16 = 2 * sum(LENGTHS) * ROW
    cfg = {"working_set.rotate_every": 32, "cache_bytes": all_16 - 1}
    with pytest.raises(ConfigError, match=r"lower working_set.rotate_every to \d+ or raise"):
        make_dataset(_config(toy, True, **cfg), None, 0, 1)
    _, got = _stream(toy, 3, True, **dict(cfg, cache_bytes=all_16))  # all 16 fit: no error
    _, want = _stream(toy, 3, False)
    _assert_same(got, want)
    with pytest.raises(ConfigError, match="raise cache_bytes to at least"):
        make_dataset(_config(toy, True, cache_bytes=100), None, 0, 1)


def test_a_checkpoint_restores_under_another_budget_or_without_the_working_set(toy):
    """The stream does not depend on the sets, so neither does its fingerprint."""
    it = iter(make_dataset(_config(toy, True), TrajectoryStore(toy), 0, 1))
    for _ in range(5):
        next(it)
    state = it.get_state()
    _, want = _stream(toy, 9, False)
    fingerprint = make_dataset(_config(toy, False), TrajectoryStore(toy), 0, 1).stream
    for other in (
        {"working_set.rotate_every": 2, "cache_bytes": 2 * sum(LENGTHS) * ROW},
        {"working_set.enabled": False},
    ):
        ds = make_dataset(_config(toy, True, **other), TrajectoryStore(toy), 0, 1)
        assert ds.stream["fingerprint"] == fingerprint["fingerprint"]
        it2 = iter(ds)
        it2.set_state(state)
        _assert_same([next(it2) for _ in range(4)], want[5:9])
