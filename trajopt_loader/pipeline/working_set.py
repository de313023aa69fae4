"""Working-set mode: random windows from a resident subset of trajectories that rotates.

For datasets larger than the host cache (``config.cache_bytes``). With the plain ``random``
schedule every batch touches chunks all over the store, so past the budget the chunk LRU misses
on almost every window. In working-set mode (``config.working_set.enabled``):

* **Rotation.** Batch ``k`` belongs to window ``w = k // rotate_every``. The eligible
  trajectories are shuffled once per *epoch* by ``(seed, epoch)`` and cut into
  ``P = ceil(n / size)`` consecutive working sets; window ``w`` plays set ``w mod P`` of epoch
  ``w // P``. So every trajectory is resident for exactly one window per epoch of
  ``P * rotate_every`` batches, and the subset of batch ``k`` is a pure function of
  ``(seed, k)``: a checkpoint is still ``next_index``.
* **Draws.** Within the window every env draws a window uniformly over the valid
  (trajectory, start) pairs of the working set (as :class:`RandomSchedule` over all of them),
  keyed by ``(seed, k)``; all processes see the same working set (env shards as usual).
* **Size.** ``size`` trajectories such that two sets (the one played, the next one loading) fit
  ``cache_bytes`` in the batch dtype even when both hold the longest clips:
  :func:`working_set_size` (with clips of one length, ``cache_bytes / 2`` over a clip's bytes).
* **Loading.** :class:`~trajopt_loader.pipeline.resident_sets.ResidentSets` loads the next
  window's set in a background thread while the current one is played; a batch waits only if
  the load is not done (recorded, and logged once). A load error is raised by the batch that
  needs that set (in the caller's ``next()``), not lost in the thread.

Rotation rule: the background load of one set (``set_bytes``, :func:`working_set_size`
trajectories) must finish within the ``rotate_every`` batches of the set played, i.e. the
required load rate ``set_bytes / (rotate_every * batch_s)`` must stay below the host's
first-touch rate ``load_bytes_per_s``. :func:`min_rotate_every` returns the smallest
``rotate_every`` that leaves a ``margin`` (2 by default: the load shares the cores with the
batches); past it batches wait at each rotation. Many short clips make it long: 150K clips of
100 frames with a quarter of the data in the cache are sets of 18,750 clips (0.5 GB) that load
in seconds, against ~11 ms per batch. Equivalently ``size / rotate_every`` trajectories are
loaded per batch; that turnover, not the set size, is what the host must sustain.

Statistics: within one epoch every trajectory is resident once, so coverage per epoch is 100 %
of trajectories (each drawn with probability ``1 - (1 - p)^(E * rotate_every)`` per window,
``E`` envs, ``p`` its share of the set's valid starts). Its expected draws per epoch,
``E * rotate_every * p``, equal those of the plain ``random`` schedule over ``P * rotate_every``
batches when every set holds ``1 / P`` of the valid starts (the last set of an epoch, smaller
when ``P`` does not divide ``n``, is drawn more per trajectory). But windows of nearby batches
come from the same ``size`` trajectories: batches within a window are correlated (fewer
distinct trajectories than uniform sampling over the store, ``size`` instead of ``n``), and a
trajectory's draws are bunched into its window instead of spread over the epoch. Larger
``cache_bytes`` (bigger sets) reduce it; a smaller ``rotate_every`` spreads the draws but must
stay above the rotation rule, or batches wait for the load.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline.marching import valid_start_counts
from trajopt_loader.pipeline.resident_sets import ResidentSets
from trajopt_loader.pipeline.schedules import RNG_WINDOW, RandomSchedule, keyed_rng
from trajopt_loader.transforms.gather import DROPPED, GatherKeys, cast_dtype

_SET = 5  # spawn_key purpose of the per-epoch shuffle (schedules uses 1..4)


def traj_bytes(config, store, ids: np.ndarray) -> np.ndarray:
    """int64 ``[n]`` bytes of ``config["keys"]`` of each of ``ids`` in ``config.dtype`` (what a
    resident set holds per trajectory)."""
    itemsize = cast_dtype(config.dtype).itemsize
    row = sum(int(np.prod(store.check_uniform(k, ids)[0], dtype=np.int64)) for k in config["keys"])
    return store.lengths[ids].astype(np.int64) * row * itemsize


def largest_bytes(config, store, ids: np.ndarray) -> np.ndarray:
    """int64 ``[n]``: element ``K - 1`` is the bytes of the ``K`` largest of ``ids``
    (:func:`traj_bytes`): what a set of ``K`` of them holds at most."""
    return np.cumsum(np.sort(traj_bytes(config, store, ids))[::-1])


def working_set_size(config, store, eligible) -> int:
    """Trajectories per working set: the largest ``size`` such that two sets of the ``size``
    largest eligible trajectories (``config["keys"]`` in ``config.dtype``) fit
    ``config.cache_bytes``, so any two sets an epoch cuts fit it, whatever the clip lengths.

    Raises:
      ConfigError: the budget does not hold two sets of even the largest trajectory.
    """
    ids = np.unique(np.asarray(eligible, np.int64))
    largest = largest_bytes(config, store, ids)
    size = int(np.searchsorted(largest, config.cache_bytes // 2, side="right"))
    if size < 1:
        raise ConfigError(
            f"config field cache_bytes={config.cache_bytes} holds no working set: two sets need at "
            f"least {2 * int(largest[0])} bytes (the largest trajectory, keys "
            f"{list(config['keys'])} in {config.dtype}). Raise cache_bytes or set "
            "working_set.enabled=False."
        )
    return min(size, ids.size)


def min_rotate_every(
    config, store, eligible, load_bytes_per_s: float, batch_s: float, margin: float = 2.0
) -> int:
    """The smallest ``working_set.rotate_every`` whose batches outlast the background load of
    the next set ``margin`` times over (module docstring, *Rotation rule*).

    Args:
      load_bytes_per_s: decoded bytes per second of a first touch of this store on this host
        (e.g. the bytes of the keys over the time of a first batch with the whole store in
        ``cache_bytes``). batch_s: seconds of a steady in-memory batch. margin: >= 1 (the
        load shares the cores with the batches, hence 2 by default).
    Returns ``ceil(margin * set_bytes / (load_bytes_per_s * batch_s))``, at least 1, where
    ``set_bytes`` is :func:`working_set_size` trajectories of the mean eligible bytes.
    """
    ids = np.unique(np.asarray(eligible, np.int64))
    set_bytes = working_set_size(config, store, ids) * float(traj_bytes(config, store, ids).mean())
    return max(1, int(np.ceil(margin * set_bytes / (load_bytes_per_s * batch_s))))


class WorkingSetSchedule(RandomSchedule):
    """Random windows over the working set of each window of batches (module docstring).

    Args:
      size: trajectories per working set (:func:`working_set_size`); rotate_every: batches per
        window. Other arguments as :class:`RandomSchedule`.
    Element ``k`` is the :class:`RandomSchedule` element layout; traj_ids are in
    :meth:`resident` ``(k // rotate_every)``.
    """

    def __init__(
        self,
        lengths,
        eligible,
        num_envs: int,
        window_size: int,
        *,
        size: int,
        rotate_every: int,
        end_policy: str = "clamp",
        **kwargs,
    ):
        super().__init__(lengths, eligible, num_envs, window_size, end_policy=end_policy, **kwargs)
        if not 1 <= int(size) or not 1 <= int(rotate_every):
            raise ConfigError(
                f"working set size={size} and rotate_every={rotate_every} must be >= 1"
            )
        self.size, self.rotate_every = min(int(size), self.eligible.size), int(rotate_every)
        self.sets_per_epoch = -(-self.eligible.size // self.size)
        self.counts = valid_start_counts(self.lengths[self.eligible], self.window_size, end_policy)
        self._perm: dict[int, np.ndarray] = {}

    def positions(self, w: int) -> np.ndarray:
        """int64 positions into ``eligible`` of window ``w``'s working set."""
        epoch, slot = divmod(int(w), self.sets_per_epoch)
        perm = self._perm.get(epoch)
        if perm is None:
            perm = keyed_rng(self.seed, _SET, epoch).permutation(self.eligible.size)
            self._perm = {epoch: perm}  # windows run in order: one epoch at a time
        return perm[slot * self.size : (slot + 1) * self.size]

    def resident(self, w: int) -> np.ndarray:
        """int64 sorted traj_ids of window ``w``'s working set."""
        return np.unique(self.eligible[self.positions(w)])

    def playable(self) -> np.ndarray:
        return np.unique(self.eligible)  # over time; held by ResidentSets, not the store cache

    def _element(self, k: int):
        pos = self.positions(k // self.rotate_every)
        cum = np.concatenate([[0], np.cumsum(self.counts[pos])])
        draw = keyed_rng(self.seed, RNG_WINDOW, k).integers(0, cum[-1], size=self.num_envs)[
            self.lo : self.hi
        ]
        idx = np.searchsorted(cum, draw, side="right") - 1
        start = draw - cum[idx]
        return (
            self.eligible[pos[idx]],
            start,
            np.ones(start.shape, bool),
            start,
            np.zeros(start.shape, np.int64),
        )


class GatherWorkingSet(GatherKeys):
    """:class:`GatherKeys` reading from the working set of the element's window."""

    def __init__(self, store, keys, dtype, traj_ids, schedule: WorkingSetSchedule):
        super().__init__(store, keys, dtype, traj_ids=traj_ids)
        self.sets = ResidentSets(store, self.keys, self.dtype, schedule)

    def map(self, element: dict) -> dict:
        """The batch of ``element`` (a schedule element with ``step [E_local, W]``): every key
        ``[E_local, W, *row]`` in the batch dtype, gathered from its window's resident set.

        Raises:
          RuntimeError: a traj_id outside the set (a schedule / set mismatch: a bug).
          What the set's background load raised (``DataIntegrityError``, ``StoreReadError``).
        """
        flats, offsets = self.sets.get(int(element["chunk"]) // self.sets.schedule.rotate_every)
        traj, step = element["traj_id"], element["step"]
        base = offsets[traj]
        if (base < 0).any():
            raise RuntimeError(
                f"traj_id {int(traj[base < 0][0])} is not in the working set of "
                f"chunk {int(element['chunk'])}"
            )
        rows = base[:, None] + step
        batch = {k: v for k, v in element.items() if k not in DROPPED}
        for key in self.keys:
            batch[key] = np.take(flats[key], rows, axis=0)
        return batch


def working_set_pipeline(config, store, eligible, process_index: int, process_count: int):
    """``(schedule, gather)`` of a working-set pipeline of ``config``: the ``random`` schedule's
    rotating sets (this module), or the ``sequential`` schedule's exact sets
    (:mod:`.working_set_sequential`).

    Raises:
      ConfigError: ``control_dt``, ``adaptive``,
        ``motion_weights`` or ``episode_origin_keys`` are set (not combined yet); or
        ``cache_bytes`` holds no working set.
    """
    combined = [
        name
        for name, used in (
            ("control_dt", config.control_dt is not None),
            ("adaptive.enabled", config.adaptive.enabled),
            ("motion_weights", bool(config.motion_weights)),
            ("episode_origin_keys", config.episode_origin_keys),
        )
        if used
    ]
    if combined:
        raise ConfigError(
            f"working_set.enabled=True cannot be combined with {combined} yet (working "
            "sets hold stored frames and draw without feedback): unset them or "
            "set working_set.enabled=False."
        )
    if config.schedule == "sequential":
        from trajopt_loader.pipeline.stages import make_schedule
        from trajopt_loader.pipeline.working_set_sequential import (
            SequentialSets,
            check_sequential_budget,
        )

        schedule = make_schedule(config, store.lengths, eligible, process_index, process_count)
        sets = SequentialSets(schedule, config.working_set.rotate_every)
        check_sequential_budget(config, store, sets)
        return schedule, GatherWorkingSet(store, config["keys"], config.dtype, eligible, sets)
    schedule = WorkingSetSchedule(
        store.lengths,
        eligible,
        config.num_envs,
        config.window_size,
        size=working_set_size(config, store, eligible),
        rotate_every=config.working_set.rotate_every,
        end_policy=config.end_policy,
        seed=config.seed,
        process_index=process_index,
        process_count=process_count,
        num_batches=config.num_batches,
    )
    return schedule, GatherWorkingSet(store, config["keys"], config.dtype, eligible, schedule)
