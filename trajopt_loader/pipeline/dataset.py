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
``step`` and every length are control steps, :func:`window_lengths`, :func:`window_gather`).
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
from trajopt_loader.pipeline.schedules import RandomSchedule, SequentialSchedule
from trajopt_loader.pipeline.stream_iterators import StreamDataset
from trajopt_loader.pipeline.time_step import check_uniform_dt
from trajopt_loader.transforms.cycles import ContinueCycles
from trajopt_loader.transforms.gather import GatherKeys
from trajopt_loader.transforms.interpolate import InterpolateKeys, control_lengths, qpos_quaternions
from trajopt_loader.transforms.origin import EpisodeOrigin
from trajopt_loader.transforms.windows import WindowIndices


def eligible_traj_ids(config, store) -> np.ndarray:
    """int32 ``[n]`` trajectory ids a config plays: ``store.select(sources, motions)``, or the
    explicit ``traj_ids`` (kept in order, duplicates allowed).

    Raises:
      ConfigError: an explicit id outside the store or outside the selected sources / motions.
    """
    selected = np.asarray(
        store.select(sources=tuple(config.sources), motions=tuple(config.motions)), np.int32
    )
    if config.assignment != "explicit":
        return selected
    ids = np.asarray(config.traj_ids, np.int64)
    outside = ids[~np.isin(ids, selected)]
    if outside.size:
        raise ConfigError(
            f"traj_ids contains {int(outside[0])}, which is not among the {selected.size} "
            f"trajectories selected by sources={tuple(config.sources)} motions="
            f"{tuple(config.motions)} of {store.path!r} (selected ids: "
            f"{_id_ranges(selected)}; the store has ids 0..{len(store.lengths) - 1})"
        )
    return ids.astype(np.int32)


#: Largest relative spread of time steps ``make_dataset`` streams together unless
def make_schedule(
    config, lengths, eligible, process_index: int = 0, process_count: int = 1, store=None
):
    """The schedule source named by ``config.schedule`` for this process's env shard.

    ``schedule="random"`` with ``config.adaptive.enabled`` or ``config.motion_weights`` draws
    through a :class:`~trajopt_loader.pipeline.feedback.FailureFeedback` (``schedule.sampler``;
    needs ``store`` for the motion names and time steps); ``schedule="sequential"`` with
    ``adaptive.enabled`` draws the first step of every episode through it.

    Raises:
      ConfigError, ShardingError, WindowIndexError: see :mod:`trajopt_loader.pipeline.schedules`.
    """
    common = dict(
        seed=config.seed,
        process_index=process_index,
        process_count=process_count,
        num_batches=config.num_batches,
        end_policy=config.end_policy,
    )
    if config.schedule == "sequential":
        schedule = SequentialSchedule(
            lengths,
            eligible,
            config.num_envs,
            config.window_size,
            stride=config.stride,
            assignment=config.assignment,
            allow_wrap=config.allow_wrap,
            random_start=config.random_start,
            episode_length=config.episode_length,
            **common,
        )
        if config.adaptive.enabled:  # adaptive first step of every episode, own trajectory
            schedule.sampler = make_feedback(config, store, schedule, process_count)
            schedule.sampler.episode_chunks = schedule.episode_chunks
            schedule.sampler.element = lambda k: (schedule.first_position, schedule[k]["start"])
        return schedule
    if config.schedule == "random":
        schedule = RandomSchedule(lengths, eligible, config.num_envs, config.window_size, **common)
        if config.adaptive.enabled or config.motion_weights:
            schedule.sampler = make_feedback(config, store, schedule, process_count)
        return schedule
    raise ConfigError(f"schedule={config.schedule!r} is not 'sequential' or 'random'")


def make_feedback(config, store, schedule, process_count: int = 1):
    """The :class:`~trajopt_loader.pipeline.feedback.FailureFeedback` drawing ``schedule``'s
    (a RandomSchedule) starts.

    Raises:
      ConfigError: no ``store``; a ``motion_weights`` name that matches no played trajectory;
        adaptive with ``bin_s`` and a played trajectory of unknown dt
        (:func:`~trajopt_loader.pipeline.adaptive.bin_steps_of`).
    """
    from trajopt_loader.pipeline.adaptive import BinLayout, bin_steps_of, trajectory_weights
    from trajopt_loader.pipeline.feedback import FailureFeedback
    from trajopt_loader.pipeline.marching import valid_start_counts

    if store is None:
        raise ConfigError("adaptive / motion_weights streams need the store (motion names, dt)")
    eligible = np.unique(schedule.eligible)  # explicit ids may repeat
    counts = valid_start_counts(schedule.lengths[eligible], config.window_size, config.end_policy)
    a = config.adaptive
    # a step lasts dt, or control_dt when windows count control steps
    step_s = (
        store.dts[eligible]
        if config.control_dt is None
        else np.full(len(eligible), float(config.control_dt))
    )
    steps = (
        bin_steps_of(step_s, a.bin_s, a.bin_steps) if a.enabled else counts
    )  # static weights only: one bin per trajectory
    layout = BinLayout(counts, steps)
    weights = trajectory_weights(config.motion_weights, store, eligible)
    return FailureFeedback(
        layout,
        weights,
        schedule.lengths[eligible],
        config.window_size,
        config.end_policy,
        a,
        seed=config.seed,
        num_envs=config.num_envs,
        lo=schedule.lo,
        hi=schedule.hi,
        process_count=process_count,
    )


def window_lengths(config, store, eligible) -> np.ndarray:
    """Trajectory lengths ``[n_traj]`` that schedules and windows count in: ``store.lengths``,
    or with ``config.control_dt`` control steps
    (:func:`~trajopt_loader.transforms.interpolate.control_lengths`, which raises ConfigError
    for a played trajectory of unknown dt)."""
    if config.control_dt is None:
        return store.lengths
    return control_lengths(store, config.control_dt, eligible)


def window_gather(config, store, eligible) -> grain.transforms.Map:
    """The Map reading window arrays: :class:`GatherKeys`, or with ``config.control_dt``
    :class:`~trajopt_loader.transforms.interpolate.InterpolateKeys`.

    Raises:
      ConfigError: see :func:`~trajopt_loader.transforms.interpolate.qpos_quaternions`.
      MissingKeyError: as GatherKeys.
    """
    if config.control_dt is None:
        return GatherKeys(store, config["keys"], config.dtype, traj_ids=eligible)
    return InterpolateKeys(
        store,
        config["keys"],
        config.dtype,
        traj_ids=eligible,
        control_dt=config.control_dt,
        quaternions=qpos_quaternions(config, store, eligible),
        table_bytes=config.cache_bytes,
    )


def episode_origin(config, store, eligible, gather) -> EpisodeOrigin:
    """:class:`EpisodeOrigin` for ``config.episode_origin_keys``: stored rows, or with
    ``config.control_dt`` the state interpolated at the episode's first control step by the
    windows' ``gather`` (an InterpolateKeys) when it reads qpos and qvel, so both agree bit for
    bit."""
    interpolator = None
    if config.control_dt is not None:
        interpolator = (
            gather
            if {"qpos", "qvel"} <= set(gather.keys)
            else InterpolateKeys(
                store,
                ("qpos", "qvel"),
                config.dtype,
                traj_ids=eligible,
                control_dt=config.control_dt,
                quaternions=qpos_quaternions(config, store, eligible),
                table_bytes=config.cache_bytes,
            )
        )
    return EpisodeOrigin(store, config.dtype, traj_ids=eligible, interpolator=interpolator)


def _id_ranges(ids: np.ndarray) -> str:
    """``[0, 1, 2, 5, 7, 8]`` → ``"0..2, 5, 7..8"`` (sorted, for messages)."""
    ids = np.unique(np.asarray(ids, np.int64))
    if not ids.size:
        return "none"
    breaks = np.flatnonzero(np.diff(ids) != 1)
    starts, ends = np.r_[ids[0], ids[breaks + 1]], np.r_[ids[breaks], ids[-1]]
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in zip(starts, ends, strict=True))


def check_store_model(config, store) -> None:
    """Check ``store`` against the environment's model: ``config.model_path`` and, with
    references enabled, ``config.references.model_path`` (:meth:`TrajectoryStore.check_model`
    over the played sources). Raises ModelError naming the first difference."""
    paths = [config.model_path]
    if config.references.enabled:
        paths.append(config.references.model_path)
    paths = list(dict.fromkeys(p for p in paths if p))
    if not paths:
        return
    sources = tuple(
        sorted({store.trajectories[int(i)].source for i in eligible_traj_ids(config, store)})
    )
    for path in paths:
        store.check_model(path, sources)


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
