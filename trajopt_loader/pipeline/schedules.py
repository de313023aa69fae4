"""Schedules: which trajectory and start step every env reads at chunk ``k``.

A schedule is a grain random-access source (``__len__``, ``__getitem__(k)``). Element ``k`` is
one whole env-batch (DESIGN decision 1) for this process's envs ``E_local``::

    {"env_id": [E_local] int32, "traj_id": [E_local] int32, "start": [E_local] int32,
     "episode_start": [E_local] bool, "episode_first_step": [E_local] int32, "chunk": () int64}

Element ``k`` is a pure function of (arguments, seed, k) (DESIGN decision 2): no state, no loop
over ``k``, vectorized over envs. Random draws come from ``Philox`` seeded by
``SeedSequence(seed, spawn_key=(purpose, k))``, made for all ``E`` envs and sliced to this
process's shard, so any order and any process give the same values (union over processes ==
single-process element).

Steps are trajectory-local int32 cursors (DESIGN "Conventions"); lengths must be in
``[1, 2**31 - 1]`` (:func:`check_lengths`).

Sequential marching (DeepMimic style), stride ``S`` (default ``W``), window ``W``:

* An env's episode on a trajectory of length ``L`` starting at step ``s0`` reads chunks starting
  at ``s0, s0+S, s0+2S, ...``. "At the trajectory end" means: the chunk whose window reaches the
  last frame (``start + W >= L``) is the last chunk of the pass, and no chunk starts at or past
  ``L``. So a pass has ``n(L, s0) = min(ceil((L-s0)/S), 1 + max(0, ceil((L-s0-W)/S)))`` chunks
  (``ceil(L/W)`` for ``S = W, s0 = 0``). What a window reads past the end is up to the window
  transform's ``end_policy`` (wrap: modulo ``L``; clamp: last frame, ``valid=False``).
* ``allow_wrap=True``: the env keeps its trajectory forever, one episode; start of chunk ``k`` is
  ``(s0 + k*S) mod L`` (the start wraps within the episode).
* ``allow_wrap=False``: after a pass the env moves on to the next trajectory of its sequence, a
  new episode starting at step 0 (``episode_start=True``). Closed form: the sequence is a
  concatenation of *cycles*, each visiting every eligible trajectory once; every cycle therefore
  lasts the same ``T = sum_i n(L_i, 0)`` chunks. Element ``k`` takes ``k`` modulo ``T`` and one
  ``searchsorted`` over the cycle's cumulative chunk counts; O(E log n) per element, nothing
  precomputed beyond the ``n`` eligible trajectories.

Assignment (the order in which an env visits trajectories): ``round_robin``: every cycle is the
eligible list in order, env ``e`` begins at position ``e mod n`` (first plays ``eligible[e % n]``,
then advances round-robin); ``random``: cycle ``c`` is a permutation of the eligible list keyed
by ``(seed, c)``, env ``e`` begins cycle 0 at a seeded random position; ``explicit``: round-robin
over the given ids (duplicates allowed; ``E`` ids give env ``e`` trajectory ``ids[e]``).

The first episode starts at ``s0 = 0``, or (``random_start=True``) at a seeded random valid
start (:func:`valid_start_counts`).

Random windows (``RandomSchedule``): every env draws a window uniformly over all valid
(trajectory, start) pairs of the eligible trajectories (so trajectories are weighted by their
number of valid starts), keyed by ``(seed, k)``. Each window is its own episode.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.errors import (ConfigError, IndexOverflowError, ShardingError,
                                   WindowIndexError)

INT32_MAX = 2**31 - 1
ENDLESS = 2**62  # length of an endless schedule (int64-safe chunk arithmetic; ~forever)
ASSIGNMENTS = ("round_robin", "random", "explicit")
END_POLICIES = ("wrap", "clamp")
_OFFSET, _START, _PERM, _WINDOW = 1, 2, 3, 4  # spawn_key purposes of the generator


def _rng(seed: int, *words: int) -> np.random.Generator:
    """Counter-based generator keyed by ``(seed, *words)``; independent of call order."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(int(seed), spawn_key=words)))


def check_lengths(lengths) -> np.ndarray:
    """Validate trajectory lengths; returns them as int64 ``[n_traj]``.

    Raises:
      WindowIndexError: a length < 1. IndexOverflowError: a length >= 2**31 (step cursors are
        trajectory-local int32).
      ConfigError: ``lengths`` is not a non-empty 1-D integer array.
    """
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"lengths must be a non-empty 1-D integer array, got shape {arr.shape} "
                          f"dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    for bad, error, what in ((arr < 1, WindowIndexError, "has no steps; drop empty trajectories"),
                             (arr > INT32_MAX, IndexOverflowError,
                              "does not fit the int32 step cursors (JAX truncates int64 without "
                              "x64); split longer trajectories at export")):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise error(f"trajectory {i} has length {int(arr[i])}, which {what}. Lengths must "
                        "be in [1, 2**31 - 1].")
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


def env_shard(num_envs: int, process_index: int, process_count: int) -> tuple[int, int]:
    """Env rows ``[lo, hi)`` of process ``process_index`` out of ``process_count``.

    Raises:
      ShardingError: ``num_envs`` not divisible by ``process_count``, or a bad index.
    """
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ShardingError(f"process_index={process_index} must be in [0, process_count="
                            f"{process_count}) with process_count >= 1")
    if num_envs % process_count:
        raise ShardingError(
            f"num_envs={num_envs} is not divisible by process_count={process_count}; every "
            "process must hold the same number of envs. Set num_envs to a multiple of "
            f"{process_count} (e.g. {num_envs - num_envs % process_count or process_count}).")
    per = num_envs // process_count
    return process_index * per, (process_index + 1) * per


class _Schedule:
    """Common part of the schedules: validation, env shard, grain source protocol.

    ``num_batches`` None gives an endless schedule (length ``ENDLESS``). ``__getitem__(k)``
    raises ``IndexError`` outside ``[0, len)``.
    """

    def __init__(self, lengths, eligible, num_envs: int, window_size: int, *, seed: int = 0,
                 process_index: int = 0, process_count: int = 1, num_batches: int | None = None):
        self.lengths = check_lengths(lengths)
        eligible = np.asarray(eligible)
        if eligible.ndim != 1 or eligible.size == 0:
            raise ConfigError("no trajectories to schedule: the selection (sources / motions / "
                              "traj_ids) is empty; check the names against store.motions()")
        if eligible.min() < 0 or eligible.max() >= self.lengths.size:
            raise ConfigError(f"trajectory ids {eligible.min()}..{eligible.max()} out of range: "
                              f"there are {self.lengths.size} trajectories")
        for name, value in (("num_envs", num_envs), ("window_size", window_size)):
            if not 1 <= int(value) <= INT32_MAX:
                raise ConfigError(f"{name}={value} must be in [1, 2**31 - 1]")
        if (num_batches is not None and not 1 <= int(num_batches) <= 2**62) or int(seed) < 0:
            raise ConfigError(f"num_batches={num_batches} must be in [1, 2**62] (or None for "
                              f"endless) and seed={seed} >= 0")
        self.eligible = eligible.astype(np.int64)
        self.num_envs, self.window_size, self.seed = int(num_envs), int(window_size), int(seed)
        self.lo, self.hi = env_shard(self.num_envs, int(process_index), int(process_count))
        self.env_id = np.arange(self.lo, self.hi, dtype=np.int32)
        self.num_batches = None if num_batches is None else int(num_batches)

    def __len__(self) -> int:
        return ENDLESS if self.num_batches is None else self.num_batches

    def __getitem__(self, k) -> dict[str, np.ndarray]:
        if isinstance(k, slice) or not 0 <= int(k) < len(self):
            raise IndexError(f"chunk index {k!r} out of range [0, {len(self)})")
        k = int(k)
        traj, start, episode_start, first_step = self._element(k)
        if (start < 0).any() or (start >= self.lengths[traj]).any():  # invariant, cheap
            raise WindowIndexError(f"schedule produced a start outside its trajectory at chunk {k}")
        return {"env_id": self.env_id.copy(), "traj_id": traj.astype(np.int32),
                "start": start.astype(np.int32), "episode_start": episode_start,
                "episode_first_step": first_step.astype(np.int32), "chunk": np.array(k, np.int64)}

    def _element(self, k: int):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(envs [{self.lo}, {self.hi}) of {self.num_envs}, W={self.window_size})"


class SequentialSchedule(_Schedule):
    """DeepMimic-style marching through trajectories (see module docstring for exact rules).

    Args:
      lengths: int ``[n_traj]`` lengths (steps) of all trajectories, indexed by traj_id.
      eligible: int ``[n]`` trajectory ids to play (``store.select(...)`` or explicit ids).
      num_envs: global number of envs ``E``; window_size: ``W`` steps.
      stride: steps between consecutive chunk starts (None = ``W``).
      assignment: ``round_robin`` | ``random`` | ``explicit`` (module docstring).
      allow_wrap: wrap the start within the trajectory (True) or move on to a new one (False).
      end_policy: ``wrap`` | ``clamp``; only sets the range of random initial starts.
      random_start: first episode starts at a seeded random valid start instead of 0.
      seed: int >= 0; process_index, process_count: :func:`env_shard`; num_batches: len or None.

    Raises: ConfigError, ShardingError, WindowIndexError, IndexOverflowError for bad arguments.
    """

    def __init__(self, lengths, eligible, num_envs: int, window_size: int, *,
                 stride: int | None = None, assignment: str = "round_robin",
                 allow_wrap: bool = True, end_policy: str = "wrap", random_start: bool = False,
                 **kwargs):
        super().__init__(lengths, eligible, num_envs, window_size, **kwargs)
        if assignment not in ASSIGNMENTS or end_policy not in END_POLICIES:
            raise ConfigError(f"assignment={assignment!r} / end_policy={end_policy!r}: expected "
                              f"one of {ASSIGNMENTS} / {END_POLICIES}")
        self.stride = self.window_size if stride is None else int(stride)
        if not 1 <= self.stride <= INT32_MAX:
            raise ConfigError(f"stride={stride} must be in [1, 2**31 - 1] (or None = window_size)")
        self.assignment, self.allow_wrap = assignment, bool(allow_wrap)
        n = self.eligible.size
        offset = (_rng(self.seed, _OFFSET).integers(0, n, size=self.num_envs)
                  if assignment == "random" else np.arange(self.num_envs) % n)
        self.lengths_elig = self.lengths[self.eligible]
        self.cycle_chunks = pass_chunks(self.lengths_elig, 0, self.window_size, self.stride)
        self.cycle_total = int(self.cycle_chunks.sum())
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        first_pos = self._cycle(0)[0][offset]  # position in eligible of each env's first episode
        first_len = self.lengths_elig[first_pos]
        first_step = np.zeros(self.num_envs, np.int64)
        if random_start:
            high = valid_start_counts(first_len, self.window_size, end_policy)
            first_step = _rng(self.seed, _START).integers(0, high)
        first_chunks = pass_chunks(first_len, first_step, self.window_size, self.stride)
        sl = slice(self.lo, self.hi)  # keep only this process's envs
        self.first_traj = self.eligible[first_pos][sl]
        self.first_len, self.first_step, self.first_chunks = first_len[sl], first_step[sl], \
            first_chunks[sl]
        # Position in the endless concatenation of cycles right after the first episode.
        self.after_first = self._cycle(0)[1][offset + 1][sl]

    def _cycle(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(order, cumulative chunks ``[n+1]``) of cycle ``c``: positions into ``eligible``."""
        key = c if self.assignment == "random" else 0  # round-robin cycles are all alike
        cached = self._cache.get(key)
        if cached is None:
            n = self.eligible.size
            order = _rng(self.seed, _PERM, key).permutation(n) if self.assignment == "random" \
                else np.arange(n)
            cached = (order, np.concatenate([[0], np.cumsum(self.cycle_chunks[order])]))
            if len(self._cache) > 8:  # envs only ever need 2-3 consecutive cycles at once
                self._cache = {}
            self._cache[key] = cached
        return cached

    def _element(self, k: int):
        if self.allow_wrap:
            length = self.first_len
            start = (self.first_step + (k % length) * (self.stride % length)) % length
            episode_start = np.full(start.shape, k == 0)
            return self.first_traj, start, episode_start, self.first_step
        traj = self.first_traj.copy()
        start = self.first_step + np.minimum(k, self.first_chunks - 1) * self.stride
        episode_start, first_step = np.full(start.shape, k == 0), self.first_step.copy()
        later = np.flatnonzero(k >= self.first_chunks)  # envs past their first episode
        if later.size:
            pos = self.after_first[later] + (k - self.first_chunks[later])
            cycle, rem = np.divmod(pos, self.cycle_total)
            for c in np.unique(cycle):  # envs span at most 2-3 consecutive cycles
                rows = cycle == c
                order, cum = self._cycle(int(c))
                idx = np.searchsorted(cum, rem[rows], side="right") - 1
                within = rem[rows] - cum[idx]
                env = later[rows]
                traj[env] = self.eligible[order[idx]]
                start[env] = within * self.stride
                episode_start[env] = within == 0
                first_step[env] = 0
        return traj, start, episode_start, first_step


class RandomSchedule(_Schedule):
    """Uniformly random windows: each env, each chunk, draws a valid (trajectory, start) pair.

    Args:
      lengths, eligible, num_envs, window_size, seed, process_index, process_count, num_batches:
        as in :class:`SequentialSchedule`.
      end_policy: ``clamp`` draws starts in ``[0, max(1, L-W+1))``; ``wrap`` in ``[0, L)``.

    Every window is its own episode: ``episode_start`` True, ``episode_first_step = start``.
    Draws for all envs are made and sliced to the shard (rejection sampling has no fixed stride).
    """

    def __init__(self, lengths, eligible, num_envs: int, window_size: int, *,
                 end_policy: str = "clamp", **kwargs):
        super().__init__(lengths, eligible, num_envs, window_size, **kwargs)
        if end_policy not in END_POLICIES:
            raise ConfigError(f"end_policy={end_policy!r}: expected one of {END_POLICIES}")
        counts = valid_start_counts(self.lengths[self.eligible], self.window_size, end_policy)
        self.cum_starts = np.concatenate([[0], np.cumsum(counts)])

    def _element(self, k: int):
        draw = _rng(self.seed, _WINDOW, k).integers(0, self.cum_starts[-1], size=self.num_envs)
        draw = draw[self.lo:self.hi]
        idx = np.searchsorted(self.cum_starts, draw, side="right") - 1
        start = draw - self.cum_starts[idx]
        return self.eligible[idx], start, np.ones(start.shape, bool), start
