"""Host cache gathers (trajopt_loader.store.cache) against a numpy oracle, in both regimes."""

from __future__ import annotations

import numpy as np
import pytest

from trajopt_loader.errors import MissingKeyError, WindowIndexError
from trajopt_loader.store.cache import HostCache
from trajopt_loader.store.layout import TrajectoryInfo


def _setup(lengths, cols=3, chunk=4, dtype=np.float64, extra_shapes=None):
    """Trajectory i: qpos[t, j] = 100 i + t + j / 100; an oracle reader that counts its calls."""
    arrays, infos = [], []
    for i, n in enumerate(lengths):
        c = (extra_shapes or {}).get(i, cols)
        a = (100.0 * i + np.arange(n)[:, None] + np.arange(c)[None, :] / 100).astype(dtype)
        arrays.append(a)
        keys = {"qpos": ((c,), str(np.dtype(dtype)))}
        if i % 2 == 0:
            keys["even"] = ((), "int32")
        infos.append(TrajectoryInfo(i, "s", "m", f"traj{i}", f"s/m/traj{i}", n, 0.01,
                                    f"traj_{i}.npz", keys, chunk_rows={"qpos": chunk, "even": 8}))
    calls = []

    def read(t, key, start, stop):
        calls.append((t, key, start, stop))
        if key == "even":
            return np.arange(start, stop, dtype=np.int32) + 1000 * t
        return arrays[t][start:stop].copy()

    return arrays, infos, read, calls


def _oracle(arrays, traj_ids, steps):
    return np.stack([arrays[t][s] for t, s in zip(traj_ids, steps)])


@pytest.mark.parametrize("budget", [10**9, 3 * 4 * 8, 0])
@pytest.mark.parametrize("chunk", [1, 4, 7, 1000])
def test_gather_matches_oracle(budget, chunk):
    lengths = [5, 17, 1, 30, 9]
    arrays, infos, read, _ = _setup(lengths, chunk=chunk)
    cache = HostCache(infos, budget, read)
    rng = np.random.default_rng(chunk)
    for _ in range(5):
        traj_ids = rng.integers(0, len(lengths), 16)
        start = rng.integers(0, 100, 16)
        steps = (start[:, None] + np.arange(6)[None, :]) % np.array(lengths)[traj_ids][:, None]
        got = cache.gather("qpos", traj_ids, steps)
        assert got.shape == (16, 6, 3) and got.dtype == np.float64
        assert np.array_equal(got, _oracle(arrays, traj_ids, steps))
        info = cache.info()
        assert info["bytes_used"] <= budget
    assert (cache.info()["whole_keys"] == ["qpos"]) == (budget == 10**9)


def test_whole_regime_reads_each_trajectory_once():
    arrays, infos, read, calls = _setup([5, 6, 7])
    cache = HostCache(infos, 10**6, read)
    for _ in range(3):
        cache.gather("qpos", [2, 0], [[6, 0], [4, 3]])
    assert sorted(calls) == [(0, "qpos", 0, 5), (1, "qpos", 0, 6), (2, "qpos", 0, 7)]
    assert cache.info()["bytes_used"] == (5 + 6 + 7) * 3 * 8
    got = cache.gather("qpos", [2, 0], [[6, 0], [4, 3]])
    assert got[0, 0, 2] == 206.02 and got[1, 1, 0] == 3.0


def test_chunk_regime_decodes_each_unique_chunk_once_and_stays_in_budget():
    arrays, infos, read, calls = _setup([40, 40], chunk=4)
    budget = 3 * 4 * 3 * 8  # three 4-row chunks of 3 float64 columns
    cache = HostCache(infos, budget, read)
    steps = np.array([[4, 5, 6, 7, 8, 9], [5, 6, 7, 8, 9, 10]])
    got = cache.gather("qpos", [0, 0], steps)
    assert np.array_equal(got, _oracle(arrays, [0, 0], steps))
    assert sorted(calls) == [(0, "qpos", 4, 8), (0, "qpos", 8, 12)]
    cache.gather("qpos", [0, 0], steps)  # same chunks: LRU hits, no reads
    assert len(calls) == 2 and cache.info()["hits"] == 2
    for start in range(0, 36, 4):  # march through: oldest chunks are evicted
        cache.gather("qpos", [1], [[start, start + 1, start + 2, start + 3]])
        assert cache.info()["bytes_used"] <= budget
    assert cache.info()["chunks"] == 3


def test_last_partial_chunk_and_int_key():
    arrays, infos, read, calls = _setup([10, 3, 10], chunk=4)
    cache = HostCache(infos, 0, read)
    got = cache.gather("qpos", [0], [[9, 8]])
    assert calls == [(0, "qpos", 8, 10)] and got[0, :, 0].tolist() == [9.0, 8.0]
    even = HostCache(infos, 10**6, read).gather("even", [2, 0], [[1, 9], [0, 0]])
    assert even.dtype == np.int32 and even.tolist() == [[2001, 2009], [0, 0]]


def test_errors_name_env_row_step_and_length():
    _, infos, read, _ = _setup([5, 6])
    cache = HostCache(infos, 10**6, read)
    with pytest.raises(WindowIndexError, match=r"env row 1 \(traj_id 1, s/m/traj1\): step 6 at "
                                               r"window position 2 is outside \[0, 6\)"):
        cache.gather("qpos", [0, 1], [[0, 1, 2], [4, 5, 6]])
    with pytest.raises(WindowIndexError, match=r"env row 0 .* step -1"):
        cache.gather("qpos", [0], [[-1, 0]])
    with pytest.raises(WindowIndexError, match=r"env row 1: traj_id 7 is outside \[0, 2\)"):
        cache.gather("qpos", [0, 7], [[0], [0]])
    with pytest.raises(MissingKeyError, match=r"env row 1: trajectory s/m/traj1 has no 'even'"):
        cache.gather("even", [0, 1], [[0], [0]])
    with pytest.raises(MissingKeyError, match=r"key 'nope' is in no trajectory"):
        cache.gather("nope", [0], [[0]])
    with pytest.raises(ValueError, match=r"traj_ids \[E\] and steps \[E, W\]"):
        cache.gather("qpos", [0, 1], [[0]])


def test_row_shapes_differing_between_trajectories():
    arrays, infos, read, _ = _setup([5, 6, 7], extra_shapes={1: 4})
    cache = HostCache(infos, 10**6, read)
    assert np.array_equal(cache.gather("qpos", [0, 2], [[1], [2]]),
                          _oracle(arrays, [0, 2], [[1], [2]]))
    assert cache.gather("qpos", [1], [[5]])[0, 0].tolist() == [105.0, 105.01, 105.02, 105.03]
    with pytest.raises(MissingKeyError, match=r"row shapes differ .* s/m/traj0 and s/m/traj1"):
        cache.gather("qpos", [0, 1], [[0], [0]])


def test_empty_gather_and_warm():
    arrays, infos, read, calls = _setup([5, 6], chunk=2)
    cache = HostCache(infos, 2 * 2 * 3 * 8, read)
    assert cache.gather("qpos", np.zeros(0, int), np.zeros((0, 4), int)).shape == (0, 4, 3)
    cache.warm(["qpos"])
    assert cache.info()["chunks"] == 2 and len(calls) == 2
    big = HostCache(infos, 10**6, read)
    big.warm(["qpos", "even"])
    assert big.info()["whole_keys"] == ["even", "qpos"]
