"""Working-set mode (pipeline/working_set.py): rotation, determinism, restore, coverage, errors.

Toy store: 12 trajectories of revealing values (qpos[t, 0] = 100 i + t), so every gathered row
is checked against the file it came from.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import _make_npz_tree

from trajopt_loader.configs import load_config
from trajopt_loader.errors import CheckpointError, ConfigError, DataIntegrityError
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.pipeline.resident_sets import ResidentSets
from trajopt_loader.pipeline.working_set import (
    WorkingSetSchedule,
    min_rotate_every,
    working_set_size,
)
from trajopt_loader.store import TrajectoryStore, export_npz

LENGTHS = [20, 35, 18, 40, 25, 30, 22, 19, 33, 27, 24, 36]
ROW = (9 + 8) * 4  # qpos + qvel float32 bytes per step
TOP3 = 2 * ROW * (40 + 36 + 35)  # two sets of the three longest clips


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ws")
    _make_npz_tree(tmp / "npz", {"walk": LENGTHS})
    export_npz(tmp / "npz", tmp / "s.zarr", source="toy", progress=False, convention="mujoco")
    return tmp / "s.zarr"


def _config(store: Path, **kw):
    over = {
        "zarr_path": str(store),
        "num_envs": 8,
        "window_size": 4,
        "schedule": "random",
        "keys": ("qpos", "qvel"),
        "cyclic": False,
        "seed": 7,
        "host_prefetch": 0,
        "cache_bytes": TOP3 + 100,  # sets of 3 trajectories (two sets of the 3 longest fit)
        "working_set.enabled": True,
        "working_set.rotate_every": 5,
    }
    over.update(kw)
    return load_config("default", over)


def _batches(store: Path, n: int, **kw) -> list[dict]:
    ds = make_dataset(_config(store, **kw), TrajectoryStore(store), 0, 1)
    return list(itertools.islice(iter(ds), n))


def test_size_comes_from_the_cache_budget(toy):
    store = TrajectoryStore(toy)
    ids = np.arange(len(LENGTHS))
    assert working_set_size(_config(toy), store, ids) == 3
    assert working_set_size(_config(toy, cache_bytes=TOP3), store, ids) == 3
    assert working_set_size(_config(toy, cache_bytes=TOP3 - 1), store, ids) == 2
    assert working_set_size(_config(toy, cache_bytes=2**30), store, ids) == len(LENGTHS)
    with pytest.raises(ConfigError, match="cache_bytes=100 holds no working set"):
        working_set_size(_config(toy, cache_bytes=100), store, ids)
    for field, value in (
        ("control_dt", 0.05),
        ("adaptive.enabled", True),
        ("motion_weights", (("walk", 2.0),)),
        ("episode_origin_keys", True),
    ):
        with pytest.raises(ConfigError, match=rf"cannot be combined with \['{field}'\]"):
            make_dataset(_config(toy, **{field: value}), store, 0, 1)


def test_rotation_rule_from_the_set_bytes_and_the_rates(toy):
    store, ids = TrajectoryStore(toy), np.arange(len(LENGTHS))
    set_bytes = 3 * np.mean(LENGTHS) * ROW  # sets of 3 trajectories of the mean length
    for rate, batch_s, margin in ((1e4, 0.01, 2.0), (1e3, 0.5, 1.0), (1e9, 1.0, 2.0)):
        want = max(1, int(np.ceil(margin * set_bytes / (rate * batch_s))))
        assert min_rotate_every(_config(toy), store, ids, rate, batch_s, margin) == want
    # 2 x 3 trajectories x 27.42 steps (mean) x 68 B / (1e4 B/s x 0.01 s) = 111.9
    assert min_rotate_every(_config(toy), store, ids, 1e4, 0.01) == 112
    assert min_rotate_every(_config(toy), store, ids, 1e9, 1.0) == 1


def test_resident_sets_hold_the_stored_rows_decoded_in_place_or_cast(toy):
    store = TrajectoryStore(toy)  # stored float64: float64 sets decode in place, float32 cast
    sched = WorkingSetSchedule(
        np.array(LENGTHS), np.arange(12), 8, 4, size=5, rotate_every=3, seed=1
    )
    for dtype in ("float64", "float32"):
        sets = ResidentSets(store, ("qpos", "qvel"), dtype, sched)
        for w in range(4):  # two epochs of sets of 5, 5, 2
            flats, offsets = sets.get(w)
            ids = sched.resident(w)
            assert sorted(np.flatnonzero(offsets >= 0).tolist()) == ids.tolist()
            for key in ("qpos", "qvel"):
                want = np.concatenate([store.read(int(i), key) for i in ids]).astype(dtype)
                assert flats[key].dtype == np.dtype(dtype)
                np.testing.assert_array_equal(flats[key], want)  # traj_id order, no gaps
                for i in ids:
                    rows = flats[key][offsets[i] : offsets[i] + LENGTHS[i]]
                    np.testing.assert_array_equal(rows, store.read(int(i), key).astype(dtype))


def test_a_load_slower_than_the_window_is_recorded_and_warned_once(toy, caplog):
    store = TrajectoryStore(toy)
    read_whole = store.read_whole

    def slow_read_whole(*args, **kwargs):  # a load far longer than one batch of rotate_every=1
        time.sleep(0.1)
        return read_whole(*args, **kwargs)

    store.read_whole = slow_read_whole
    sched = WorkingSetSchedule(
        np.array(LENGTHS), np.arange(12), 8, 4, size=3, rotate_every=1, seed=7
    )
    sets = ResidentSets(store, ("qpos",), "float64", sched)
    with caplog.at_level(logging.WARNING, logger="trajopt_loader.pipeline.resident_sets"):
        for w in range(4):
            flats, offsets = sets.get(w)  # still the stored rows after a wait
            want = np.concatenate([store.read(int(i), "qpos") for i in sched.resident(w)])
            np.testing.assert_array_equal(flats["qpos"], want)
    assert [w for w, _ in sets.waits] == [1, 2, 3]  # window 0: the first load, not a wait
    assert all(seconds > 0 for _, seconds in sets.waits)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "window 1 waited" in warned[0] and "rotate_every=1 " in warned[0]


def test_batches_come_from_the_resident_set_and_hold_the_stored_rows(toy):
    cfg = _config(toy)
    batches = _batches(toy, 20)
    sched = WorkingSetSchedule(
        np.array(LENGTHS), np.arange(12), 8, 4, size=3, rotate_every=5, seed=7
    )
    for k, b in enumerate(batches):
        assert set(b["traj_id"]) <= set(sched.resident(k // 5)), k
        np.testing.assert_array_equal(b["qpos"][..., 0], 100.0 * b["traj_id"][:, None] + b["step"])
        np.testing.assert_array_equal(
            b["qvel"][..., 0], -1e4 + 100.0 * b["traj_id"][:, None] + b["step"]
        )
        assert b["qpos"].dtype == np.float32 and b["qpos"].shape == (8, 4, 9)
    assert [len(sched.resident(w)) for w in range(4)] == [3] * 4
    again = _batches(toy, 20)  # same seed: the same stream
    for a, b in zip(batches, again, strict=True):
        for key in ("qpos", "traj_id", "start"):
            np.testing.assert_array_equal(a[key], b[key])
    other = _batches(toy, 20, seed=8)
    assert any((a["traj_id"] != b["traj_id"]).any() for a, b in zip(batches, other, strict=True))
    assert cfg.working_set.rotate_every == 5


def test_every_trajectory_is_visited_once_per_epoch(toy):
    sched = WorkingSetSchedule(
        np.array(LENGTHS), np.arange(12), 8, 4, size=5, rotate_every=40, seed=3
    )
    assert sched.sets_per_epoch == 3  # sets of 5, 5, 2
    for epoch in range(3):
        sets = [sched.resident(w) for w in range(3 * epoch, 3 * epoch + 3)]
        assert sorted(np.concatenate(sets).tolist()) == list(range(12))  # a partition
        drawn = {
            int(t) for k in range(3 * 40 * epoch, 3 * 40 * (epoch + 1)) for t in sched[k]["traj_id"]
        }
        assert drawn == set(range(12))  # every trajectory played within the epoch
    assert not all(np.array_equal(sched.resident(w), sched.resident(w + 3)) for w in range(3))


def test_restore_mid_run_continues_bit_identically(toy):
    ds = make_dataset(_config(toy), TrajectoryStore(toy), 0, 1)
    it = iter(ds)
    for _ in range(7):  # into the second working set
        next(it)
    state = it.get_state()
    rest = list(itertools.islice(it, 9))
    fresh = iter(make_dataset(_config(toy), TrajectoryStore(toy), 0, 1))
    fresh.set_state(state)
    for a, b in zip(rest, itertools.islice(fresh, 9), strict=True):
        for key in ("qpos", "qvel", "traj_id", "step", "env_id"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_fingerprint_names_the_working_set(toy):
    on = make_dataset(_config(toy), TrajectoryStore(toy), 0, 1).stream
    off = make_dataset(
        _config(toy, **{"working_set.enabled": False}), TrajectoryStore(toy), 0, 1
    ).stream
    assert on["config"]["working_set"] == {
        "rotate_every": 5,
        "cache_bytes": _config(toy).cache_bytes,
    }
    assert "working_set" not in off["config"] and on["fingerprint"] != off["fingerprint"]


def test_background_load_error_reaches_the_caller(toy, tmp_path):
    out = tmp_path / "s.zarr"
    shutil.copytree(toy, out)
    sched = WorkingSetSchedule(
        np.array(LENGTHS), np.arange(12), 8, 4, size=3, rotate_every=5, seed=7
    )
    bad = int(min(set(sched.resident(1)) - set(sched.resident(0))))
    info = TrajectoryStore(out).info(bad)
    (out / info.path / "qpos" / "c" / "0" / "0").unlink()
    it = iter(make_dataset(_config(out), TrajectoryStore(out), 0, 1))
    for _ in range(5):  # window 0 plays while window 1 loads (and fails) in the background
        next(it)
    with pytest.raises(DataIntegrityError, match=f"{info.path}.*'qpos', chunk 0"):
        next(it)


def test_restore_refuses_another_rotation_or_budget(toy):
    """The sets depend on rotate_every and cache_bytes: another value is another stream."""
    it = iter(make_dataset(_config(toy), TrajectoryStore(toy), 0, 1))
    next(it)
    state = it.get_state()
    for field, value, shown in (
        ("working_set.rotate_every", 6, "'rotate_every': 5"),
        ("cache_bytes", _config(toy).cache_bytes + 4096, "'cache_bytes'"),
        ("working_set.enabled", False, "working_set: saved"),
    ):
        other = iter(make_dataset(_config(toy, **{field: value}), TrajectoryStore(toy), 0, 1))
        with pytest.raises(CheckpointError, match=shown):
            other.set_state(state)


def test_any_two_consecutive_sets_fit_the_budget(toy):
    """Sets are sized by the longest clips, so the bound holds for every pair of sets played and
    loaded together, not only on average (clips of 18 to 40 steps here)."""
    cfg, store = _config(toy), TrajectoryStore(toy)
    ids = np.arange(len(LENGTHS))
    sched = WorkingSetSchedule(
        store.lengths, ids, 8, 4, size=working_set_size(cfg, store, ids), rotate_every=5, seed=7
    )
    pairs = [
        int(store.lengths[sched.resident(w)].sum() + store.lengths[sched.resident(w + 1)].sum())
        for w in range(200)
    ]
    assert max(pairs) * ROW <= cfg.cache_bytes


@pytest.mark.parametrize("threads", [2, 4])
def test_grain_threads_read_neighbouring_windows_at_once(toy, threads):
    """With read_threads > 1 elements of two windows are mapped together: a set another thread
    waits for is never cancelled, and the batches equal the single-thread ones."""
    want = _batches(toy, 40)
    for _ in range(3):
        got = _batches(toy, 40, read_threads=threads, host_prefetch=2 * threads)
        for a, b in zip(got, want, strict=True):
            for key in ("qpos", "qvel", "traj_id", "start"):
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
