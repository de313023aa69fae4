"""Window indices and end policy against a plain-Python oracle, directly and inside grain."""

from __future__ import annotations

import grain
import numpy as np
import pytest

from trajopt_loader.errors import ConfigError, IndexOverflowError, WindowIndexError
from trajopt_loader.transforms import WindowIndices, window_steps
from trajopt_loader.transforms.windows import window_loops


def oracle(L: int, start: int, W: int, policy: str) -> tuple[list[int], list[bool]]:
    steps, valid = [], []
    for w in range(W):
        t = start + w
        if policy == "wrap":
            steps.append(t % L)
            valid.append(True)
        else:
            steps.append(min(t, L - 1))
            valid.append(t < L)
    return steps, valid


def oracle_loops(L: int, start: int, W: int, policy: str, episode_loop: int) -> list[int]:
    """Walk the window: under wrap every step from L-1 back to 0 begins a new loop."""
    loops, s, loop = [], start, episode_loop
    for _ in range(W):
        loops.append(loop)
        s += 1
        if s == L and policy == "wrap":
            s, loop = 0, loop + 1
    return loops


def _grid(W):
    lengths = sorted({1, 3, max(1, W - 1), W, W + 1, 10 * W})
    return [(L, s) for L in lengths for s in sorted({0, 1 % L, L // 2, L - 1, max(0, L - W)})]


@pytest.mark.parametrize("W", [1, 2, 4, 7, 32])
@pytest.mark.parametrize("policy", ["wrap", "clamp"])
def test_window_steps_match_oracle_directly_and_in_grain(W, policy):
    pairs = _grid(W)
    lengths = np.array([L for L, _ in pairs], np.int32)
    starts = np.array([s for _, s in pairs], np.int32)
    step, valid = window_steps(lengths, starts, W, policy)
    assert step.dtype == np.int32 and valid.dtype == bool and step.shape == (len(pairs), W)
    for e, (L, s) in enumerate(pairs):
        want_step, want_valid = oracle(L, s, W, policy)
        assert step[e].tolist() == want_step, (L, s)
        assert valid[e].tolist() == want_valid, (L, s)
    # The same through the grain transform, as a pipeline stage.
    episode_loop = (np.arange(len(pairs)) % 3 * 1000).astype(np.int32)
    element = {
        "traj_id": np.arange(len(pairs), dtype=np.int32),
        "start": starts,
        "episode_loop": episode_loop,
    }
    transform = WindowIndices(lengths, W, policy)
    direct = transform.map(element)
    piped = next(
        iter(
            grain.MapDataset.source([element])
            .map(transform)
            .to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
        )
    )
    for out in (direct, piped):
        np.testing.assert_array_equal(out["step"], step)
        np.testing.assert_array_equal(out["valid"], valid)
        np.testing.assert_array_equal(out["start"], starts)  # other entries pass through
        assert out["loop"].dtype == np.int32 and out["loop"].shape == (len(pairs), W)
        for e, (L, s) in enumerate(pairs):
            assert out["loop"][e].tolist() == oracle_loops(L, s, W, policy, episode_loop[e]), (L, s)
    no_episode_loop = transform.map({"traj_id": element["traj_id"], "start": starts})
    np.testing.assert_array_equal(no_episode_loop["loop"], direct["loop"] - episode_loop[:, None])


def test_short_trajectory_is_clamp_padded_not_dropped():
    # a short trajectory: length 3, window 4, no wrap -> the last frame repeated, marked invalid;
    # with wrap it wraps.
    step, valid = window_steps([3], [0], 4, "clamp")
    assert step.tolist() == [[0, 1, 2, 2]] and valid.tolist() == [[True, True, True, False]]
    step, valid = window_steps([3], [0], 4, "wrap")
    assert step.tolist() == [[0, 1, 2, 0]] and valid.all()


def test_indices_near_int32_limit_do_not_overflow():
    L = 2**31 - 1
    step, valid = window_steps([L, L], [L - 2, L - 1], 4, "clamp")
    assert step.dtype == np.int32
    assert step.tolist() == [[L - 2, L - 1, L - 1, L - 1], [L - 1] * 4]
    assert valid.tolist() == [[True, True, False, False], [True, False, False, False]]
    step, _ = window_steps([L], [L - 1], 3, "wrap")
    assert step.tolist() == [[L - 1, 0, 1]]


def test_out_of_range_start_and_traj_raise_with_names():
    with pytest.raises(WindowIndexError, match=r"env row 1: window start 5 is outside \[0, 5\)"):
        window_steps([4, 5], [0, 5], 2, "wrap")
    with pytest.raises(WindowIndexError, match="start -1"):
        window_steps([4], [-1], 2, "clamp")
    with pytest.raises(WindowIndexError, match="traj_id"):
        WindowIndices([4, 5], 2).map({"traj_id": np.array([2]), "start": np.array([0])})
    with pytest.raises(ConfigError, match="end_policy='pad'"):
        WindowIndices([4], 2, "pad")
    with pytest.raises(ConfigError, match="window_size=0"):
        WindowIndices([4], 0)


def test_loops_by_hand_and_int32_range():
    # A window of 7 over a trajectory of 3 from step 2: steps 2 0 1 2 0 1 2.
    assert window_loops([3], [2], 7, "wrap", [4]).tolist() == [[4, 5, 5, 5, 6, 6, 6]]
    assert window_loops([3], [2], 7, "clamp", [4]).tolist() == [[4] * 7]
    top = 2**31 - 1
    assert window_loops([3], [0], 3, "wrap", [top]).tolist() == [[top] * 3]
    with pytest.raises(IndexOverflowError, match="env row 1: loop counts"):
        window_loops([3, 3], [0, 2], 2, "wrap", [top, top])
