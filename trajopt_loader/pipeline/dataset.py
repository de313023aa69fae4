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
``get_state()`` is ``{"next_index": k, "stream": fingerprint}``; because element k is a pure
function of (config, k), restoring that state into a freshly built pipeline continues with
bit-identical batches, and the fingerprint (config fields + the played trajectories of the store
index, :mod:`trajopt_loader.pipeline.fingerprint`) makes ``set_state`` refuse a state saved for
another config or other data.

The trajectories a config plays must share one time step (:data:`DT_TOLERANCE`) unless
``config.allow_mixed_dt``: a window of ``W`` steps must mean the same duration in every env.
"""

from __future__ import annotations

from typing import Sequence

import grain
import numpy as np

from trajopt_loader.configs import validate_config
from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline import host_memory
from trajopt_loader.pipeline.fingerprint import StreamDataset, describe_stream
from trajopt_loader.pipeline.schedules import RandomSchedule, SequentialSchedule
from trajopt_loader.store.validate import DT_FIX
from trajopt_loader.transforms.cycles import ContinueCycles
from trajopt_loader.transforms.gather import GatherKeys, cast_dtype
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
            f"{tuple(config.motions)} of {store.path!r} (selected ids: "
            f"{_id_ranges(selected)}; the store has ids 0..{len(store.lengths) - 1})")
    return ids.astype(np.int32)


#: Largest relative spread of time steps ``make_dataset`` streams together unless
#: ``config.allow_mixed_dt``: ``max(dt) / min(dt) <= 1 + DT_TOLERANCE`` over the trajectories a
#: config plays. 5% admits the per-trajectory periods of one motion (Cassie ``aslip_walk``: one
#: cycle per speed, dt 0.02462-0.02540 s, 3.2%) and refuses rates that differ in kind (Cassie
#: ``agility_reference``: 0.0005 s and 0.0344 s), where a window of ``W`` steps would span
#: 16 ms in one env and 1.1 s in another.
DT_TOLERANCE = 0.05


def _rate_groups(ids: np.ndarray, dts: np.ndarray) -> list[np.ndarray]:
    """``ids`` split into groups of compatible dt (sorted by dt; a group spans <= DT_TOLERANCE)."""
    order = np.argsort(dts, kind="stable")
    groups, first = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or dts[order[i]] > dts[order[first]] * (1 + DT_TOLERANCE):
            groups.append(np.sort(ids[order[first:i]]))
            first = i
    return groups


def check_uniform_dt(config, store, eligible) -> None:
    """Refuse to stream trajectories of different time steps together (``config.allow_mixed_dt``
    lifts it). ``eligible``: int ``[n]`` traj ids; ``store.dts``: float64 ``[n_traj]`` seconds,
    NaN for an unknown dt: trajectories all of unknown dt stream (their rate is one, unknown);
    a mix of known and unknown is refused like a mix of rates.

    Raises:
      ConfigError: known and unknown dt mixed (names the fix: re-export with ``dt=``); or
        ``max(dt) / min(dt) > 1 + DT_TOLERANCE`` over ``eligible``; names each motion
        with its trajectories' dt range, the groups of compatible rate, and the fixes (resample at
        export, restrict ``motions`` / ``traj_ids``, or ``allow_mixed_dt=True``).
    """
    ids = np.unique(np.asarray(eligible, np.int64))
    if config.allow_mixed_dt or ids.size == 0:
        return
    dts = np.asarray(store.dts, np.float64)[ids]
    unknown = ~np.isfinite(dts)  # unknown dt (NaN, store.validate): one rate of its own
    selection = (f"{ids.size} trajectories selected in {store.path!r} (sources="
                 f"{tuple(config.sources)}, motions={tuple(config.motions)}"
                 + (f", traj_ids={tuple(config.traj_ids)}" if config.assignment == "explicit"
                    else "") + ")")
    if unknown.all() or (not unknown.any() and dts.max() <= dts.min() * (1 + DT_TOLERANCE)):
        return
    compose = _unknown_dt_message if unknown.any() else _mixed_dt_message
    raise ConfigError(compose(config, store, ids, dts, selection))


def _unknown_dt_message(config, store, ids, dts, selection: str) -> str:
    """Known and unknown (NaN) dt in one selection: which motions are unknown, and the fixes."""
    unknown = ~np.isfinite(dts)
    kinds = {f"{store.trajectories[int(i)].source}/{store.trajectories[int(i)].motion}"
             for i in ids[unknown]}
    return (f"{int(unknown.sum())} of the {selection} have an unknown dt ({', '.join(sorted(kinds))}"
            f") and {int((~unknown).sum())} a known one ({dts[~unknown].min():.4g}-"
            f"{dts[~unknown].max():.4g} s): a window of {config.window_size} steps would not "
            f"mean one duration. Fix one of: {DT_FIX}; play only one kind (--config.motions / "
            "--config.traj_ids); or stream them mixed on purpose with "
            "--config.allow_mixed_dt=True.")


def _mixed_dt_message(config, store, ids, dts, selection: str) -> str:
    """Known rates beyond DT_TOLERANCE: each motion's groups of one rate, and the fixes."""
    infos = [store.trajectories[int(i)] for i in ids]
    by_id = dict(zip(ids.tolist(), infos))

    def names(group, total) -> str:
        if len(group) == total:
            return f"{total} trajectories" if total > 1 else by_id[int(group[0])].name
        listed = ", ".join(by_id[int(i)].name for i in group[:4])
        return listed + (f" and {len(group) - 4} more" if len(group) > 4 else "")

    def span(d) -> str:
        lo, hi = f"{d.min():.4g}", f"{d.max():.4g}"
        return f"{lo} s" if lo == hi else f"{lo}-{hi} s"

    motions = {}
    for info, dt in zip(infos, dts):
        motions.setdefault(f"{info.source}/{info.motion}", []).append((info.traj_id, dt))
    lines = []
    for motion, rows in motions.items():
        m_ids, m_dts = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        parts = [f"{names(g, len(rows))} at dt {span(store.dts[g])}"
                 for g in _rate_groups(m_ids, m_dts)]
        lines.append(f"  {motion}: " + "; ".join(parts))
    best = max(_rate_groups(ids, dts), key=len)
    whole = [m for m, rows in motions.items() if {r[0] for r in rows} <= set(best.tolist())]
    if config.assignment == "explicit":
        keep = tuple(int(t) for t in config.traj_ids if t in set(best.tolist()))
        restrict = f"--config.traj_ids=\"{keep!r}\""
    elif sum(len(motions[m]) for m in whole) == len(best):
        restrict = f"--config.motions=\"{tuple(whole)!r}\""
    else:
        restrict = (f"--config.assignment=explicit --config.traj_ids=\"{tuple(best.tolist())!r}\""
                    if len(best) <= 16 else "--config.assignment=explicit with traj_ids of one rate")
    other = next(i for i in infos if i.traj_id not in set(best.tolist()))
    src, motion = other.source, other.motion
    return (
        f"the {selection} have time steps from {dts.min():.4g} s to {dts.max():.4g} s (x"
        f"{dts.max() / dts.min():.3g}; at most x{1 + DT_TOLERANCE:g} is streamed together): a "
        f"window of {config.window_size} steps would span {config.window_size * dts.min():.4g} s "
        f"in some envs and {config.window_size * dts.max():.4g} s in others.\n"
        + "\n".join(lines) + "\nFix one of: resample at export to one rate (`trajopt-loader "
        f"export ROOT {store.path} --source {src} --motion {motion} --model MODEL.xml "
        f"--resample-dt {float(np.median(store.dts[best])):.4g} --overwrite`); play trajectories "
        f"of one rate ({restrict}); or stream them mixed on purpose with "
        "--config.allow_mixed_dt=True and read each env's rate as store.dts[batch['traj_id']].")


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
                                  allow_wrap=config.allow_wrap,
                                  episode_length=config.episode_length, **common)
    if config.schedule == "random":
        return RandomSchedule(lengths, eligible, config.num_envs, config.window_size, **common)
    raise ConfigError(f"schedule={config.schedule!r} is not 'sequential' or 'random'")


def _id_ranges(ids: np.ndarray) -> str:
    """``[0, 1, 2, 5, 7, 8]`` → ``"0..2, 5, 7..8"`` (sorted, for messages)."""
    ids = np.unique(np.asarray(ids, np.int64))
    if not ids.size:
        return "none"
    breaks = np.flatnonzero(np.diff(ids) != 1)
    starts, ends = np.r_[ids[0], ids[breaks + 1]], np.r_[ids[breaks], ids[-1]]
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in zip(starts, ends))


def make_dataset(config, store=None, process_index: int | None = None,
                 process_count: int | None = None, *,
                 extra_transforms: Sequence[grain.transforms.Map] = (),
                 retain_freed_memory: bool = True) -> grain.IterDataset:
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
      :class:`~trajopt_loader.pipeline.fingerprint.StreamDataset` (a grain ``IterDataset``;
      ``.stream["fingerprint"]`` identifies config + played data; its iterators' states carry
      it and ``set_state`` checks it) whose elements are dicts of numpy arrays, ``E = num_envs /
      process_count``: ``{key: [E, W, *row] config.dtype for key in config.keys}``,
      ``step``, ``loop`` ``[E, W] int32``, ``valid [E, W] bool``, ``env_id``, ``traj_id``,
      ``start``, ``episode_first_step``, ``episode_loop`` ``[E] int32`` and
      ``episode_start [E] bool``. With ``config.cyclic`` the base of steps with ``loop >= 1``
      continues from the previous loop (``transforms.cycles``). Endless unless
      ``config.num_batches`` is set. Same config and seed give the identical stream.

    Raises:
      ConfigError: invalid config, no ``zarr_path`` without a store, invalid ``references``
        fields, played trajectories of different dt (:func:`check_uniform_dt`); with
        ``config.cyclic`` and ``end_policy="wrap"``, a played trajectory whose ``qpos`` rows have
        fewer than 7 values (no floating base; fix: ``--config.cyclic=False``).
      ConventionError: with ``config.cyclic`` and ``end_policy="wrap"``, a played trajectory whose
        base quaternion ``qpos[3:7]`` at frame 0, ``L-2`` or ``L-1`` is not of unit norm in its
        source's convention (``transforms.cycles.ContinueCycles.deltas``; all played
        trajectories' ``Delta`` are computed here, so no cyclic error surfaces mid-stream).
      ShardingError: ``num_envs`` not divisible by ``process_count``.
      MissingKeyError: a configured key is not in the store (or, with ``config.cyclic``, a
        played trajectory has no ``qpos``).
      ModelError, RobotSpecError: ``config.references`` names a model or robot spec that does not
        load or fit.

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
            raise ConfigError("config.zarr_path is unset and no store was given; pass "
                              "--config.zarr_path=/path/to/store.zarr")
        from trajopt_loader.store import TrajectoryStore
        dtype = cast_dtype(config.dtype)  # cache floats in the batch dtype: no per-batch cast
        store = TrajectoryStore(config.zarr_path, cache_bytes=config.cache_bytes,
                                cache_dtype=dtype if dtype.kind == "f" else None,
                                timeout_s=config.remote_timeout_s, retries=config.remote_retries)
    if config.references.enabled and not extra_transforms:
        from trajopt_loader.transforms.references_config import reference_transforms
        extra_transforms = reference_transforms(config, store)
    if process_index is None or process_count is None:
        import jax
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    eligible = eligible_traj_ids(config, store)
    check_uniform_dt(config, store, eligible)
    if config.working_set.enabled:  # data larger than the host cache: pipeline/working_set.py
        from trajopt_loader.pipeline.working_set import working_set_pipeline
        schedule, gather = working_set_pipeline(config, store, eligible, process_index,
                                                process_count)
    else:
        schedule = make_schedule(config, store.lengths, eligible, process_index, process_count)
        gather = GatherKeys(store, config["keys"], config.dtype, traj_ids=eligible)
        if hasattr(store, "cache"):  # decode only what this process's envs can play
            store.cache.share(schedule.playable())
    if retain_freed_memory:
        host_memory.retain_freed_memory()
    ds = grain.MapDataset.source(schedule)
    ds = ds.map(WindowIndices(store.lengths, config.window_size, config.end_policy))
    ds = ds.map(gather)
    if config.cyclic:
        cycles = ContinueCycles(store)
        if config.end_policy == "wrap":  # loops >= 1 can occur: check and cache every Delta now
            cycles.deltas(np.unique(eligible))
        ds = ds.map(cycles)
    for transform in extra_transforms:
        ds = ds.map(transform)
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=config.read_threads,
                                              prefetch_buffer_size=config.host_prefetch))
    return StreamDataset(ds, describe_stream(config, store, eligible), config.num_batches)
