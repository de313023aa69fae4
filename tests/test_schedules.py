"""Schedules against a step-by-step oracle that marches every env by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trajopt_loader.errors import ConfigError, IndexOverflowError, ShardingError, WindowIndexError
from trajopt_loader.pipeline import schedules
from trajopt_loader.pipeline.schedules import RandomSchedule, SequentialSchedule

FIELDS = ("env_id", "traj_id", "start", "episode_start", "episode_first_step")


def _cycle_order(sched: SequentialSchedule, c: int) -> list[int]:
    """Documented order of cycle c: identity, or the permutation keyed by (seed, c)."""
    if sched.assignment == "random":
        return list(schedules._rng(sched.seed, schedules._PERM, c).permutation(sched.eligible.size))
    return list(range(sched.eligible.size))


def _env_positions(sched: SequentialSchedule, env: int):
    """Positions into `eligible` an env visits: cycle 0 from its offset, then whole cycles."""
    n = sched.eligible.size
    offset = (schedules._rng(sched.seed, schedules._OFFSET).integers(0, n, size=sched.num_envs)[env]
              if sched.assignment == "random" else env % n)
    yield from _cycle_order(sched, 0)[offset:]
    for c in itertools.count(1):
        yield from _cycle_order(sched, c)


def oracle_sequential(sched: SequentialSchedule, num_chunks: int, first_steps) -> dict:
    """March every env chunk by chunk with plain Python (the definition in the module docstring)."""
    W, S = sched.window_size, sched.stride
    out = {f: np.zeros((num_chunks, sched.num_envs), np.int64) for f in FIELDS}
    for e in range(sched.num_envs):
        positions = _env_positions(sched, e)
        traj = int(sched.eligible[next(positions)])
        s = first = int(first_steps[e])
        new_episode = True
        for k in range(num_chunks):
            for f, v in zip(FIELDS, (e, traj, s, new_episode, first)):
                out[f][k, e] = v
            L = int(sched.lengths[traj])
            new_episode = False
            if sched.allow_wrap:
                s = (s + S) % L
            elif s + W >= L or s + S >= L:  # this window reached the end / next start is outside
                traj, s, first, new_episode = int(sched.eligible[next(positions)]), 0, 0, True
            else:
                s += S
    return out


def _stack(sched, num_chunks):
    rows = [sched[k] for k in range(num_chunks)]
    for k, r in enumerate(rows):
        assert int(r["chunk"]) == k and r["chunk"].dtype == np.int64
        for f in FIELDS:
            assert r[f].dtype == (bool if f == "episode_start" else np.int32), f
    return {f: np.stack([r[f] for r in rows]) for f in FIELDS}


W_GRID = (1, 4, 5)


def _lengths(W):
    return sorted({1, 3, max(1, W - 1), W, W + 1, 10 * W})


@pytest.mark.parametrize("W", W_GRID)
@pytest.mark.parametrize("stride", [None, 1, 3, 7])
@pytest.mark.parametrize("allow_wrap", [True, False])
@pytest.mark.parametrize("assignment", ["round_robin", "random"])
@pytest.mark.parametrize("random_start", [False, True])
def test_sequential_matches_oracle(W, stride, allow_wrap, assignment, random_start):
    lengths = np.array(_lengths(W)[::-1] + [2 * W + 3], np.int32)
    eligible = np.arange(lengths.size, dtype=np.int32)[::-1][:-1]  # a subset, out of order
    sched = SequentialSchedule(lengths, eligible, num_envs=7, window_size=W, stride=stride,
                               assignment=assignment, allow_wrap=allow_wrap, end_policy="clamp",
                               random_start=random_start, seed=3)
    got = _stack(sched, 45)
    first = got["start"][0]
    if random_start:  # valid starts of the clamp policy: [0, max(1, L - W + 1))
        L = lengths[got["traj_id"][0]]
        assert ((first >= 0) & (first < np.maximum(1, L - W + 1))).all()
    else:
        assert (first == 0).all()
    want = oracle_sequential(sched, 45, first)
    for f in FIELDS:
        np.testing.assert_array_equal(got[f], want[f], err_msg=f)


def test_round_robin_first_assignment_and_explicit_list():
    lengths = np.array([10, 20, 30, 40], np.int32)
    rr = SequentialSchedule(lengths, [1, 3], num_envs=5, window_size=4)
    np.testing.assert_array_equal(rr[0]["traj_id"], [1, 3, 1, 3, 1])
    explicit = SequentialSchedule(lengths, [2, 2, 0, 3, 1], num_envs=5, window_size=4,
                                  assignment="explicit", allow_wrap=False)
    np.testing.assert_array_equal(explicit[0]["traj_id"], [2, 2, 0, 3, 1])
    # env 2 plays traj 0 (10 steps, 3 chunks of 4), then advances to the next list entry (3).
    np.testing.assert_array_equal([explicit[k]["traj_id"][2] for k in range(4)], [0, 0, 0, 3])
    np.testing.assert_array_equal([explicit[k]["start"][2] for k in range(4)], [0, 4, 8, 0])


def test_wrap_start_far_chunk_closed_form():
    lengths = np.array([7, 11, 13], np.int32)
    sched = SequentialSchedule(lengths, [0, 1, 2], num_envs=3, window_size=5, stride=3, seed=1)
    k = 10**12 + 17  # no loop over k: exact big-int arithmetic as the oracle
    np.testing.assert_array_equal(sched[k]["start"], [(k * 3) % L for L in (7, 11, 13)])
    assert not sched[k]["episode_start"].any() and sched[0]["episode_start"].all()


@pytest.mark.parametrize("assignment", ["round_robin", "explicit"])
def test_move_on_is_periodic_in_the_cycle_length(assignment):
    lengths = np.array([5, 9, 3, 17], np.int32)
    ids = [0, 1, 2, 3] if assignment == "round_robin" else [3, 1, 1, 0]
    sched = SequentialSchedule(lengths, ids, num_envs=6, window_size=4, stride=3,
                               assignment=assignment, allow_wrap=False)
    period = sum(min(math.ceil(lengths[i] / 3), 1 + max(0, math.ceil((lengths[i] - 4) / 3)))
                 for i in ids)
    assert sched.cycle_total == period
    for k in (0, 5, 11):
        for m in (1, 10**9):
            a, b = sched[k], sched[k + m * period]
            for f in FIELDS:
                np.testing.assert_array_equal(a[f], b[f])


def test_random_windows_valid_uniform_and_order_free():
    lengths = np.array([3, 10, 40], np.int32)
    for policy, counts in (("clamp", [1, 7, 37]), ("wrap", [3, 10, 40])):
        sched = RandomSchedule(lengths, [0, 1, 2], num_envs=4000, window_size=4,
                               end_policy=policy, seed=5)
        later = sched[9]
        el = sched[2]
        assert el["episode_start"].all()
        np.testing.assert_array_equal(el["episode_first_step"], el["start"])
        assert (el["start"] < np.array(counts)[el["traj_id"]]).all() and (el["start"] >= 0).all()
        # Trajectories weighted by their number of valid starts (binomial, 6 sigma).
        p = np.array(counts) / sum(counts)
        freq = np.bincount(el["traj_id"], minlength=3)
        assert (np.abs(freq - 4000 * p) < 6 * np.sqrt(4000 * p * (1 - p)) + 1).all()
        again = RandomSchedule(lengths, [0, 1, 2], num_envs=4000, window_size=4,
                               end_policy=policy, seed=5)
        np.testing.assert_array_equal(again[9]["start"], later["start"])  # computed out of order
        other = RandomSchedule(lengths, [0, 1, 2], num_envs=4000, window_size=4,
                               end_policy=policy, seed=6)
        assert not np.array_equal(other[9]["start"], later["start"])


@pytest.mark.parametrize("make", [
    lambda **kw: SequentialSchedule(np.array([5, 9, 3, 17], np.int32), [0, 1, 2, 3], 12, 4,
                                    assignment="random", allow_wrap=False, random_start=True,
                                    seed=2, **kw),
    lambda **kw: SequentialSchedule(np.array([5, 9, 3, 17], np.int32), [3, 2], 12, 4, **kw),
    lambda **kw: RandomSchedule(np.array([5, 9, 3, 17], np.int32), [0, 1, 3], 12, 4, seed=4, **kw),
])
def test_process_shards_union_equals_single_process(make):
    whole = make()
    for P in (2, 3, 4):
        shards = [make(process_index=p, process_count=P) for p in range(P)]
        for k in (0, 1, 7, 31):
            parts = [s[k] for s in shards]
            for f in FIELDS:
                np.testing.assert_array_equal(np.concatenate([x[f] for x in parts]), whole[k][f])


def test_sharding_error_names_counts():
    with pytest.raises(ShardingError, match="num_envs=10 is not divisible by process_count=4"):
        SequentialSchedule(np.array([5], np.int32), [0], 10, 4, process_count=4)


def test_int32_cursors_and_length_range():
    with pytest.raises(IndexOverflowError, match="length 2147483648"):
        SequentialSchedule(np.array([5, 2**31], np.int64), [0], 2, 4)
    with pytest.raises(WindowIndexError, match="length 0"):
        RandomSchedule(np.array([0, 5], np.int64), [1], 2, 4)
    # Longest allowed trajectory: starts near 2**31 stay exact in int32.
    sched = SequentialSchedule(np.array([2**31 - 1], np.int64), [0], 1, 2**30, allow_wrap=True)
    assert sched[1]["start"].dtype == np.int32 and int(sched[1]["start"][0]) == 2**30
    assert int(sched[2]["start"][0]) == (2 * 2**30) % (2**31 - 1)


def test_bad_arguments():
    lengths = np.array([5, 6], np.int32)
    with pytest.raises(ConfigError, match="empty"):
        SequentialSchedule(lengths, [], 2, 4)
    with pytest.raises(ConfigError, match="out of range"):
        SequentialSchedule(lengths, [0, 2], 2, 4)
    with pytest.raises(ConfigError, match="window_size=0"):
        RandomSchedule(lengths, [0], 2, 0)
    sched = SequentialSchedule(lengths, [0], 2, 4, num_batches=3)
    assert len(sched) == 3 and len(SequentialSchedule(lengths, [0], 2, 4)) == schedules.ENDLESS
    with pytest.raises(IndexError):
        sched[3]


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=5),
       W=st.integers(1, 9), S=st.integers(1, 12), s0=st.integers(0, 39))
def test_pass_chunks_counts_marching_steps(lengths, W, S, s0):
    L = lengths[0]
    s0 = s0 % L
    steps, s = 1, s0  # march until the window reaches the end or the next start is outside
    while not (s + W >= L or s + S >= L):
        s, steps = s + S, steps + 1
    assert schedules.pass_chunks(L, s0, W, S) == steps


def test_schedule_pickles_for_worker_processes():
    import pickle
    sched = SequentialSchedule(np.array([5, 9, 3], np.int32), [0, 1, 2], 4, 2, assignment="random",
                               allow_wrap=False, seed=9)
    clone = pickle.loads(pickle.dumps(sched))
    for k in (0, 3, 50):
        for f in FIELDS:
            np.testing.assert_array_equal(clone[k][f], sched[k][f])
