"""Closed-form arithmetic of a step cursor marching through trajectories (used by the schedules).

Pure functions of lengths, steps and chunk indices: no state, no loop over chunks. Steps are
trajectory-local int32 cursors (DESIGN "Conventions"); lengths must be in ``[1, 2**31 - 1]``
(:func:`check_lengths`). Chunk indices are int64 (up to ``2**62``); every product that could
leave int64 is split with ``divmod`` first, and counts that are handed to JAX are range-checked
against int32 instead of being truncated.

Notation: trajectory length ``L``, window ``W``, stride ``S`` (steps between chunk starts),
first step of the episode ``s0``, chunk index ``k``.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.choices import INT32_MAX
from trajopt_loader.errors import ConfigError, IndexOverflowError, WindowIndexError


def check_lengths(lengths) -> np.ndarray:
    """Validate trajectory lengths; returns them as int64 ``[n_traj]``.

    Raises:
      WindowIndexError: a length < 1. IndexOverflowError: a length >= 2**31 (step cursors are
        trajectory-local int32).
      ConfigError: ``lengths`` is not a non-empty 1-D integer array.
    """
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(
            f"lengths must be a non-empty 1-D integer array, got shape {arr.shape} "
            f"dtype {arr.dtype}"
        )
    arr = arr.astype(np.int64)
    for bad, error, what in (
        (arr < 1, WindowIndexError, "has no steps; drop empty trajectories"),
        (
            arr > INT32_MAX,
            IndexOverflowError,
            "does not fit the int32 step cursors (JAX truncates int64 without "
            "x64); split longer trajectories at export",
        ),
    ):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise error(
                f"trajectory {i} has length {int(arr[i])}, which {what}. Lengths must "
                "be in [1, 2**31 - 1]."
            )
    return arr


def valid_start_counts(lengths, window_size: int, end_policy: str) -> np.ndarray:
    """Number of valid window starts per trajectory, int64 ``[n]``.

    ``wrap``: every step ``[0, L)``; ``clamp``: starts whose window fits, ``[0, max(1, L-W+1))``
    (a trajectory shorter than the window keeps one start, clamp-padded with ``valid=False``).
    """
    lengths = np.asarray(lengths, np.int64)
    if end_policy == "wrap":
        return lengths.copy()
    return np.maximum(1, lengths - window_size + 1)


def pass_chunks(lengths, first_step, window_size: int, stride: int) -> np.ndarray:
    """Chunks of one sequential pass over trajectories of ``lengths`` from ``first_step``, int64.

    ``min(ceil((L-s0)/S), 1 + max(0, ceil((L-s0-W)/S)))``: stop after the window that reaches the
    last frame, and never start at or past ``L``. Always >= 1 for ``0 <= s0 < L``.
    """
    rem = np.asarray(lengths, np.int64) - np.asarray(first_step, np.int64)
    starts_inside = -(-rem // stride)
    to_reach_end = 1 + np.maximum(0, -((window_size - rem) // stride))
    return np.minimum(starts_inside, to_reach_end)


def wrap_cursor(
    first_step, k: int, stride: int, lengths, env_ids=None
) -> tuple[np.ndarray, np.ndarray]:
    """Start and loop count of chunk ``k`` of a cursor that wraps within its trajectory.

    The cursor's unwrapped position is ``a = s0 + k*S``; the chunk starts at ``a mod L`` after
    ``floor(a / L)`` completed passes (the number of times the cursor went from ``L-1`` to ``0``
    since the episode began at ``s0``). Computed exactly without forming ``k*S`` (which can leave
    int64): with ``k = q*L + r``, ``a = q*S*L + (s0 + r*S)``, so the loop count is
    ``q*S + (s0 + r*S) // L`` and the start ``(s0 + r*S) mod L``.

    Args:
      first_step: int ``[E]`` episode first steps ``s0`` in ``[0, L)``.
      k: chunk index in ``[0, 2**62]``. stride: ``S`` in ``[1, 2**31 - 1]``.
      lengths: int ``[E]`` trajectory lengths ``L`` in ``[1, 2**31 - 1]``.
      env_ids: int ``[E]`` global env ids, only to name the env in errors (default row index).

    Returns:
      ``(start [E] int64 in [0, L), loop [E] int64 in [0, 2**31 - 1])``.

    Raises:
      IndexOverflowError: a loop count above ``2**31 - 1`` (it is emitted as int32), naming the
        env, chunk, length and stride.
    """
    lengths = np.asarray(lengths, np.int64)
    q, r = np.divmod(np.int64(k), lengths)
    head = np.asarray(first_step, np.int64) + r * np.int64(stride)  # < 2**62: no overflow
    over = q > (INT32_MAX - head // lengths) // np.int64(stride)  # q*S + head//L > INT32_MAX
    if over.any():
        e = int(np.flatnonzero(over)[0])
        env = e if env_ids is None else int(np.asarray(env_ids)[e])
        raise IndexOverflowError(
            f"env {env} at chunk {k}: the cursor has wrapped more than 2**31 - 1 times around its "
            f"trajectory (length {int(lengths[e])}, stride {stride}), so the int32 loop counter "
            "would overflow. Bound the episodes: episode_length=STEPS, allow_wrap=False, or "
            "end_policy='clamp' (each pass a new episode)."
        )
    return head % lengths, q * np.int64(stride) + head // lengths
