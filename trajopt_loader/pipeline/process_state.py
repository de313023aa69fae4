"""Per-process iterator state files of a multi-process run: save, and restore with any process
count.

An iterator state is the global chunk index ``{"next_index": k}`` plus the stream fingerprint of
:mod:`~trajopt_loader.pipeline.fingerprint` (config fields + played store index; none depends on
the process index or count), the same in every process (all processes consume the global batches
in lockstep, :mod:`trajopt_loader.pipeline.distributed`). :func:`save_process_state` writes
``process_{p}-of-{P}.json`` with that state and the process index/count;
:func:`restore_process_state` checks the config fields against its ``config`` and ``set_state``
checks the whole fingerprint (a state without one, from an iterator not built by ``make_dataset``
or an older file, is checked against the ``"stream"`` config fields recorded beside it instead).
Restoring with another process count works: it reads every file of the saved run, checks they hold
the same state, and sets it (element ``k`` of any process count is a slice of the same global
element ``k``). Files are written and read as :mod:`trajopt_loader.pipeline.checkpoint`'s JSON
state files.
"""

from __future__ import annotations

import re
from pathlib import Path

from trajopt_loader.errors import CheckpointError, CheckpointNotFoundError
from trajopt_loader.pipeline.checkpoint import read_state_file, write_state_file
from trajopt_loader.pipeline.distributed import current_process
from trajopt_loader.pipeline.fingerprint import STATE_KEY, stream_fields
from trajopt_loader.pipeline.schedules import env_shard
from trajopt_loader.pipeline.state_check import check_state_shape, config_differences

__all__ = ["restore_process_state", "save_process_state"]

_FILE_RE = re.compile(r"^process_(\d+)-of-(\d+)\.json$")


def save_process_state(
    directory,
    iterator,
    config,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
) -> Path:
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
    p, n = current_process(process_index, process_count)
    env_shard(int(config.num_envs), p, n)
    path = Path(directory) / f"process_{p}-of-{n}.json"
    state = iterator.get_state()
    check_state_shape(state, f"iterator state to save to {path}")
    record = {"iterator": state, "process_index": p, "process_count": n}
    if STATE_KEY not in state:
        record["stream"] = stream_fields(config)
    return write_state_file(path, record)


def _load(path: Path) -> dict:
    record = read_state_file(path)
    if not isinstance(record, dict) or not {"iterator", "process_index", "process_count"} <= set(
        record
    ):
        raise CheckpointError(
            f"{path} is not a per-process state written by save_process_state "
            f"(expected keys iterator, process_index, process_count; got "
            f"{sorted(record) if isinstance(record, dict) else record!r}); "
            "restore it with trajopt_loader.pipeline.checkpoint instead."
        )
    check_state_shape(record["iterator"], f"the iterator state in {path}")
    return record


def restore_process_state(
    directory,
    iterator,
    config,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
) -> dict:
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
    p, n = current_process(process_index, process_count)
    env_shard(int(config.num_envs), p, n)
    directory = Path(directory)
    own = directory / f"process_{p}-of-{n}.json"
    if own.is_file():
        records = {p: _load(own)}
        saved_count = n
    else:
        found = sorted(
            (int(m.group(2)), int(m.group(1)), f)
            for f in (directory.iterdir() if directory.is_dir() else ())
            if (m := _FILE_RE.match(f.name))
        )
        if not found:
            raise CheckpointNotFoundError(
                f"no process_*-of-*.json state in {directory}. Fix: pass the directory given to "
                "save_process_state(), or start from scratch."
            )
        counts = sorted({c for c, _, _ in found})
        if len(counts) > 1:
            raise CheckpointError(
                f"{directory} holds states of runs with {counts} processes; "
                "keep one run per directory."
            )
        saved_count = counts[0]
        records = {i: _load(f) for _, i, f in found}
        missing = sorted(set(range(saved_count)) - set(records))
        if missing:
            raise CheckpointError(
                f"{directory}: the run was saved by {saved_count} processes but "
                f"the files of processes {missing} are missing."
            )
    for i, rec in records.items():
        if (rec["process_index"], rec["process_count"]) != (i, saved_count):
            raise CheckpointError(
                f"process_{i}-of-{saved_count}.json in {directory} records process "
                f"{rec['process_index']} of {rec['process_count']}; the file was renamed or "
                "mixed up."
            )
    states = [rec["iterator"] for rec in records.values()]
    if any(s != states[0] for s in states[1:]):
        raise CheckpointError(
            f"the {saved_count} process states in {directory} differ "
            f"({states[0]} vs. {next(s for s in states if s != states[0])}); "
            "the processes were saved at different steps."
        )
    record = next(iter(records.values()))
    saved = (
        record["iterator"][STATE_KEY]["config"]
        if STATE_KEY in record["iterator"]
        else record.get("stream", {})
    )
    diff = config_differences(saved, stream_fields(config))
    if diff:
        raise CheckpointError(
            f"the state in {directory} belongs to another stream "
            f"({'; '.join(diff)}); restoring it would not continue the saved "
            "stream. Fix: use the saved config values, or start from scratch."
        )
    try:
        iterator.set_state(record["iterator"])
    except CheckpointError as e:
        raise CheckpointError(f"cannot restore the state in {directory}: {e}") from e
    return record
