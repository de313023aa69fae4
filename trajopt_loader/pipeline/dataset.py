"""``make_dataset``: the host side of the window pipeline as one declarative grain dataset.

::

    grain.MapDataset.source(schedule)          element k: traj_id / start per env (schedules.py)
      .map(WindowIndices(...))                 + step, loop [E, W+F] int32, valid [E, W+F] bool
      .map(GatherKeys(...))                    + {key: [E, W+F, *row] config.dtype}
                                               (InterpolateKeys with config.control_dt: windows
                                               of control steps, transforms/interpolate.py)
      .map(EpisodeOrigin(...))                 config.episode_origin_keys: + origin_qpos/qvel [E, n]
      .map(ContinueCycles(store))              config.cyclic: base continued after wraps
      .to_iter_dataset(ReadOptions(num_threads=config.read_threads,
                                   prefetch_buffer_size=config.host_prefetch))

The read options are always set from the config: grain's defaults (16 threads, 500 elements
read ahead) hold hundreds of batches of tens of MB each (DESIGN decision 5). The iterator's
``get_state()`` is ``{"next_index": k, "stream": fingerprint}``; because element k is a pure
function of (config, k), restoring that state into a freshly built pipeline continues with
bit-identical batches, and the fingerprint (config fields + the played trajectories of the store
index, :mod:`trajopt_loader.pipeline.fingerprint`) makes ``set_state`` refuse a state saved for
another config or other data.

The trajectories a config plays must share one time step unless ``config.allow_mixed_dt``
(:func:`~trajopt_loader.pipeline.time_step.check_uniform_dt`) or ``config.control_dt`` (then
``step`` and every length are control steps, :func:`~trajopt_loader.pipeline.stages.window_lengths`,
:func:`~trajopt_loader.pipeline.stages.window_gather`).
"""

from __future__ import annotations

from collections.abc import Sequence

import grain
import numpy as np

from trajopt_loader.choices import cast_dtype
from trajopt_loader.configs import validate_config
from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline import host_memory
from trajopt_loader.pipeline.fingerprint import describe_stream
from trajopt_loader.pipeline.stages import (
    check_store_model,
    eligible_traj_ids,
    episode_origin,
    make_schedule,
    window_gather,
    window_lengths,
)
from trajopt_loader.pipeline.stream_iterators import StreamDataset
from trajopt_loader.pipeline.time_step import check_uniform_dt
from trajopt_loader.transforms.cycles import ContinueCycles
from trajopt_loader.transforms.windows import WindowIndices


def make_dataset(
    config,
    store=None,
    process_index: int | None = None,
    process_count: int | None = None,
    *,
    extra_transforms: Sequence[grain.transforms.Map] = (),
    retain_freed_memory: bool = True,
) -> grain.IterDataset:
    """Build the host pipeline: a grain ``IterDataset`` of batch dicts.

    Args:
      config: a trajopt-loader ConfigDict (``trajopt_loader.configs.load_config``).
      store: an open ``TrajectoryStore``; None opens ``config.zarr_path`` with
        ``cache_bytes=config.cache_bytes`` and, for a float ``config.dtype``,
        ``cache_dtype=config.dtype`` (float64 data is cached as float32 once instead of being
        cast every batch; pass ``cache_dtype`` yourself when you open the store).
      process_index, process_count: env shard of this process; default
        ``jax.process_index()`` / ``jax.process_count()``.
      extra_transforms: grain Maps applied after the gather. When empty and
        ``config.references.enabled``, the reference transforms of ``config.references`` are
        built (``transforms.references_config.reference_transforms``).
      retain_freed_memory: tune glibc malloc so freed batches are reused rather than page-faulted
        in again (process-wide; measurements in :mod:`trajopt_loader.pipeline.host_memory`;
        up to ~7x more batches/s at 256 envs). False leaves malloc alone.

    Returns:
      :class:`~trajopt_loader.pipeline.stream_iterators.StreamDataset` (a grain ``IterDataset``;
      ``.stream["fingerprint"]`` identifies config + played data; its iterators' states carry
      it and ``set_state`` checks it) whose elements are dicts of numpy arrays, ``E = num_envs /
      process_count`` and ``T = W + F`` (``F = config.future_steps``, default 0):
      ``{key: [E, T, *row] config.dtype for key in config.keys}``,
      ``step``, ``loop`` ``[E, T] int32``, ``valid [E, T] bool``, ``env_id``, ``traj_id``,
      ``start``, ``episode_first_step``, ``episode_loop`` ``[E] int32`` and
      ``episode_start [E] bool``; with ``config.episode_origin_keys`` also ``origin_qpos [E, nq]``
      / ``origin_qvel [E, nv]`` (:mod:`~trajopt_loader.transforms.origin`). With ``config.cyclic``
      the base of steps with ``loop >= 1``
      continues from the previous loop (``transforms.cycles``). With ``config.control_dt``,
      ``step`` / ``start`` / ``episode_first_step`` are control steps (time ``step *
      control_dt`` s from the trajectory's first frame) and the arrays are interpolated there
      (``transforms.interpolate``). Endless unless
      ``config.num_batches`` is set. Same config and seed give the identical stream.

    Raises:
      ConfigError: invalid config, no ``zarr_path`` without a store, invalid ``references``
        fields, played trajectories of different dt
        (:func:`~trajopt_loader.pipeline.time_step.check_uniform_dt`); with ``control_dt``, a played
        trajectory of unknown dt, or no model / robot telling which qpos entries are quaternions
        (``transforms.interpolate.qpos_quaternions``); with ``config.cyclic`` and
        ``end_policy="wrap"``, a played trajectory whose ``qpos`` rows have fewer than 7 values (no
        floating base; fix: ``--config.cyclic=False``).
      ConventionError: with ``config.cyclic`` and ``end_policy="wrap"``, a played trajectory whose
        base quaternion ``qpos[3:7]`` at frame 0, ``L-2`` or ``L-1`` is not of unit norm in its
        source's convention (``transforms.cycles.ContinueCycles.deltas``; all played
        trajectories' ``Delta`` are computed here, so no cyclic error surfaces mid-stream).
      ShardingError: ``num_envs`` not divisible by ``process_count``.
      MissingKeyError: a configured key is not in the store (or, with ``config.cyclic``, a
        played trajectory has no ``qpos``).
      ModelError, RobotSpecError: ``config.references`` names a model or robot spec that does not
        load or fit; ``config.model_path`` (or, with references enabled,
        ``references.model_path``) is a model whose joint / body layout differs from the one the
        store recorded at export (:meth:`TrajectoryStore.check_model`; a store without a recorded
        layout warns once).

      Raised only by ``next()`` on an iterator (they depend on the chunk index or the data read):
      IndexOverflowError: an endless wrapping stream so long that an env's loop count passes
        ``2**31 - 1`` (int32; ``schedules`` / ``windows``; bound the episodes).
      ReferenceInputError: references enabled and a window's base quaternion is zero / not
        finite, or batch shapes do not fit the robot spec (``transforms.references``).
      OSError and store errors (``StoreNotFoundError``, ``StoreFormatError``): reading a chunk of
        the store fails (e.g. a remote store that became unreachable), on the first read of a
        trajectory's data.
    """
    validate_config(config)
    if store is None:
        if not config.zarr_path:
            raise ConfigError(
                "config.zarr_path is unset and no store was given; pass "
                "--config.zarr_path=/path/to/store.zarr"
            )
        from trajopt_loader.store import TrajectoryStore

        dtype = cast_dtype(config.dtype)  # cache floats in the batch dtype: no per-batch cast
        store = TrajectoryStore(
            config.zarr_path,
            cache_bytes=config.cache_bytes,
            cache_dtype=dtype if dtype.kind == "f" else None,
            timeout_s=config.remote_timeout_s,
            retries=config.remote_retries,
        )
    check_store_model(config, store)
    if config.references.enabled and not extra_transforms:
        from trajopt_loader.transforms.references_config import reference_transforms

        extra_transforms = reference_transforms(config, store)
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    eligible = eligible_traj_ids(config, store)
    check_uniform_dt(config, store, eligible)
    lengths = window_lengths(config, store, eligible)  # control steps with control_dt
    if config.working_set.enabled:  # data larger than the host cache: pipeline/working_set.py
        from trajopt_loader.pipeline.working_set import working_set_pipeline

        schedule, gather = working_set_pipeline(
            config, store, eligible, process_index, process_count
        )
    else:
        schedule = make_schedule(config, lengths, eligible, process_index, process_count, store)
        gather = window_gather(config, store, eligible)
        if hasattr(store, "cache"):  # decode only what this process's envs can play
            store.cache.share(schedule.playable())
    if retain_freed_memory:
        host_memory.retain_freed_memory()
    ds = grain.MapDataset.source(schedule)
    ds = ds.map(
        WindowIndices(
            lengths, config.window_size, config.end_policy, future_steps=config.future_steps
        )
    )
    ds = ds.map(gather)
    if config.episode_origin_keys:
        ds = ds.map(episode_origin(config, store, eligible, gather))
    if config.cyclic:
        cycles = ContinueCycles(store)
        if config.end_policy == "wrap":  # loops >= 1 can occur: check and cache every Delta now
            cycles.deltas(np.unique(eligible))
        ds = ds.map(cycles)
    for transform in extra_transforms:
        ds = ds.map(transform)
    ds = ds.to_iter_dataset(
        grain.ReadOptions(
            num_threads=config.read_threads, prefetch_buffer_size=config.host_prefetch
        )
    )
    return StreamDataset(
        ds,
        describe_stream(config, store, eligible),
        config.num_batches,
        feedback=getattr(schedule, "sampler", None),
    )
