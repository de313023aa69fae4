"""Schedules against a step-by-step oracle that marches every env by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from trajopt_loader.errors import ConfigError, IndexOverflowError, ShardingError, WindowIndexError
from trajopt_loader.pipeline import schedules
from trajopt_loader.pipeline.schedules import RandomSchedule
from trajopt_loader.pipeline.sequential import SequentialSchedule

FIELDS = ("env_id", "traj_id", "start", "episode_start", "episode_first_step", "episode_loop")


def _cycle_order(sched: SequentialSchedule, c: int) -> list[int]:
    """Documented order of cycle c: identity, or the permutation keyed by (seed, c)."""
    if sched.assignment == "random":
        return list(
            schedules.keyed_rng(sched.seed, schedules.RNG_PERM, c).permutation(sched.eligible.size)
        )
    return list(range(sched.eligible.size))


def _env_positions(sched: SequentialSchedule, env: int):
    """Positions into `eligible` an env visits: cycle 0 from its offset, then whole cycles."""
    n = sched.eligible.size
    offset = (
        schedules.keyed_rng(sched.seed, schedules.RNG_OFFSET).integers(0, n, size=sched.num_envs)[
            env
        ]
        if sched.assignment == "random"
        else env % n
    )
    yield from _cycle_order(sched, 0)[offset:]
    for c in itertools.count(1):
        yield from _cycle_order(sched, c)


def oracle_sequential(sched: SequentialSchedule, num_chunks: int, first_steps) -> dict:
    """March every env chunk by chunk, one step at a time, with plain Python (the behaviour the
    module docstring documents; no modulo or pass-count formula of the implementation)."""
    W, S = sched.window_size, sched.stride
    out = {f: np.zeros((num_chunks, sched.num_envs), np.int64) for f in FIELDS}
    for e in range(sched.num_envs):
        positions = _env_positions(sched, e)
        traj = int(sched.eligible[next(positions)])
        s = first = int(first_steps[e])
        loop, new_episode = 0, True
        for k in range(num_chunks):
            for f, v in zip(FIELDS, (e, traj, s, new_episode, first, loop), strict=True):
                out[f][k, e] = v
            L = int(sched.lengths[traj])
            new_episode = False
            if sched.allow_wrap and sched.end_policy == "wrap":  # one endless episode
                for _ in range(S):  # walk the cursor; count every pass from L-1 back to 0
                    s += 1
                    if s == L:
                        s, loop = 0, loop + 1
                continue
            window_reaches_last_frame = L - 1 in range(s, s + W)
            next_start_outside = s + S > L - 1
            if not (window_reaches_last_frame or next_start_outside):
                s += S
                continue
            if not sched.allow_wrap:  # the pass is over: next trajectory of the sequence
                traj = int(sched.eligible[next(positions)])
            s = first = 0  # new episode (clamp: the same trajectory from its first frame)
            new_episode = True
    return out


def _stack(sched, num_chunks):
    rows = [sched[k] for k in range(num_chunks)]
    for k, r in enumerate(rows):
        assert int(r["chunk"]) == k and r["chunk"].dtype == np.int64
        for f in FIELDS:
            assert r[f].dtype == (bool if f == "episode_start" else np.int32), f
            assert r[f].shape == (sched.hi - sched.lo,), f
    return {f: np.stack([r[f] for r in rows]) for f in FIELDS}


W_GRID = (1, 4, 5)


def _lengths(W):
    return sorted({1, 3, max(1, W - 1), W, W + 1, 10 * W})


@pytest.mark.parametrize("W", W_GRID)
@pytest.mark.parametrize("stride", [None, 1, 3, 7])
@pytest.mark.parametrize("allow_wrap", [True, False])
@pytest.mark.parametrize("assignment", ["round_robin", "random"])
@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("end_policy", ["wrap", "clamp"])
def test_sequential_matches_oracle(W, stride, allow_wrap, assignment, random_start, end_policy):
    lengths = np.array(_lengths(W)[::-1] + [2 * W + 3], np.int32)
    eligible = np.arange(lengths.size, dtype=np.int32)[::-1][:-1]  # a subset, out of order
    sched = SequentialSchedule(
        lengths,
        eligible,
        num_envs=7,
        window_size=W,
        stride=stride,
        assignment=assignment,
        allow_wrap=allow_wrap,
        end_policy=end_policy,
        random_start=random_start,
        seed=3,
    )
    got = _stack(sched, 45)
    first = got["start"][0]
    if random_start:  # valid starts: clamp [0, max(1, L - W + 1)), wrap [0, L)
        L = lengths[got["traj_id"][0]]
        high = np.maximum(1, L - W + 1) if end_policy == "clamp" else L
        assert ((first >= 0) & (first < high)).all()
    else:
        assert (first == 0).all()
    want = oracle_sequential(sched, 45, first)
    for f in FIELDS:
        np.testing.assert_array_equal(got[f], want[f], err_msg=f)


def test_round_robin_first_assignment_and_explicit_list():
    lengths = np.array([10, 20, 30, 40], np.int32)
    rr = SequentialSchedule(lengths, [1, 3], num_envs=5, window_size=4)
    np.testing.assert_array_equal(rr[0]["traj_id"], [1, 3, 1, 3, 1])
    explicit = SequentialSchedule(
        lengths, [2, 2, 0, 3, 1], num_envs=5, window_size=4, assignment="explicit", allow_wrap=False
    )
    np.testing.assert_array_equal(explicit[0]["traj_id"], [2, 2, 0, 3, 1])
    # env 2 plays traj 0 (10 steps, 3 chunks of 4), then advances to the next list entry (3).
    np.testing.assert_array_equal([explicit[k]["traj_id"][2] for k in range(4)], [0, 0, 0, 3])
    np.testing.assert_array_equal([explicit[k]["start"][2] for k in range(4)], [0, 4, 8, 0])


def test_wrap_start_far_chunk_closed_form():
    lengths = np.array([7, 11, 13], np.int32)
    sched = SequentialSchedule(lengths, [0, 1, 2], num_envs=3, window_size=5, stride=3, seed=1)
    k = 5 * 10**9 + 17  # no loop over k: exact big-int arithmetic as the oracle
    el = sched[k]
    np.testing.assert_array_equal(el["start"], [(k * 3) % L for L in (7, 11, 13)])
    np.testing.assert_array_equal(el["episode_loop"], [(k * 3) // L for L in (7, 11, 13)])
    assert int(el["episode_loop"][0]) == 2142857150  # close to the int32 limit, still exact
    assert not el["episode_start"].any() and sched[0]["episode_start"].all()
    with pytest.raises(
        IndexOverflowError,
        match=r"env 0 at chunk 1000000000017: .* \(length 7, "
        "stride 3",
    ):
        sched[10**12 + 17]  # 4.3e11 loops do not fit the int32 counter: refused, not wrapped


def test_wrap_and_clamp_passes_by_hand():
    # L = 10, W = S = 4. wrap: the cursor continues modulo L, loops count the passes.
    wrap = SequentialSchedule([10], [0], 1, 4, allow_wrap=True, end_policy="wrap")
    rows = [wrap[k] for k in range(8)]
    assert [int(r["start"][0]) for r in rows] == [0, 4, 8, 2, 6, 0, 4, 8]
    assert [int(r["episode_loop"][0]) for r in rows] == [0, 0, 0, 1, 1, 2, 2, 2]
    assert [bool(r["episode_start"][0]) for r in rows] == [True] + [False] * 7
    # clamp: the pass ending with the padded window 8..11 is followed by step 0, a new episode;
    # every frame is shown (no 9 -> 2 jump that skips frames 0-1).
    clamp = SequentialSchedule([10], [0], 1, 4, allow_wrap=True, end_policy="clamp")
    rows = [clamp[k] for k in range(8)]
    assert [int(r["start"][0]) for r in rows] == [0, 4, 8, 0, 4, 8, 0, 4]
    assert [bool(r["episode_start"][0]) for r in rows] == [True, False, False] * 2 + [True, False]
    assert all(
        int(r["episode_first_step"][0]) == 0 and int(r["episode_loop"][0]) == 0 for r in rows
    )
    # A random first start: the first pass runs from it, later passes from 0.
    lengths = np.array([10], np.int32)
    rnd = SequentialSchedule(
        lengths, [0], 8, 4, allow_wrap=True, end_policy="clamp", random_start=True, seed=1
    )
    s0 = rnd[0]["start"]
    assert len(set(s0.tolist())) > 1 and (s0 <= 6).all()
    for e, first in enumerate(s0.tolist()):
        n_first = 1 + sum(1 for s in range(first, 10, 4) if s + 4 < 10)  # last window: s+4 >= 10
        after = rnd[n_first]
        assert (int(after["start"][e]), bool(after["episode_start"][e])) == (0, True), (e, first)


@pytest.mark.parametrize("assignment", ["round_robin", "explicit"])
def test_move_on_is_periodic_in_the_cycle_length(assignment):
    lengths = np.array([5, 9, 3, 17], np.int32)
    ids = [0, 1, 2, 3] if assignment == "round_robin" else [3, 1, 1, 0]
    sched = SequentialSchedule(
        lengths, ids, num_envs=6, window_size=4, stride=3, assignment=assignment, allow_wrap=False
    )
    period = sum(
        min(math.ceil(lengths[i] / 3), 1 + max(0, math.ceil((lengths[i] - 4) / 3))) for i in ids
    )
    assert sched.cycle_total == period
    for k in (0, 5, 11):
        for m in (1, 10**9):
            a, b = sched[k], sched[k + m * period]
            for f in FIELDS:
                np.testing.assert_array_equal(a[f], b[f])


def test_random_windows_valid_uniform_and_order_free():
    lengths = np.array([3, 10, 40], np.int32)
    for policy, counts in (("clamp", [1, 7, 37]), ("wrap", [3, 10, 40])):
        sched = RandomSchedule(
            lengths, [0, 1, 2], num_envs=4000, window_size=4, end_policy=policy, seed=5
        )
        later = sched[9]
        el = sched[2]
        assert el["episode_start"].all()
        np.testing.assert_array_equal(el["episode_first_step"], el["start"])
        assert (el["start"] < np.array(counts)[el["traj_id"]]).all() and (el["start"] >= 0).all()
        # Trajectories weighted by their number of valid starts (binomial, 6 sigma).
        p = np.array(counts) / sum(counts)
        freq = np.bincount(el["traj_id"], minlength=3)
        assert (np.abs(freq - 4000 * p) < 6 * np.sqrt(4000 * p * (1 - p)) + 1).all()
        again = RandomSchedule(
            lengths, [0, 1, 2], num_envs=4000, window_size=4, end_policy=policy, seed=5
        )
        np.testing.assert_array_equal(again[9]["start"], later["start"])  # computed out of order
        other = RandomSchedule(
            lengths, [0, 1, 2], num_envs=4000, window_size=4, end_policy=policy, seed=6
        )
        assert not np.array_equal(other[9]["start"], later["start"])


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: SequentialSchedule(
            np.array([5, 9, 3, 17], np.int32),
            [0, 1, 2, 3],
            12,
            4,
            assignment="random",
            allow_wrap=False,
            random_start=True,
            seed=2,
            **kw,
        ),
        lambda **kw: SequentialSchedule(np.array([5, 9, 3, 17], np.int32), [3, 2], 12, 4, **kw),
        lambda **kw: RandomSchedule(
            np.array([5, 9, 3, 17], np.int32), [0, 1, 3], 12, 4, seed=4, **kw
        ),
    ],
)
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


def test_schedule_pickles_for_worker_processes():
    import pickle

    sched = SequentialSchedule(
        np.array([5, 9, 3], np.int32),
        [0, 1, 2],
        4,
        2,
        assignment="random",
        allow_wrap=False,
        seed=9,
    )
    clone = pickle.loads(pickle.dumps(sched))
    for k in (0, 3, 50):
        for f in FIELDS:
            np.testing.assert_array_equal(clone[k][f], sched[k][f])


def _rows(sched, ks):
    """(traj_id, start, episode_start, episode_first_step, episode_loop) of every env per chunk."""
    out = []
    for k in ks:
        e = sched[k]
        out.append(
            [
                (
                    int(e["traj_id"][i]),
                    int(e["start"][i]),
                    bool(e["episode_start"][i]),
                    int(e["episode_first_step"][i]),
                    int(e["episode_loop"][i]),
                )
                for i in range(sched.hi - sched.lo)
            ]
        )
    return out


def test_bounded_episodes_by_hand():
    # wrap: L=6, W=S=4, episode_length=10 -> ceil(10/4) = 3 chunks, then restart at s0 = 0.
    s = SequentialSchedule([6], [0], 1, 4, episode_length=10)
    assert s.episode_chunks == 3
    assert [r[0] for r in _rows(s, range(7))] == [
        (0, 0, True, 0, 0),
        (0, 4, False, 0, 0),
        (0, 2, False, 0, 1),  # 8 mod 6, one wrap
        (0, 0, True, 0, 0),
        (0, 4, False, 0, 0),
        (0, 2, False, 0, 1),
        (0, 0, True, 0, 0),
    ]
    # element k is a pure function of k: a far chunk by hand, 10**12 = 3 * 333333333333 + 1
    assert _rows(s, [10**12])[0][0] == (0, 4, False, 0, 0)
    # unbounded (None or 0): one endless episode, loops grow
    for unbounded in (None, 0):
        u = SequentialSchedule([6], [0], 1, 4, episode_length=unbounded)
        assert u.episode_chunks is None
        assert [r[0] for r in _rows(u, [3, 4])] == [(0, 0, False, 0, 2), (0, 4, False, 0, 2)]

    # move on: lengths 20 and 6, two round-robin envs, W=S=4, episode_length=8 -> 2 chunks per
    # episode (a pass over traj 0 alone would take 5).
    s = SequentialSchedule([20, 6], [0, 1], 2, 4, allow_wrap=False, episode_length=8)
    assert _rows(s, range(5)) == [
        [(0, 0, True, 0, 0), (1, 0, True, 0, 0)],
        [(0, 4, False, 0, 0), (1, 4, False, 0, 0)],
        [(1, 0, True, 0, 0), (0, 0, True, 0, 0)],
        [(1, 4, False, 0, 0), (0, 4, False, 0, 0)],
        [(0, 0, True, 0, 0), (1, 0, True, 0, 0)],
    ]
    # unbounded: env 0 marches over all of traj 0 (starts 0, 4, 8, 12, 16) first
    u = SequentialSchedule([20, 6], [0, 1], 2, 4, allow_wrap=False)
    assert [r[0][:3] for r in _rows(u, range(6))] == [
        (0, 0, True),
        (0, 4, False),
        (0, 8, False),
        (0, 12, False),
        (0, 16, False),
        (1, 0, True),
    ]

    # clamp + allow_wrap: each pass restarts at 0; episode_length=6 -> 2 chunks per episode
    s = SequentialSchedule([20], [0], 1, 4, end_policy="clamp", episode_length=6)
    assert [r[0][1:3] for r in _rows(s, range(5))] == [
        (0, True),
        (4, False),
        (0, True),
        (4, False),
        (0, True),
    ]
    # random first starts: episodes restart at the env's s0 in wrap mode
    s = SequentialSchedule([50], [0], 3, 4, random_start=True, episode_length=8)
    first = s[0]["start"]
    np.testing.assert_array_equal(s[2]["start"], first)
    np.testing.assert_array_equal(s[2]["episode_first_step"], first)
    assert s[2]["episode_start"].all() and not s[1]["episode_start"].any()
    with pytest.raises(ConfigError, match="episode_length=-1"):
        SequentialSchedule([6], [0], 1, 4, episode_length=-1)
