"""Schedules: which trajectory and start step every env reads at chunk ``k``.

A schedule is a grain random-access source (``__len__``, ``__getitem__(k)``). Element ``k`` is
one whole env-batch (DESIGN decision 1) for this process's envs ``E_local``::

    {"env_id": [E_local] int32, "traj_id": [E_local] int32, "start": [E_local] int32,
     "episode_start": [E_local] bool, "episode_first_step": [E_local] int32,
     "episode_loop": [E_local] int32, "chunk": () int64}

``episode_loop`` = completed passes over the trajectory before ``start`` within the current
episode: how often the env's cursor went from step ``L-1`` back to ``0`` since the episode
began (0 for a fresh episode and for random windows). With ``end_policy="wrap"`` the window
transform continues the count inside the window (``loop [E, W]``), and ``transforms.cycles``
uses it to continue the base motion across the seam.

Element ``k`` is a pure function of (arguments, seed, k) (DESIGN decision 2): no state, no loop
over ``k``, vectorized over envs. Random draws come from ``Philox`` seeded by
``SeedSequence(seed, spawn_key=(purpose, k))``, made for all ``E`` envs and sliced to this
process's shard, so any order and any process give the same values (union over processes ==
single-process element). Step arithmetic (int32 range checks included): ``marching.py``.

Sequential marching (DeepMimic style), stride ``S`` (default ``W``), window ``W``:

* An env's episode on a trajectory of length ``L`` starting at step ``s0`` reads chunks starting
  at ``s0, s0+S, s0+2S, ...``. A *pass* ends with the chunk whose window reaches the last frame
  (``start + W >= L``), and no chunk starts at or past ``L``: ``n(L, s0)`` chunks
  (:func:`~trajopt_loader.pipeline.marching.pass_chunks`; ``ceil(L/W)`` for ``S = W, s0 = 0``).
  What a window reads past the end is up to the window transform's ``end_policy`` (wrap: modulo
  ``L``; clamp: last frame, ``valid=False``).
* ``allow_wrap=True, end_policy="wrap"``: the env keeps its trajectory forever, one episode;
  chunk ``k`` starts at ``(s0 + k*S) mod L`` after ``floor((s0 + k*S) / L)`` completed passes
  (``episode_loop``). Every step is shown, in order, loop after loop.
* ``allow_wrap=True, end_policy="clamp"``: the env keeps its trajectory, but each pass is its
  own episode: after the pass that reaches the end (its last window padded with
  ``valid=False``), the next chunk restarts at step 0 with ``episode_start=True``,
  ``episode_first_step=0`` (the padding broke the motion, so the consumer re-initializes). Passes
  after the first have ``n(L, 0)`` chunks; ``episode_loop`` is 0.
* ``allow_wrap=False``: after a pass the env moves on to the next trajectory of its sequence, a
  new episode starting at step 0 (``episode_start=True``, ``episode_loop`` 0). Closed form: the
  sequence is a concatenation of *cycles*, each visiting every eligible trajectory once; every
  cycle lasts the same ``T = sum_i n(L_i, 0)`` chunks. Element ``k`` takes ``k`` modulo ``T``
  and one ``searchsorted`` over the cycle's cumulative chunk counts; O(E log n) per element.

Assignment (the order in which an env visits trajectories): ``round_robin``: every cycle is the
eligible list in order, env ``e`` begins at position ``e mod n`` (first plays ``eligible[e % n]``,
then advances round-robin); ``random``: cycle ``c`` is a permutation of the eligible list keyed
by ``(seed, c)``, env ``e`` begins cycle 0 at a seeded random position; ``explicit``: round-robin
over the given ids (duplicates allowed; ``E`` ids give env ``e`` trajectory ``ids[e]``).

The first episode starts at ``s0 = 0``, or (``random_start=True``) at a seeded random valid
start (:func:`~trajopt_loader.pipeline.marching.valid_start_counts`).

Bounded episodes (``episode_length=N`` steps; None or 0 = unbounded): an episode lasts at most
``n_e = ceil(N / S)`` chunks (the chunks that start within its first ``N`` steps), the usual RL
time limit. Every episode count above is capped at ``n_e``: with ``allow_wrap=False`` the env
moves on to its next trajectory after ``min(n(L, s0), n_e)`` chunks; with ``end_policy="clamp"``
each pass restarts at step 0 after ``min(n(L, 0), n_e)`` chunks; with ``end_policy="wrap"`` the
env restarts its trajectory at ``s0`` every ``n_e`` chunks (chunk ``k`` is chunk ``k mod n_e`` of
an unbounded episode), so loop counts, and the base offsets ``transforms.cycles`` adds per loop,
stay below ``(s0 + n_e S) / L``.

Random windows (``RandomSchedule``): every env draws a window uniformly over all valid
(trajectory, start) pairs of the eligible trajectories (so trajectories are weighted by their
number of valid starts), keyed by ``(seed, k)``. Each window is its own episode.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.choices import ASSIGNMENTS, END_POLICIES, INT32_MAX
from trajopt_loader.errors import ConfigError, ShardingError, WindowIndexError
from trajopt_loader.pipeline.marching import (
    check_lengths,
    pass_chunks,
    valid_start_counts,
    wrap_cursor,
)

__all__ = [
    "ENDLESS",
    "RandomSchedule",
    "SequentialSchedule",
    "check_lengths",
    "env_shard",
    "pass_chunks",
    "valid_start_counts",
]

ENDLESS = 2**62  # length of an endless schedule (int64-safe chunk arithmetic; ~forever)
_OFFSET, _START, _PERM, _WINDOW = 1, 2, 3, 4  # spawn_key purposes of the generator


def _rng(seed: int, *words: int) -> np.random.Generator:
    """Counter-based generator keyed by ``(seed, *words)``; independent of call order."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(int(seed), spawn_key=words)))


def env_shard(num_envs: int, process_index: int, process_count: int) -> tuple[int, int]:
    """Env rows ``[lo, hi)`` of process ``process_index`` out of ``process_count``.

    Raises:
      ShardingError: ``num_envs`` not divisible by ``process_count``, or a bad index.
    """
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ShardingError(
            f"process_index={process_index} must be in [0, process_count="
            f"{process_count}) with process_count >= 1"
        )
    if num_envs % process_count:
        raise ShardingError(
            f"num_envs={num_envs} is not divisible by process_count={process_count}; every "
            "process must hold the same number of envs. Set num_envs to a multiple of "
            f"{process_count} (e.g. {num_envs - num_envs % process_count or process_count})."
        )
    per = num_envs // process_count
    return process_index * per, (process_index + 1) * per


class _Schedule:
    """Common part of the schedules: validation, env shard, grain source protocol.

    ``num_batches`` None gives an endless schedule (length ``ENDLESS``). ``__getitem__(k)``
    raises ``IndexError`` outside ``[0, len)``.
    """

    def __init__(
        self,
        lengths,
        eligible,
        num_envs: int,
        window_size: int,
        *,
        seed: int = 0,
        process_index: int = 0,
        process_count: int = 1,
        num_batches: int | None = None,
    ):
        self.lengths = check_lengths(lengths)
        eligible = np.asarray(eligible)
        if eligible.ndim != 1 or eligible.size == 0:
            raise ConfigError(
                "no trajectories to schedule: the selection (sources / motions / "
                "traj_ids) is empty; check the names against store.motions()"
            )
        if eligible.min() < 0 or eligible.max() >= self.lengths.size:
            raise ConfigError(
                f"trajectory ids {eligible.min()}..{eligible.max()} out of range: "
                f"there are {self.lengths.size} trajectories"
            )
        for name, value in (("num_envs", num_envs), ("window_size", window_size)):
            if not 1 <= int(value) <= INT32_MAX:
                raise ConfigError(f"{name}={value} must be in [1, 2**31 - 1]")
        if (num_batches is not None and not 1 <= int(num_batches) <= 2**62) or int(seed) < 0:
            raise ConfigError(
                f"num_batches={num_batches} must be in [1, 2**62] (or None for "
                f"endless) and seed={seed} >= 0"
            )
        self.eligible = eligible.astype(np.int64)
        self.num_envs, self.window_size, self.seed = int(num_envs), int(window_size), int(seed)
        self.lo, self.hi = env_shard(self.num_envs, int(process_index), int(process_count))
        self.env_id = np.arange(self.lo, self.hi, dtype=np.int32)
        self.num_batches = None if num_batches is None else int(num_batches)

    def __len__(self) -> int:
        return ENDLESS if self.num_batches is None else self.num_batches

    def playable(self) -> np.ndarray:
        """int64 sorted traj_ids this process's envs can read at any chunk (its cache share)."""
        return np.unique(self.eligible)

    def __getitem__(self, k) -> dict[str, np.ndarray]:
        if isinstance(k, slice) or not 0 <= int(k) < len(self):
            raise IndexError(f"chunk index {k!r} out of range [0, {len(self)})")
        k = int(k)
        traj, start, episode_start, first_step, loop = self._element(k)
        if (start < 0).any() or (start >= self.lengths[traj]).any():  # invariant, cheap
            raise WindowIndexError(f"schedule produced a start outside its trajectory at chunk {k}")
        return {
            "env_id": self.env_id.copy(),
            "traj_id": traj.astype(np.int32),
            "start": start.astype(np.int32),
            "episode_start": episode_start,
            "episode_first_step": first_step.astype(np.int32),
            "episode_loop": loop.astype(np.int32),
            "chunk": np.array(k, np.int64),
        }

    def _element(self, k: int):
        """``(traj, start, episode_start, episode_first_step, episode_loop)``, each ``[E_local]``;
        ``episode_loop`` already range-checked to int32."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(envs [{self.lo}, {self.hi}) of {self.num_envs}, "
            f"W={self.window_size})"
        )


class SequentialSchedule(_Schedule):
    """DeepMimic-style marching through trajectories (see module docstring for exact rules).

    Args:
      lengths: int ``[n_traj]`` lengths (steps) of all trajectories, indexed by traj_id.
      eligible: int ``[n]`` trajectory ids to play (``store.select(...)`` or explicit ids).
      num_envs: global number of envs ``E``; window_size: ``W`` steps.
      stride: steps between consecutive chunk starts (None = ``W``).
      assignment: ``round_robin`` | ``random`` | ``explicit`` (module docstring).
      allow_wrap: keep the trajectory (True) or move on to a new one after a pass (False).
      end_policy: ``wrap`` | ``clamp``: with ``allow_wrap``, continue the cursor modulo ``L``
        (one endless episode) or restart each pass at step 0 as a new episode; also sets the
        range of random initial starts.
      random_start: first episode starts at a seeded random valid start instead of 0.
      episode_length: at most this many steps per episode (None or 0: unbounded); an episode
        spans ``ceil(episode_length / stride)`` chunks at most (module docstring).
      seed: int >= 0; process_index, process_count: :func:`env_shard`; num_batches: len or None.

    Raises: ConfigError, ShardingError, WindowIndexError, IndexOverflowError for bad arguments;
    ``__getitem__`` raises IndexOverflowError once a wrapping cursor has looped ``2**31`` times.
    """

    def __init__(
        self,
        lengths,
        eligible,
        num_envs: int,
        window_size: int,
        *,
        stride: int | None = None,
        assignment: str = "round_robin",
        allow_wrap: bool = True,
        end_policy: str = "wrap",
        random_start: bool = False,
        episode_length: int | None = None,
        **kwargs,
    ):
        super().__init__(lengths, eligible, num_envs, window_size, **kwargs)
        if assignment not in ASSIGNMENTS or end_policy not in END_POLICIES:
            raise ConfigError(
                f"assignment={assignment!r} / end_policy={end_policy!r}: expected "
                f"one of {ASSIGNMENTS} / {END_POLICIES}"
            )
        self.stride = self.window_size if stride is None else int(stride)
        if not 1 <= self.stride <= INT32_MAX:
            raise ConfigError(f"stride={stride} must be in [1, 2**31 - 1] (or None = window_size)")
        self.assignment, self.allow_wrap = assignment, bool(allow_wrap)
        self.end_policy = end_policy
        if episode_length is not None and not 0 <= int(episode_length) <= INT32_MAX:
            raise ConfigError(
                f"episode_length={episode_length} must be in [0, 2**31 - 1] steps "
                "(None or 0 = unbounded episodes)"
            )
        #: chunks per episode at most (None: unbounded)
        self.episode_chunks = -(-int(episode_length) // self.stride) if episode_length else None
        cap = self.episode_chunks or ENDLESS
        n = self.eligible.size
        offset = (
            _rng(self.seed, _OFFSET).integers(0, n, size=self.num_envs)
            if assignment == "random"
            else np.arange(self.num_envs) % n
        )
        self.lengths_elig = self.lengths[self.eligible]
        self.cycle_chunks = np.minimum(
            pass_chunks(self.lengths_elig, 0, self.window_size, self.stride), cap
        )
        self.cycle_total = int(self.cycle_chunks.sum())
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        first_pos = self._cycle(0)[0][offset]  # position in eligible of each env's first episode
        first_len = self.lengths_elig[first_pos]
        first_step = np.zeros(self.num_envs, np.int64)
        if random_start:
            high = valid_start_counts(first_len, self.window_size, end_policy)
            first_step = _rng(self.seed, _START).integers(0, high)
        first_chunks = np.minimum(
            pass_chunks(first_len, first_step, self.window_size, self.stride), cap
        )
        sl = slice(self.lo, self.hi)  # keep only this process's envs
        self.first_traj = self.eligible[first_pos][sl]
        self.first_len, self.first_step, self.first_chunks = (
            first_len[sl],
            first_step[sl],
            first_chunks[sl],
        )
        # allow_wrap + clamp: chunks of each pass after the first (restarting at step 0).
        self.repeat_chunks = np.minimum(
            pass_chunks(self.first_len, 0, self.window_size, self.stride), cap
        )
        # Position in the endless concatenation of cycles right after the first episode.
        self.after_first = self._cycle(0)[1][offset + 1][sl]
        #: ``sampler.episode_starts(k0, position)`` draws each episode's first step (adaptive
        #: episodes, ``allow_wrap`` + ``wrap`` + ``episode_length``; FailureFeedback); None: s0.
        self.sampler = None
        self.first_position = np.searchsorted(np.unique(self.eligible), self.first_traj)

    def playable(self) -> np.ndarray:
        """With ``allow_wrap`` each env keeps its first trajectory: this shard's; else all."""
        return np.unique(self.first_traj) if self.allow_wrap else super().playable()

    def _cycle(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(order, cumulative chunks ``[n+1]``) of cycle ``c``: positions into ``eligible``."""
        key = c if self.assignment == "random" else 0  # round-robin cycles are all alike
        cached = self._cache.get(key)
        if cached is None:
            n = self.eligible.size
            order = (
                _rng(self.seed, _PERM, key).permutation(n)
                if self.assignment == "random"
                else np.arange(n)
            )
            cached = (order, np.concatenate([[0], np.cumsum(self.cycle_chunks[order])]))
            if len(self._cache) > 8:  # envs only ever need 2-3 consecutive cycles at once
                self._cache = {}
            self._cache[key] = cached
        return cached

    def _element(self, k: int):
        no_loops = np.zeros(self.first_len.shape, np.int64)
        if self.allow_wrap and self.end_policy == "wrap":
            kk = k % self.episode_chunks if self.episode_chunks else k  # chunk in its episode
            first = (
                self.first_step
                if self.sampler is None
                else self.sampler.episode_starts(k - kk, self.first_position)
            )  # adaptive episodes
            start, loop = wrap_cursor(first, kk, self.stride, self.first_len, self.env_id)
            if self.sampler is not None:
                self.sampler.record(k, self.first_position, start)
            episode_start = np.full(start.shape, kk == 0)
            return self.first_traj, start, episode_start, first, loop
        traj = self.first_traj.copy()
        start = self.first_step + np.minimum(k, self.first_chunks - 1) * self.stride
        episode_start, first_step = np.full(start.shape, k == 0), self.first_step.copy()
        later = np.flatnonzero(k >= self.first_chunks)  # envs past their first episode
        if later.size and self.allow_wrap:  # clamp: restart the same trajectory at step 0
            within = (k - self.first_chunks[later]) % self.repeat_chunks[later]
            start[later], episode_start[later], first_step[later] = (
                within * self.stride,
                within == 0,
                0,
            )
        elif later.size:
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
        return traj, start, episode_start, first_step, no_loops


class RandomSchedule(_Schedule):
    """Uniformly random windows: each env, each chunk, draws a valid (trajectory, start) pair.

    Args:
      lengths, eligible, num_envs, window_size, seed, process_index, process_count, num_batches:
        as in :class:`SequentialSchedule`.
      end_policy: ``clamp`` draws starts in ``[0, max(1, L-W+1))``; ``wrap`` in ``[0, L)``.

    Every window is its own episode: ``episode_start`` True, ``episode_first_step = start``.
    Draws for all envs are made and sliced to the shard (rejection sampling has no fixed stride).

    ``sampler``: an object whose ``draw(k)`` returns ``(position [E_local] into eligible,
    start [E_local])`` replaces the uniform draw (static weights, failure-adaptive starts:
    :class:`~trajopt_loader.pipeline.feedback.FailureFeedback`); None: uniform.
    """

    def __init__(
        self,
        lengths,
        eligible,
        num_envs: int,
        window_size: int,
        *,
        end_policy: str = "clamp",
        sampler=None,
        **kwargs,
    ):
        super().__init__(lengths, eligible, num_envs, window_size, **kwargs)
        self.sampler = sampler
        if end_policy not in END_POLICIES:
            raise ConfigError(f"end_policy={end_policy!r}: expected one of {END_POLICIES}")
        counts = valid_start_counts(self.lengths[self.eligible], self.window_size, end_policy)
        self.cum_starts = np.concatenate([[0], np.cumsum(counts)])

    def _element(self, k: int):
        if self.sampler is not None:
            idx, start = self.sampler.draw(k)
            return (
                self.eligible[idx],
                start,
                np.ones(start.shape, bool),
                start,
                np.zeros(start.shape, np.int64),
            )
        draw = _rng(self.seed, _WINDOW, k).integers(0, self.cum_starts[-1], size=self.num_envs)
        draw = draw[self.lo : self.hi]
        idx = np.searchsorted(self.cum_starts, draw, side="right") - 1
        start = draw - self.cum_starts[idx]
        return (
            self.eligible[idx],
            start,
            np.ones(start.shape, bool),
            start,
            np.zeros(start.shape, np.int64),
        )
