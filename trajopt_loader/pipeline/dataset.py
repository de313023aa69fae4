"""``make_dataset``: the host side of the window pipeline as one declarative grain dataset.

::

    grain.MapDataset.source(schedule)          element k: traj_id / start per env (schedules.py)
      .map(WindowIndices(...))                 + step, loop [E, W] int32, valid [E, W] bool
      .map(GatherKeys(...))                    + {key: [E, W, *row] config.dtype}
      .map(ContinueCycles(store))              config.cyclic: base continued after wraps
      .to_iter_dataset(ReadOptions(num_threads=config.read_threads,
                                   prefetch_buffer_size=config.host_prefetch))

The read options are always set from the config: grain's defaults (16 threads, 500 elements
read ahead) hold hundreds of batches of tens of MB each (DESIGN decision 5). The iterator's
``get_state()`` is ``{"next_index": k}``; because element k is a pure function of (config, k),
restoring that state into a freshly built pipeline continues with bit-identical batches.
"""

from __future__ import annotations

from typing import Sequence

import grain
import numpy as np

from trajopt_loader.configs import validate_config
from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline import host_memory
from trajopt_loader.pipeline.schedules import RandomSchedule, SequentialSchedule
from trajopt_loader.transforms.cycles import ContinueCycles
from trajopt_loader.transforms.gather import GatherKeys
from trajopt_loader.transforms.windows import WindowIndices


def eligible_traj_ids(config, store) -> np.ndarray:
    """int32 ``[n]`` trajectory ids a config plays: ``store.select(sources, motions)``, or the
    explicit ``traj_ids`` (kept in order, duplicates allowed).

    Raises:
      ConfigError: an explicit id outside the store or outside the selected sources / motions.
    """
    selected = np.asarray(store.select(sources=tuple(config.sources),
                                      motions=tuple(config.motions)), np.int32)
    if config.assignment != "explicit":
        return selected
    ids = np.asarray(config.traj_ids, np.int64)
    outside = ids[~np.isin(ids, selected)]
    if outside.size:
        raise ConfigError(
            f"traj_ids contains {int(outside[0])}, which is not among the {selected.size} "
            f"trajectories selected by sources={tuple(config.sources)} motions="
            f"{tuple(config.motions)} of {store.path!r} (ids 0..{len(store.lengths) - 1} exist)")
    return ids.astype(np.int32)


def make_schedule(config, lengths, eligible, process_index: int = 0, process_count: int = 1):
    """The schedule source named by ``config.schedule`` for this process's env shard.

    Raises:
      ConfigError, ShardingError, WindowIndexError: see :mod:`trajopt_loader.pipeline.schedules`.
    """
    common = dict(seed=config.seed, process_index=process_index, process_count=process_count,
                  num_batches=config.num_batches, end_policy=config.end_policy)
    if config.schedule == "sequential":
        return SequentialSchedule(lengths, eligible, config.num_envs, config.window_size,
                                  stride=config.stride, assignment=config.assignment,
                                  allow_wrap=config.allow_wrap, **common)
    if config.schedule == "random":
        return RandomSchedule(lengths, eligible, config.num_envs, config.window_size, **common)
    raise ConfigError(f"schedule={config.schedule!r} is not 'sequential' or 'random'")


def make_dataset(config, store=None, process_index: int | None = None,
                 process_count: int | None = None, *,
                 extra_transforms: Sequence[grain.transforms.Map] = (),
                 retain_freed_memory: bool = True) -> grain.IterDataset:
    """Build the host pipeline: a grain ``IterDataset`` of batch dicts.

    Args:
      config: a trajopt-loader ConfigDict (``trajopt_loader.configs.load_config``).
      store: an open ``TrajectoryStore``; None opens ``config.zarr_path`` with
        ``cache_bytes=config.cache_bytes``.
      process_index, process_count: env shard of this process; default
        ``jax.process_index()`` / ``jax.process_count()``.
      extra_transforms: grain Maps applied after the gather. When empty and
        ``config.references.enabled``, the reference transforms of ``config.references`` are
        built (``transforms.references_config.reference_transforms``).
      retain_freed_memory: tune glibc malloc so freed batches are reused rather than page-faulted
        in again (process-wide; measurements in :mod:`trajopt_loader.pipeline.host_memory`;
        up to ~7x more batches/s at 256 envs). False leaves malloc alone.

    Returns:
      ``grain.IterDataset`` whose elements are dicts of numpy arrays, ``E = num_envs /
      process_count``: ``{key: [E, W, *row] config.dtype for key in config.keys}``,
      ``step``, ``loop`` ``[E, W] int32``, ``valid [E, W] bool``, ``env_id``, ``traj_id``,
      ``start``, ``episode_first_step``, ``episode_loop`` ``[E] int32`` and
      ``episode_start [E] bool``. With ``config.cyclic`` the base of steps with ``loop >= 1``
      continues from the previous loop (``transforms.cycles``). Endless unless
      ``config.num_batches`` is set. Same config and seed give the identical stream.

    Raises:
      ConfigError: invalid config, no ``zarr_path`` without a store, invalid ``references``
        fields. ShardingError: ``num_envs`` not divisible by ``process_count``.
      MissingKeyError: a configured key is not in the store.
    """
    validate_config(config)
    if store is None:
        if not config.zarr_path:
            raise ConfigError("config.zarr_path is unset and no store was given; pass "
                              "--config.zarr_path=/path/to/store.zarr")
        from trajopt_loader.store import TrajectoryStore
        store = TrajectoryStore(config.zarr_path, cache_bytes=config.cache_bytes)
    if config.references.enabled and not extra_transforms:
        from trajopt_loader.transforms.references_config import reference_transforms
        extra_transforms = reference_transforms(config, store)
    if process_index is None or process_count is None:
        import jax
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    eligible = eligible_traj_ids(config, store)
    schedule = make_schedule(config, store.lengths, eligible, process_index, process_count)
    if retain_freed_memory:
        host_memory.retain_freed_memory()
    ds = grain.MapDataset.source(schedule)
    ds = ds.map(WindowIndices(store.lengths, config.window_size, config.end_policy))
    ds = ds.map(GatherKeys(store, config["keys"], config.dtype, traj_ids=eligible))
    if config.cyclic:
        ds = ds.map(ContinueCycles(store))
    for transform in extra_transforms:
        ds = ds.map(transform)
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=config.read_threads,
                                                prefetch_buffer_size=config.host_prefetch))
