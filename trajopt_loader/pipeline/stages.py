"""The stages :func:`~trajopt_loader.pipeline.dataset.make_dataset` assembles from a config.

Which trajectories the config plays (:func:`eligible_traj_ids`), the model check
(:func:`check_store_model`), the schedule and its sampler (:func:`make_schedule`,
:func:`make_feedback`), the lengths windows count in and the Map that reads them
(:func:`window_lengths`, :func:`window_gather`: stored frames, or control steps with
``config.control_dt``) and the episode origin (:func:`episode_origin`).
"""

from __future__ import annotations

import grain
import numpy as np

from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline.schedules import RandomSchedule
from trajopt_loader.pipeline.sequential import SequentialSchedule
from trajopt_loader.transforms.gather import GatherKeys
from trajopt_loader.transforms.interpolate import InterpolateKeys, control_lengths, qpos_quaternions
from trajopt_loader.transforms.origin import EpisodeOrigin

__all__ = [
    "check_store_model",
    "eligible_traj_ids",
    "episode_origin",
    "make_feedback",
    "make_schedule",
    "window_gather",
    "window_lengths",
]


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
