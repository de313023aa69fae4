"""Step-cursor arithmetic (pipeline/marching.py) against plain-Python marching and big ints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trajopt_loader.errors import ConfigError, IndexOverflowError, WindowIndexError
from trajopt_loader.pipeline import marching


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    W=st.integers(1, 9),
    S=st.integers(1, 12),
    s0=st.integers(0, 39),
)
def test_pass_chunks_counts_marching_steps(lengths, W, S, s0):
    L = lengths[0]
    s0 = s0 % L
    steps, s = 1, s0  # march until the window reaches the end or the next start is outside
    while not (s + W >= L or s + S >= L):
        s, steps = s + S, steps + 1
    assert marching.pass_chunks(L, s0, W, S) == steps


@settings(max_examples=60, deadline=None)
@given(L=st.integers(1, 50), S=st.integers(1, 70), s0=st.integers(0, 49), k=st.integers(0, 300))
def test_wrap_cursor_walks_like_a_cursor(L, S, s0, k):
    s0 %= L
    s, loop = s0, 0
    for _ in range(k * S):  # one step at a time; a pass ends when L-1 goes back to 0
        s += 1
        if s == L:
            s, loop = 0, loop + 1
    start, loops = marching.wrap_cursor([s0], k, S, [L])
    assert (int(start[0]), int(loops[0])) == (s, loop)


@pytest.mark.parametrize(
    "L, S, s0", [(7, 3, 0), (2**31 - 1, 2**31 - 1, 2**31 - 2), (1, 1, 0), (13, 2**30, 12)]
)
def test_wrap_cursor_far_chunks_are_exact_up_to_the_int32_limit(L, S, s0):
    # Python ints as the oracle: a = s0 + k S, start = a mod L, loops = a // L.
    k_last = ((2**31 - 1) * L + L - 1 - s0) // S  # last chunk whose loop count fits int32
    for k in [k for k in (0, 1, 12345, k_last - 1, k_last) if 0 <= k <= k_last]:
        start, loops = marching.wrap_cursor([s0], k, S, [L])
        assert (int(start[0]), int(loops[0])) == ((s0 + k * S) % L, (s0 + k * S) // L)
    assert (s0 + k_last * S) // L <= 2**31 - 1 < (s0 + (k_last + 1) * S) // L
    with pytest.raises(IndexOverflowError, match=f"env 5 at chunk {k_last + 1}:"):
        marching.wrap_cursor([s0], k_last + 1, S, [L], env_ids=[5])
    with pytest.raises(IndexOverflowError, match="loop counter"):
        marching.wrap_cursor([s0], 2**62, S, [L])


def test_valid_start_counts_and_check_lengths():
    np.testing.assert_array_equal(marching.valid_start_counts([3, 4, 10], 4, "clamp"), [1, 1, 7])
    np.testing.assert_array_equal(marching.valid_start_counts([3, 4, 10], 4, "wrap"), [3, 4, 10])
    assert marching.check_lengths(np.array([1, 2**31 - 1], np.int32)).dtype == np.int64
    with pytest.raises(WindowIndexError, match="trajectory 1 has length 0"):
        marching.check_lengths([4, 0])
    with pytest.raises(IndexOverflowError, match="trajectory 0 has length 2147483648"):
        marching.check_lengths(np.array([2**31], np.int64))
    with pytest.raises(ConfigError, match="non-empty 1-D integer"):
        marching.check_lengths([1.5])
