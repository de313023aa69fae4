"""Sequential schedule: DeepMimic-style marching of every env through its trajectories.

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
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.choices import ASSIGNMENTS, END_POLICIES, INT32_MAX
from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline.marching import pass_chunks, valid_start_counts, wrap_cursor
from trajopt_loader.pipeline.schedules import (
    ENDLESS,
    RNG_OFFSET,
    RNG_PERM,
    RNG_START,
    Schedule,
    keyed_rng,
)

__all__ = ["SequentialSchedule"]


class SequentialSchedule(Schedule):
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
            keyed_rng(self.seed, RNG_OFFSET).integers(0, n, size=self.num_envs)
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
            first_step = keyed_rng(self.seed, RNG_START).integers(0, high)
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
                keyed_rng(self.seed, RNG_PERM, key).permutation(n)
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
