"""Saving and restoring the position of a batch stream (a grain / :class:`DeviceIterator` state).

The state of an iterator from :func:`trajopt_loader.pipeline.device_iterator` is a small
JSON-serializable dict describing the position right after the last batch handed to the consumer
(not the prefetched ones), so restoring it into a freshly built pipeline yields the very next batch,
bit-identical (the schedule is a pure function of config, seed and index).

Two ways to persist it:

* a plain JSON file, written atomically: :func:`save_state` / :func:`load_state`;
* alongside model parameters in an Orbax ``CheckpointManager``, through grain's Orbax handler
  (``grain.checkpoint.CheckpointSave`` / ``CheckpointRestore``; one ``process_{i}-of-{n}.json`` per
  JAX process): :func:`save_with_manager` / :func:`restore_with_manager`, or the ``*_args`` helpers
  to put the iterator into your own ``orbax.checkpoint.args.Composite``.

A state of a :func:`~trajopt_loader.pipeline.make_dataset` pipeline is ``{"next_index": k,
"stream": {...}}``: the stream fingerprint (:mod:`trajopt_loader.pipeline.fingerprint`) makes
``set_state`` refuse a state saved for another config or other store data, on every path above.
Bare grain states ``{"next_index": k}`` (older files) still load and restore, unchecked. Files of
any other shape are refused by :func:`load_state` with the file name and the expected shape.

Example::

    mngr = ocp.CheckpointManager(ckpt_dir)
    save_with_manager(mngr, step, it, params=ocp.args.StandardSave(params))
    ...
    it = device_iterator(make_dataset(config))              # a fresh pipeline
    restored = restore_with_manager(mngr, it, params=ocp.args.StandardRestore(params))
    next(it)                                                 # the batch after the saved one
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import grain
import grain.checkpoint

from trajopt_loader.errors import CheckpointError, CheckpointNotFoundError
from trajopt_loader.pipeline.state_check import check_state_shape

STATE_FORMAT = "trajopt_loader.iterator_state"
STATE_VERSION = 1
DEFAULT_ITEM = "data_iterator"


def _first_unserializable(value: Any, where: str = "state") -> str:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where}[{k!r}] (key of type {type(k).__name__})"
            found = _first_unserializable(v, f"{where}[{k!r}]")
            if found:
                return found
        return ""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _first_unserializable(v, f"{where}[{i}]")
            if found:
                return found
        return ""
    if value is None or isinstance(value, (str, int, float, bool)):
        return ""
    return f"{where} = {value!r} (type {type(value).__name__})"


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Writes an iterator ``state`` (``it.get_state()``) to the JSON file ``path``, atomically.

    The JSON goes to a temporary file in the same directory, is flushed to disk, then renamed over
    ``path``: a crash leaves either the previous file or the new one, never a partial file. Parent
    directories are created. Returns the path written.

    Raises:
      CheckpointError: ``state`` is not a dict of JSON values (the message names the offending
        entry), or not shaped like ``fingerprint.STATE_SHAPE`` (it could not be loaded back).
    """
    if not isinstance(state, dict):
        raise CheckpointError(
            f"iterator state must be a dict (from it.get_state()), got {type(state).__name__}."
        )
    _check_json(state, path)
    check_state_shape(state, f"iterator state to save to {os.fspath(path)}")
    return write_state_file(path, state)


def _check_json(state: dict, path) -> None:
    bad = _first_unserializable(state)
    if bad:
        raise CheckpointError(
            f"iterator state is not JSON-serializable at {bad}; cannot save it to "
            f"{os.fspath(path)}. Fix: pass the dict returned by DeviceIterator.get_state() / a "
            "grain iterator's get_state()."
        )


def write_state_file(path, state: dict) -> Path:
    """Atomic JSON write of ``state`` in the trajopt-loader envelope (format, version); returns
    the path. Raises CheckpointError when ``state`` is not JSON-serializable (names the value)."""
    _check_json(state, path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {"format": STATE_FORMAT, "version": STATE_VERSION, "state": state}, indent=1, sort_keys=True
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Reads an iterator state saved by :func:`save_state` (or a grain ``process_*.json`` file).

    Returns the state dict ``{"next_index": k, "stream": {...}}`` (``"stream"`` absent in bare
    grain states), to pass to ``it.set_state(state)`` on a freshly built iterator.

    Raises:
      CheckpointNotFoundError: no file at ``path`` (also a ``FileNotFoundError``).
      CheckpointError: the file is not JSON, not of a supported version, or holds something not
        shaped like an iterator state (``fingerprint.STATE_SHAPE``); names the file.
    """
    state = read_state_file(path)
    check_state_shape(state, f"iterator state file {os.fspath(path)}")
    return state


def read_state_file(path) -> Any:
    """The JSON payload of a state file (envelope removed), unvalidated. Raises
    CheckpointNotFoundError (no file) or CheckpointError (not JSON, another format or version)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"no iterator state file at {path}. Fix: pass the path given to save_state(), or "
            "start from scratch."
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"iterator state file {path} is not valid JSON ({e}); it may be truncated."
        ) from e
    if not isinstance(data, dict):
        raise CheckpointError(
            f"iterator state file {path} holds a {type(data).__name__}, expected a JSON object."
        )
    if data.get("format") != STATE_FORMAT:
        return data  # a bare grain state, as grain's own Orbax handler writes it
    if data.get("version") != STATE_VERSION or not isinstance(data.get("state"), dict):
        raise CheckpointError(
            f"iterator state file {path} has version {data.get('version')!r}; this "
            f"trajopt-loader reads version {STATE_VERSION}. Fix: restore with the version that "
            "wrote it."
        )
    return data["state"]


def orbax_save_args(iterator: grain.DatasetIterator) -> grain.checkpoint.CheckpointSave:
    """Orbax ``CheckpointArgs`` saving ``iterator``'s state (grain's handler), for a
    ``Composite``."""
    return grain.checkpoint.CheckpointSave(iterator)


def orbax_restore_args(iterator: grain.DatasetIterator) -> grain.checkpoint.CheckpointRestore:
    """Orbax ``CheckpointArgs`` restoring a saved state into ``iterator`` (calls ``set_state``)."""
    return grain.checkpoint.CheckpointRestore(iterator)


def save_with_manager(
    manager, step: int, iterator: grain.DatasetIterator, *, item: str = DEFAULT_ITEM, **items
) -> bool:
    """Saves ``iterator`` (under the name ``item``) plus other ``items`` at ``step`` with an Orbax
    manager.

    Args:
      manager: ``orbax.checkpoint.CheckpointManager``.
      step: training step (int) the checkpoint belongs to.
      iterator: the data iterator; its state is the position after the last batch it handed out.
      item: name of the iterator entry in the checkpoint.
      **items: other Orbax ``CheckpointArgs``, e.g. ``params=ocp.args.StandardSave(params)``.

    Returns:
      What ``manager.save`` returns (``False`` when the manager's policy skipped this step).

    Raises:
      CheckpointError: ``item`` is also the name of one of ``items`` (the iterator's entry would
        clash with it); nothing is saved. Fix: pass another ``item=`` or rename the entry.
    """
    import orbax.checkpoint as ocp

    if item in items:
        raise CheckpointError(
            f"item name {item!r} is used both for the iterator and another entry "
            f"(entries {sorted(items)}). Fix: pass another item= for the "
            "iterator, or rename the other entry."
        )
    return manager.save(step, args=ocp.args.Composite(**{item: orbax_save_args(iterator)}, **items))


def restore_with_manager(
    manager,
    iterator: grain.DatasetIterator,
    step: int | None = None,
    *,
    item: str = DEFAULT_ITEM,
    **items,
):
    """Restores ``iterator``'s position (in place) and other ``items`` from an Orbax manager.

    Args:
      manager: ``orbax.checkpoint.CheckpointManager``.
      iterator: a freshly built iterator of the same pipeline (same config); it is moved in place.
      step: step to restore; ``None`` = ``manager.latest_step()``.
      item: name under which the iterator was saved.
      **items: restore args of the other entries, e.g. ``params=ocp.args.StandardRestore(params)``.

    Returns:
      The restored ``orbax.checkpoint.args.Composite`` (``restored[item]`` is ``iterator``).

    Raises:
      CheckpointNotFoundError: the manager holds no checkpoint (or not ``step``).
      CheckpointError: (from ``iterator.set_state``) the saved state belongs to another stream
        (config fields or store data changed; see :mod:`~trajopt_loader.pipeline.fingerprint`).
    """
    import orbax.checkpoint as ocp

    steps = list(manager.all_steps())
    step = manager.latest_step() if step is None else step
    if step is None or step not in steps:
        raise CheckpointNotFoundError(
            f"no checkpoint at step {step!r} in {manager.directory} (steps present: {steps}). "
            "Fix: pass one of the steps present, or start from scratch."
        )
    return manager.restore(
        step, args=ocp.args.Composite(**{item: orbax_restore_args(iterator)}, **items)
    )
