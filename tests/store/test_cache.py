"""Host cache gathers (trajopt_loader.store.cache) against a numpy oracle, in both regimes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from trajopt_loader.errors import MissingKeyError, WindowIndexError
from trajopt_loader.store.cache import HostCache
from trajopt_loader.store.layout import TrajectoryInfo


def _setup(lengths, cols=3, chunk=4, dtype=np.float64, extra_shapes=None, dtypes=None):
    """Trajectory i: qpos[t, j] = 100 i + t + j / 100; an oracle reader that counts its calls.

    ``extra_shapes`` / ``dtypes``: ``{i: cols}`` / ``{i: dtype}`` overriding trajectory i's qpos.
    """
    arrays, infos = [], []
    for i, n in enumerate(lengths):
        c = (extra_shapes or {}).get(i, cols)
        dt = np.dtype((dtypes or {}).get(i, dtype))
        a = (100.0 * i + np.arange(n)[:, None] + np.arange(c)[None, :] / 100).astype(dt)
        arrays.append(a)
        keys = {"qpos": ((c,), str(dt))}
        if i % 2 == 0:
            keys["even"] = ((), "int32")
        infos.append(
            TrajectoryInfo(
                i,
                "s",
                "m",
                f"traj{i}",
                f"s/m/traj{i}",
                n,
                0.01,
                f"traj_{i}.npz",
                keys,
                chunk_rows={"qpos": chunk, "even": 8},
            )
        )
    calls = []

    def read(t, key, start, stop):
        calls.append((t, key, start, stop))
        if key == "even":
            return np.arange(start, stop, dtype=np.int32) + 1000 * t
        return arrays[t][start:stop].copy()

    return arrays, infos, read, calls


def _oracle(arrays, traj_ids, steps):
    return np.stack([arrays[t][s] for t, s in zip(traj_ids, steps, strict=True)])


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
    with pytest.raises(
        WindowIndexError,
        match=r"env row 1 \(traj_id 1, s/m/traj1\): step 6 at "
        r"window position 2 is outside \[0, 6\)",
    ) as e:
        cache.gather("qpos", [0, 1], [[0, 1, 2], [4, 5, 6]])
    assert (e.value.row, e.value.step, e.value.length, e.value.path) == (1, 6, 6, "s/m/traj1")
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
    assert np.array_equal(
        cache.gather("qpos", [0, 2], [[1], [2]]), _oracle(arrays, [0, 2], [[1], [2]])
    )
    assert cache.gather("qpos", [1], [[5]])[0, 0].tolist() == [105.0, 105.01, 105.02, 105.03]
    with pytest.raises(
        MissingKeyError,
        match=r"'qpos' row shapes differ: s/m/traj0 has rows "
        r"\(3,\) \(float64\), s/m/traj1 has rows \(4,\) "
        r"\(float64\) \(env rows 0 and 1\)",
    ):
        cache.gather("qpos", [0, 1], [[0], [0]])


@pytest.mark.parametrize("budget", [10**9, 4 * 3 * 8, 0])  # whole, chunk LRU, no cache
def test_same_row_shape_mixed_dtypes_gather_in_common_dtype(budget):
    # traj 1 stores float32, the others float64: one (3,) group, gathered as float64 always.
    arrays, infos, read, _ = _setup([5, 6, 7], dtypes={1: np.float32})
    cache = HostCache(infos, budget, read)
    assert cache.uniform("qpos") == ((3,), np.dtype(np.float64))
    traj_ids, steps = [1, 0, 2, 1], [[0, 5], [4, 1], [6, 6], [3, 2]]
    got = cache.gather("qpos", traj_ids, steps)
    want = np.stack([arrays[t][s].astype(np.float64) for t, s in zip(traj_ids, steps, strict=True)])
    assert got.dtype == np.float64 and np.array_equal(got, want)
    assert got[0, 1, 2] == np.float64(np.float32(105.02))  # float32 values, exactly upcast
    only32 = cache.gather("qpos", [1], [[2]])  # dtype independent of the trajectories mixed
    assert only32.dtype == np.float64 and only32[0, 0].tolist() == arrays[1][2].tolist()
    assert cache.info()["bytes_used"] == (
        18 * 3 * 8 if budget == 10**9 else sum(a.nbytes for a in cache._lru.values())
    )
    _, ints, read_i, _ = _setup([4, 4], dtype=np.int32, dtypes={1: np.float32})
    assert HostCache(ints, budget, read_i).gather("qpos", [0], [[3]]).dtype == np.float64


def test_uniform_checks_row_shapes_up_front():
    _, infos, read, _ = _setup([5, 6, 7, 3], extra_shapes={2: 4}, dtypes={2: np.float32})
    cache = HostCache(infos, 10**6, read)
    assert cache.uniform("qpos", [0, 1, 3, 3]) == ((3,), np.dtype(np.float64))
    assert cache.uniform("qpos", np.array([2])) == ((4,), np.dtype(np.float64))
    assert cache.uniform("even", [0, 2]) == ((), np.dtype(np.int32))
    with pytest.raises(
        MissingKeyError,
        match=r"'qpos' row shapes differ: s/m/traj0 has rows "
        r"\(3,\) \(float64\), s/m/traj2 has rows \(4,\) "
        r"\(float32\); windows read together",
    ):
        cache.uniform("qpos")
    with pytest.raises(MissingKeyError, match=r"^trajectory s/m/traj1 has no 'even'"):
        cache.uniform("even", [0, 1])
    with pytest.raises(WindowIndexError, match=r"^traj_id 9 is outside \[0, 4\)"):
        cache.uniform("qpos", [0, 9])
    assert cache.info()["misses"] == 0  # metadata only: nothing read


def test_concurrent_reads_of_one_chunk_keep_one_copy_and_exact_bytes():
    arrays, infos, read, calls = _setup([40, 40], chunk=4)
    barrier = threading.Barrier(2, timeout=30)

    def both_read_at_once(*args):  # each thread misses the LRU, then reads concurrently
        barrier.wait()
        return read(*args)

    cache = HostCache(infos, 4 * 4 * 3 * 8, both_read_at_once)  # chunk regime: 4 chunks fit
    out = [None, None]

    def work(k):
        out[k] = cache.gather("qpos", [0], [[5, 6]])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(calls) == 2 and calls[0] == calls[1] == (0, "qpos", 4, 8)  # read twice ...
    assert cache.info()["chunks"] == 1  # ... cached once, counted once
    assert cache.info()["bytes_used"] == sum(a.nbytes for a in cache._lru.values()) == 4 * 3 * 8
    for got in out:
        assert np.array_equal(got, arrays[0][None, [5, 6]])
    barrier = threading.Barrier(1)  # single reader from now on: fill the budget exactly
    for start in range(0, 40, 4):
        cache.gather("qpos", [1], [[start]])
    assert cache.info()["chunks"] == 4
    assert cache.info()["bytes_used"] == sum(a.nbytes for a in cache._lru.values()) == 4 * 4 * 3 * 8


def test_empty_gather_and_warm():
    arrays, infos, read, calls = _setup([5, 6], chunk=2)
    cache = HostCache(infos, 2 * 2 * 3 * 8, read)
    assert cache.gather("qpos", np.zeros(0, int), np.zeros((0, 4), int)).shape == (0, 4, 3)
    cache.warm(["qpos"])
    assert cache.info()["chunks"] == 2 and len(calls) == 2
    big = HostCache(infos, 10**6, read)
    big.warm(["qpos", "even"])
    assert big.info()["whole_keys"] == ["even", "qpos"]
