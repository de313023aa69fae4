"""Stream fingerprints: what a saved stream position refers to, checked when it is restored.

An iterator position ``{"next_index": k}`` only means something for the stream it was saved from:
element ``k`` is a pure function of the config and of the trajectories it plays. So
:func:`~trajopt_loader.pipeline.make_dataset` returns a
:class:`~trajopt_loader.pipeline.stream_iterators.StreamDataset` whose iterators'
``get_state()`` is::

    {"next_index": k,                       # grain's position
     "stream": {"version": 1,
                "fingerprint": "9c1f...",   # sha256 (16 hex) of config + store below
                "config": stream_fields(config),           # resolved, see below
                "store": {"trajectories": n,               # trajectories the config plays
                          "keys": {"qpos": "(35,) float64", ...},  # row shape, stored dtype
                          "index": "<traj_id> <path> <length> <dt> <source_file>\\n..."}}}

and ``set_state`` refuses a state whose stream differs (:class:`CheckpointError` naming the config
fields, saved vs. config values, or the first trajectory of the index that changed), before the
pipeline moves. :func:`~trajopt_loader.pipeline.device_iterator` nests this state unchanged, so
JSON files (``save_state``), per-process files (``save_process_state``) and Orbax checkpoints
(grain's handler calls ``get_state`` / ``set_state``) all carry and check it.

What counts is the RESOLVED stream (equivalent spellings of one stream restore each other):

* the selection (``sources``, ``motions``, which ``traj_ids``) as the trajectories it resolves
  to, the store index: ``motions=("walk",)`` and ``("s/walk",)`` are one stream.
* config: :func:`stream_fields`, the :data:`STREAM_FIELDS` resolved: ``stride`` None ->
  ``window_size``; ``keys`` sorted (a batch is a dict); ``dtype`` numpy's name; ``traj_ids`` the
  played order unless it is increasing id order (then None); a field the schedule does not use
  is None and not compared (``stride``, ``allow_wrap``, ``assignment``, ``episode_length``,
  ``random_start`` of ``schedule="random"``; ``episode_length`` None and 0 are both 0, unbounded;
  ``seed`` unless schedule or assignment is random, adaptive or ``random_start``);
  ``motion_weights`` sorted pairs; ``adaptive`` False when off, else its :data:`ADAPTIVE_FIELDS`
  (``bin_s`` None when ``bin_steps`` is set); ``control_dt`` a float, or ``"stored"`` when unset
  (the stored frames); ``future_steps`` and ``episode_origin_keys`` change the batch shapes /
  keys (these and ``random_start`` are recorded only when not at their defaults, 0 / False, so
  streams that do not use them keep their fingerprints); ``working_set`` only when enabled with
  the random schedule, as its ``rotate_every`` and ``cache_bytes`` (the sets depend on them; the
  sequential schedule's working set does not change its stream); sequential ``"explicit"`` is
  ``"round_robin"`` over the given ids. Not ``num_batches`` (a longer or shorter run continues
  the same stream), buffers, threads, ``cache_bytes`` (but see ``working_set``), ``references``
  (computed from the data) or ``allow_mixed_dt`` / ``model_path`` (guards). A field absent from
  a saved state (added since) matches the config's default value, except ``episode_length``:
  states written before it existed were unbounded (0); records written before resolution (they
  list ``sources`` / ``motions``) are resolved when compared.
* store: per played trajectory its traj_id, path, length, dt and source file, and for each
  configured key its row shape and stored dtype (appending a motion the config does not play
  keeps states valid). Not covered: array values rewritten under identical metadata (the chunk
  checksums of format-2 indexes are not part of the fingerprint).

A bare grain state ``{"next_index": k}`` (older, or stripped on purpose) restores unchecked,
with a warning. The iterator classes that carry these records are
:mod:`trajopt_loader.pipeline.stream_iterators`; the checks made on restore (which fields
differ, state shape and range) are :mod:`trajopt_loader.pipeline.state_check`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import numpy as np

#: Config fields that define element ``k`` besides the selection (recorded as the store index).
STREAM_FIELDS = (
    "num_envs",
    "window_size",
    "stride",
    "schedule",
    "assignment",
    "traj_ids",
    "allow_wrap",
    "end_policy",
    "keys",
    "dtype",
    "seed",
    "cyclic",
    "episode_length",
    "motion_weights",
    "adaptive",
    "control_dt",
    "future_steps",
    "random_start",
    "episode_origin_keys",
    "working_set",
)
#: ``adaptive`` sub-fields that change the stream (not ``report_timeout_s``, a guard).
ADAPTIVE_FIELDS = (
    "lag",
    "bin_s",
    "bin_steps",
    "ema_rate",
    "kernel_size",
    "kernel_decay",
    "uniform_mix",
)
UNRESOLVED = ("sources", "motions")
#: Fields recorded only when they differ from these values (added after version 1: streams that
#: do not use them keep their fingerprints).
OMITTED_AT = {"future_steps": 0, "random_start": False, "episode_origin_keys": False}
#: Fields added after states were first written, with the value every older stream had.
BEFORE_ADDED = {"episode_length": 0}  # listed by records written before resolution
FINGERPRINT_VERSION = 1
STATE_KEY = "stream"
#: The iterator state of a ``make_dataset`` pipeline, as error messages describe it.
STATE_SHAPE = (
    '{"next_index": k (int >= 0), "stream": {"version", "fingerprint", "config", '
    '"store"} (optional, written by make_dataset pipelines), "feedback": {...} '
    "(adaptive streams, pipeline/feedback.py)}"
)
FEEDBACK_KEY = "feedback"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "to_dict"):  # a nested ConfigDict (adaptive)
        return value.to_dict()
    return value


def stream_fields(config) -> dict[str, Any]:
    """The :data:`STREAM_FIELDS` present in ``config`` (a ConfigDict or a mapping of its fields),
    resolved as the module docstring says and JSON-ready (tuples as lists); absent ones stay
    absent. Equivalent configs give equal dicts (``stride=None`` and ``stride=window_size``)."""
    f = {name: _jsonable(config[name]) for name in STREAM_FIELDS if name in config}
    sequential = f.get("schedule", "sequential") == "sequential"
    explicit = f.get("assignment") == "explicit"
    if not sequential:
        f.update(
            {
                name: None
                for name in ("stride", "allow_wrap", "assignment", "episode_length", "random_start")
                if name in f
            }
        )
    elif explicit:
        f["assignment"] = "round_robin"
    if sequential and "episode_length" in f:  # None and 0 both mean unbounded: 0
        f["episode_length"] = int(f["episode_length"] or 0)
    if sequential and "stride" in f and f["stride"] is None:
        f["stride"] = f.get("window_size")
    if "traj_ids" in f:
        ids = [int(i) for i in f["traj_ids"]] if explicit else []
        f["traj_ids"] = None if ids == sorted(set(ids)) else ids
    adaptive = isinstance(f.get("adaptive"), dict) and bool(f["adaptive"].get("enabled"))
    if (
        "seed" in f
        and sequential
        and f.get("assignment") != "random"
        and not adaptive
        and not f.get("random_start")
    ):
        f["seed"] = None
    if "keys" in f:
        f["keys"] = sorted(f["keys"])
    if "motion_weights" in f:  # pairs: a later one wins (adaptive.trajectory_weights)
        f["motion_weights"] = sorted([n, float(w)] for n, w in dict(f["motion_weights"]).items())
    if "adaptive" in f:  # False when off (not None: on vs. off is compared)
        a = f["adaptive"]
        f["adaptive"] = {n: a.get(n) for n in ADAPTIVE_FIELDS} if a.get("enabled") else False
        if f["adaptive"] and f["adaptive"]["bin_steps"]:
            f["adaptive"]["bin_s"] = None
    if "control_dt" in f:  # compared like any value: None (stored frames) is "stored"
        f["control_dt"] = "stored" if f["control_dt"] is None else float(f["control_dt"])
    for name, value in OMITTED_AT.items():
        if name in f and f[name] in (value, None):
            del f[name]
    f.pop("working_set", None)  # resolved below
    ws = config["working_set"] if "working_set" in config else None
    # the random schedule's sets depend on the budget; the sequential stream does not change
    # (pipeline/working_set_sequential.py), so a restore may use another budget
    if ws is not None and ("enabled" not in ws or ws["enabled"]) and not sequential:
        f["working_set"] = {
            "rotate_every": int(ws["rotate_every"]),
            "cache_bytes": int(ws["cache_bytes"] if "cache_bytes" in ws else config["cache_bytes"]),
        }
    if "dtype" in f:  # numpy's name ("f4" is "float32"); names numpy lacks (bfloat16) as given
        with contextlib.suppress(TypeError):
            f["dtype"] = np.dtype(f["dtype"]).name
    return f


def _index_line(info) -> str:
    return f"{info.traj_id} {info.path} {info.length} {float(info.dt)!r} {info.source_file}"


def describe_stream(config, store, traj_ids) -> dict[str, Any]:
    """The ``"stream"`` record of a pipeline of ``config`` playing ``traj_ids`` (int ``[n]``,
    duplicates allowed) of ``store`` (see the module docstring). JSON-serializable."""
    ids = np.unique(np.asarray(traj_ids, np.int64)).tolist()
    infos = [store.trajectories[i] for i in ids]
    keys = {}
    for key in config["keys"]:
        kinds = sorted(
            {
                f"{tuple(i.keys[key][0])} {i.keys[key][1]}" if key in i.keys else "missing"
                for i in infos
            }
        )
        keys[key] = "; ".join(kinds)
    record = {
        "config": stream_fields(config),
        "store": {
            "trajectories": len(ids),
            "keys": keys,
            "index": "\n".join(_index_line(i) for i in infos),
        },
    }
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return {
        "version": FINGERPRINT_VERSION,
        "fingerprint": hashlib.sha256(text.encode()).hexdigest()[:16],
        **record,
    }
