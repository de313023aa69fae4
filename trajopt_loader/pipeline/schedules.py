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

Sequential marching (DeepMimic style): :mod:`trajopt_loader.pipeline.sequential`.

Random windows (``RandomSchedule``): every env draws a window uniformly over all valid
(trajectory, start) pairs of the eligible trajectories (so trajectories are weighted by their
number of valid starts), keyed by ``(seed, k)``. Each window is its own episode.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.choices import END_POLICIES, INT32_MAX
from trajopt_loader.errors import ConfigError, ShardingError, WindowIndexError
from trajopt_loader.pipeline.marching import (
    check_lengths,
    pass_chunks,
    valid_start_counts,
)

__all__ = [
    "ENDLESS",
    "RNG_OFFSET",
    "RNG_PERM",
    "RNG_START",
    "RNG_WINDOW",
    "RandomSchedule",
    "Schedule",
    "check_lengths",
    "env_shard",
    "keyed_rng",
    "pass_chunks",
    "valid_start_counts",
]

ENDLESS = 2**62  # length of an endless schedule (int64-safe chunk arithmetic; ~forever)
RNG_OFFSET, RNG_START, RNG_PERM, RNG_WINDOW = 1, 2, 3, 4  # spawn_key purposes of keyed_rng


def keyed_rng(seed: int, *words: int) -> np.random.Generator:
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


class Schedule:
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


class RandomSchedule(Schedule):
    """Uniformly random windows: each env, each chunk, draws a valid (trajectory, start) pair.

    Args:
      lengths, eligible, num_envs, window_size, seed, process_index, process_count, num_batches:
        as in :class:`~trajopt_loader.pipeline.sequential.SequentialSchedule`.
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
        draw = keyed_rng(self.seed, RNG_WINDOW, k).integers(
            0, self.cum_starts[-1], size=self.num_envs
        )
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
