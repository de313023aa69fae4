"""Several JAX processes (hosts) streaming one global batch: initialization, env sharding, resume.

With ``P = jax.process_count()`` processes, process ``p`` reads only the env rows
``[p * E / P, (p + 1) * E / P)`` of every schedule element (``E = config.num_envs``, divisible by
``P``, else :class:`~trajopt_loader.errors.ShardingError`). Schedule draws are made for all ``E``
envs and sliced, so the union over processes of element ``k`` is the single-process element ``k``
for the same config and seed (:mod:`trajopt_loader.pipeline.schedules`). The device stage of
:func:`~trajopt_loader.pipeline.device_iterator` then assembles the global ``[E, ...]`` arrays with
``jax.make_array_from_process_local_data(env_sharding(), local_batch)``::

    maybe_initialize_distributed(config.distributed)          # before any other JAX call
    it = device_iterator(make_dataset(config), env_sharding())  # global arrays, env axis sharded

Resuming: an iterator state is the global chunk index ``{"next_index": k}`` plus the stream
fingerprint of :mod:`~trajopt_loader.pipeline.fingerprint` (config fields + played store index;
none depends on the process index or count), the same in every process (all processes consume
the global batches in lockstep). :func:`save_process_state` writes ``process_{p}-of-{P}.json``
with that state and the process index/count; :func:`restore_process_state` checks the config
fields against its ``config`` and ``set_state`` checks the whole fingerprint (a state without one,
from an iterator not built by ``make_dataset`` or an older file, is checked against the
``"stream"`` config fields recorded beside it instead). Restoring with another process count
works: it reads every file of the saved run, checks they hold the same state, and sets it (element
``k`` of any process count is a slice of the same global element ``k``). grain's Orbax handler
(:mod:`trajopt_loader.pipeline.checkpoint`) instead needs the same process count.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from trajopt_loader.errors import (CheckpointError, CheckpointNotFoundError, ConfigError,
                                   ShardingError)
from trajopt_loader.pipeline.checkpoint import _read_state_file, _write_state_file
from trajopt_loader.pipeline.fingerprint import (STATE_KEY, STREAM_FIELDS, check_state_shape,
                                                 config_differences, stream_fields)
from trajopt_loader.pipeline.schedules import env_shard

# STREAM_FIELDS and stream_fields are also importable from here (their former home).
_FILE_RE = re.compile(r"^process_(\d+)-of-(\d+)\.json$")


def maybe_initialize_distributed(distributed, **kwargs) -> bool:
    """Call ``jax.distributed.initialize`` when ``distributed.coordinator_address`` is set.

    Args:
      distributed: ``config.distributed`` (``coordinator_address`` ``"host:port"`` of process 0,
        ``num_processes``, ``process_id``), or any object with those attributes. With both
        ``num_processes`` and ``process_id`` unset JAX detects them from the cluster (SLURM, TPU...).
      **kwargs: passed on to ``jax.distributed.initialize`` (e.g. ``initialization_timeout`` s).
    Returns:
      True if this call initialized the distributed runtime; False when no coordinator is set
      (one process) or it is already initialized.
    Raises:
      ConfigError: only one of ``num_processes`` / ``process_id`` set, ``process_id`` out of range,
        or ``num_processes > 1`` without a coordinator address.

    Must run before JAX starts its backends (before ``jax.devices()`` or any computation). On CPU,
    collectives between processes (``multihost_utils.process_allgather``, a jitted reduction over
    the global batch) use gloo; it is selected here unless another implementation is configured.
    """
    import jax

    address = getattr(distributed, "coordinator_address", None)
    n = getattr(distributed, "num_processes", None)
    pid = getattr(distributed, "process_id", None)
    if not address:
        if n is not None and int(n) > 1:
            raise ConfigError(f"distributed.num_processes={n} but distributed.coordinator_address "
                              "is unset; pass --config.distributed.coordinator_address=HOST:PORT "
                              "(process 0's address, the same for every process).")
        return False
    if (n is None) != (pid is None):
        raise ConfigError(f"distributed.num_processes={n} and distributed.process_id={pid}: set "
                          "both (e.g. --config.distributed.num_processes=2 "
                          "--config.distributed.process_id=0), or neither for cluster detection.")
    if n is not None and not 0 <= int(pid) < int(n):
        raise ConfigError(f"distributed.process_id={pid} must be in [0, num_processes={n}).")
    if jax.distributed.is_initialized():
        return False
    if getattr(jax.config, "jax_cpu_collectives_implementation", "gloo") in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(str(address), None if n is None else int(n),
                               None if pid is None else int(pid), **kwargs)
    return True


def process_env_range(num_envs: int, process_index: int | None = None,
                      process_count: int | None = None) -> tuple[int, int]:
    """Env rows ``[lo, hi)`` this process reads (default: ``jax.process_index()`` of ``count``).

    Raises:
      ShardingError: ``num_envs`` not divisible by the process count, or a bad index.
    """
    if process_index is None or process_count is None:
        import jax
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    return env_shard(int(num_envs), int(process_index), int(process_count))


def env_sharding(devices=None, axis_name: str = "env"):
    """``NamedSharding(Mesh(devices, (axis_name,)), P(axis_name))``: env axis over all devices.

    Args:
      devices: devices of the mesh; default ``jax.devices()`` (every device of every process).
        They are ordered by (process index, id), so process ``p``'s devices hold the contiguous
        global env rows ``[p * E / P, (p + 1) * E / P)`` that its local batch contains, in order.
      axis_name: mesh axis name.
    Returns:
      ``jax.sharding.NamedSharding``; for a batch leaf of rank ``r`` the device stage keeps the
      first ``r`` entries of the spec (``[E, W, n]`` and ``[E]`` split along env, 0-d replicated).
      ``E / P`` must be divisible by the number of devices per process.
    Raises:
      ShardingError: ``devices`` is given but empty (there is nothing to split the env axis over).
    """
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ShardingError("env_sharding got no devices; pass jax.devices() or leave it None.")
    ordered = sorted(devices, key=lambda d: (d.process_index, d.id))
    return NamedSharding(Mesh(np.asarray(ordered), (axis_name,)), PartitionSpec(axis_name))


def _process(process_index, process_count) -> tuple[int, int]:
    if process_index is None or process_count is None:
        import jax
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    return int(process_index), int(process_count)


def save_process_state(directory, iterator, config, *, process_index: int | None = None,
                       process_count: int | None = None) -> Path:
    """Write this process's iterator position to ``directory/process_{p}-of-{P}.json``.

    The file (written atomically, like :func:`~trajopt_loader.pipeline.checkpoint.save_state`)
    holds ``{"iterator": iterator.get_state(), "process_index": p, "process_count": P}``; the
    state of a ``make_dataset`` pipeline carries its stream fingerprint. For an iterator whose
    state has none, ``"stream": stream_fields(config)`` is recorded beside it. Every process calls
    it with its own iterator, at the same training step. ``process_index`` / ``process_count``
    default to JAX's.

    Returns the path written. Raises CheckpointError: the state is not JSON-serializable or not
    an iterator state (``fingerprint.STATE_SHAPE``).
    """
    p, n = _process(process_index, process_count)
    env_shard(int(config.num_envs), p, n)
    path = Path(directory) / f"process_{p}-of-{n}.json"
    state = iterator.get_state()
    check_state_shape(state, f"iterator state to save to {path}")
    record = {"iterator": state, "process_index": p, "process_count": n}
    if STATE_KEY not in state:
        record["stream"] = stream_fields(config)
    return _write_state_file(path, record)


def _load(path: Path) -> dict:
    record = _read_state_file(path)
    if not isinstance(record, dict) or \
            not {"iterator", "process_index", "process_count"} <= set(record):
        raise CheckpointError(f"{path} is not a per-process state written by save_process_state "
                              f"(expected keys iterator, process_index, process_count; got "
                              f"{sorted(record) if isinstance(record, dict) else record!r}); "
                              "restore it with trajopt_loader.pipeline.checkpoint instead.")
    check_state_shape(record["iterator"], f"the iterator state in {path}")
    return record


def restore_process_state(directory, iterator, config, *, process_index: int | None = None,
                          process_count: int | None = None) -> dict:
    """Move ``iterator`` (a fresh pipeline of ``config``) to the position saved in ``directory``.

    Reads ``process_{p}-of-{P}.json`` of this process. If the run was saved with another process
    count ``M``, reads all ``M`` files of that run, checks they hold one and the same iterator
    state, and sets it: the global stream continues exactly where it stopped, now split over
    ``P`` processes (``config.num_envs`` must divide by ``P``).

    Returns the record that was restored (see :func:`save_process_state`).
    Raises:
      CheckpointNotFoundError: no ``process_*-of-*.json`` file in ``directory``.
      CheckpointError: saved with different stream fields (names them, saved vs. config values)
        or for other store data (the stream fingerprint, see ``fingerprint``), malformed files,
        files of several process counts, missing files of the saved run, files that disagree, or
        a file that records another process index / count than its name.
      ShardingError: ``config.num_envs`` not divisible by this process count.
    """
    p, n = _process(process_index, process_count)
    env_shard(int(config.num_envs), p, n)
    directory = Path(directory)
    own = directory / f"process_{p}-of-{n}.json"
    if own.is_file():
        records = {p: _load(own)}
        saved_count = n
    else:
        found = sorted((int(m.group(2)), int(m.group(1)), f) for f in
                       (directory.iterdir() if directory.is_dir() else ())
                       if (m := _FILE_RE.match(f.name)))
        if not found:
            raise CheckpointNotFoundError(
                f"no process_*-of-*.json state in {directory}. Fix: pass the directory given to "
                "save_process_state(), or start from scratch.")
        counts = sorted({c for c, _, _ in found})
        if len(counts) > 1:
            raise CheckpointError(f"{directory} holds states of runs with {counts} processes; "
                                  "keep one run per directory.")
        saved_count = counts[0]
        records = {i: _load(f) for _, i, f in found}
        missing = sorted(set(range(saved_count)) - set(records))
        if missing:
            raise CheckpointError(f"{directory}: the run was saved by {saved_count} processes but "
                                  f"the files of processes {missing} are missing.")
    for i, rec in records.items():
        if (rec["process_index"], rec["process_count"]) != (i, saved_count):
            raise CheckpointError(
                f"process_{i}-of-{saved_count}.json in {directory} records process "
                f"{rec['process_index']} of {rec['process_count']}; the file was renamed or mixed up.")
    states = [rec["iterator"] for rec in records.values()]
    if any(s != states[0] for s in states[1:]):
        raise CheckpointError(f"the {saved_count} process states in {directory} differ "
                              f"({states[0]} vs. {next(s for s in states if s != states[0])}); "
                              "the processes were saved at different steps.")
    record = next(iter(records.values()))
    saved = record["iterator"][STATE_KEY]["config"] if STATE_KEY in record["iterator"] \
        else record.get("stream", {})
    diff = config_differences(saved, stream_fields(config))
    if diff:
        raise CheckpointError(f"the state in {directory} belongs to another stream "
                              f"({'; '.join(diff)}); restoring it would not continue the saved "
                              "stream. Fix: use the saved config values, or start from scratch.")
    try:
        iterator.set_state(record["iterator"])
    except CheckpointError as e:
        raise CheckpointError(f"cannot restore the state in {directory}: {e}") from e
    return record
