"""Working-set mode of the ``sequential`` schedule: exactly the trajectories the next batches play.

A sequential stream (:mod:`trajopt_loader.pipeline.sequential`) is known in advance: element
``k`` of the schedule says which trajectory every env of this process plays. So, unlike the
``random`` schedule's working set (:mod:`.working_set`), nothing about the stream changes: the
resident set of window ``w`` (batches ``[w R, (w + 1) R)``, ``R = working_set.rotate_every``) is
the set of trajectories those ``R`` elements name, decoded in the background while window
``w - 1`` plays (:class:`~trajopt_loader.pipeline.resident_sets.ResidentSets`). The batches are the
batches of the in-memory sequential stream, bit for bit, and a checkpoint is ``next_index`` as
there. No statistical effect: coverage, order and correlation are the sequential schedule's.

Memory: two sets (the one played, the next one loading) must fit ``cache_bytes``. In ``R``
batches an env plays at most ``1 + ceil((R - 1) / c_min)`` trajectories (``c_min``: the fewest
chunks any episode of the schedule lasts), so a set holds at most
``K = min(n, E_p (1 + ceil((R - 1) / c_min)))`` trajectories (``E_p``: this process's envs,
``n``: the trajectories it can play); :func:`check_sequential_budget` checks the ``K`` largest
of them twice over against the budget when the pipeline is built, so a stream never fails for
memory later, and names the largest ``rotate_every`` that fits.

Throughput: a sequential stream does not reuse frames the way random draws do, so the background
decode must keep up with what the envs consume (``E`` new windows per batch, of ``stride`` new
steps each); past that rate the batches wait for the loads.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline.sequential import SequentialSchedule
from trajopt_loader.pipeline.working_set import largest_bytes


class SequentialSets:
    """The resident sets of a :class:`SequentialSchedule` in working-set mode (module docstring).

    Args:
      schedule: the schedule the stream reads (its elements are not changed).
      rotate_every: ``R``, batches per window.
    :meth:`resident` ``(w)`` is what :class:`~trajopt_loader.pipeline.resident_sets.ResidentSets`
    loads for window ``w``.
    """

    def __init__(self, schedule: SequentialSchedule, rotate_every: int):
        if int(rotate_every) < 1:
            raise ConfigError(f"working_set.rotate_every={rotate_every} must be >= 1")
        self.schedule, self.rotate_every = schedule, int(rotate_every)

    def resident(self, w: int) -> np.ndarray:
        """int64 sorted traj_ids this process's envs play in batches ``[w R, (w + 1) R)``."""
        first = int(w) * self.rotate_every
        last = min(first + self.rotate_every, len(self.schedule))
        ids = [self.schedule[k]["traj_id"] for k in range(first, max(first, last))]
        return np.unique(np.concatenate(ids)).astype(np.int64) if ids else np.zeros(0, np.int64)

    def max_trajectories(self) -> int:
        """``K``: most trajectories any window's set holds (module docstring)."""
        s = self.schedule
        n_env = int(s.first_traj.size)
        if s.allow_wrap:  # every env keeps its first trajectory
            return int(np.unique(s.first_traj).size)
        fewest = int(min(s.cycle_chunks.min(), s.first_chunks.min()))
        per_env = 1 + -(-(self.rotate_every - 1) // max(1, fewest))
        return int(min(np.unique(s.eligible).size, n_env * per_env))


def check_sequential_budget(config, store, sets: SequentialSets) -> None:
    """Raise unless two of the largest possible sets of ``sets`` fit ``config.cache_bytes``.

    Raises:
      ConfigError: naming the bound, the budget, and the largest ``rotate_every`` that fits (or
        that none does: raise ``cache_bytes``).
    """
    s = sets.schedule
    ids = np.unique(s.first_traj if s.allow_wrap else s.eligible).astype(np.int64)
    top = largest_bytes(config, store, ids)

    def need(r: int) -> int:
        k = SequentialSets(s, r).max_trajectories()
        return 2 * int(top[min(k, top.size) - 1])

    if need(sets.rotate_every) <= config.cache_bytes:
        return
    fits = [r for r in (2**i for i in range(20)) if need(r) <= config.cache_bytes]
    hint = (
        f"lower working_set.rotate_every to {max(fits)} or raise cache_bytes"
        if fits and not s.allow_wrap
        else f"raise cache_bytes to at least {need(1)}"
    )
    r, most = sets.rotate_every, sets.max_trajectories()
    raise ConfigError(
        f"config field cache_bytes={config.cache_bytes} cannot hold two working sets of the "
        f"sequential schedule: the {r} batches of a set (working_set.rotate_every) play up to "
        f"{most} trajectories per process, {need(r)} bytes for two sets of keys "
        f"{list(config['keys'])} in {config.dtype}: {hint}."
    )
