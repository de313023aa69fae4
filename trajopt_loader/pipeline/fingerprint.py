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
  streams that do not use them keep their fingerprints); sequential ``"explicit"`` is
  ``"round_robin"`` over the given ids. Not ``num_batches`` (a longer or shorter run continues
  the same stream), buffers, threads, ``cache_bytes``, ``references`` (computed from the data) or
  ``allow_mixed_dt`` / ``model_path`` (guards). A field absent from a saved state (added since)
  matches the config's default value, except ``episode_length``: states written before it
  existed were unbounded (0); records written before resolution (they list ``sources`` /
  ``motions``) are resolved when compared.
* store: per played trajectory its traj_id, path, length, dt and source file, and for each
  configured key its row shape and stored dtype (appending a motion the config does not play
  keeps states valid). Not covered: array values rewritten under identical metadata (the chunk
  checksums of format-2 indexes are not part of the fingerprint).

A bare grain state ``{"next_index": k}`` (older, or stripped on purpose) restores unchecked,
with a warning. The iterator classes that carry and check these records are
:mod:`trajopt_loader.pipeline.stream_iterators`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from typing import Any

import numpy as np

from trajopt_loader.errors import CheckpointError

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
_UNRESOLVED = ("sources", "motions")
#: Fields recorded only when they differ from these values (added after version 1: streams that
#: do not use them keep their fingerprints).
_OMITTED_AT = {"future_steps": 0, "random_start": False, "episode_origin_keys": False}
#: Fields added after states were first written, with the value every older stream had.
_BEFORE_ADDED = {"episode_length": 0}  # listed by records written before resolution
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
    for name, value in _OMITTED_AT.items():
        if name in f and f[name] in (value, None):
            del f[name]
    ws = config["working_set"] if "working_set" in config else None
    if ws is not None and ("enabled" not in ws or ws["enabled"]):  # sets depend on the budget
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


def _describe_line(line: str) -> str:
    parts = line.split(" ", 4)
    if len(parts) < 5:
        return repr(line)
    traj_id, path, length, dt, source = parts
    return f"traj_id {traj_id} = {path} ({length} steps, dt {dt} s, from {source!r})"


def _index_difference(saved: str, now: str) -> str:
    a, b = saved.split("\n") if saved else [], now.split("\n") if now else []
    head = f"store index changed: {len(a)} played trajectories → {len(b)}"
    for i, (x, y) in enumerate(zip(a, b, strict=False)):  # lengths may differ: common prefix
        if x != y:
            return (
                f"{head}, first difference at position {i}: saved {_describe_line(x)}, "
                f"now {_describe_line(y)}"
            )
    if len(a) > len(b):
        return f"{head}; no longer played: {_describe_line(a[len(b)])}"
    return f"{head}; newly played: {_describe_line(b[len(a)])}"


def _show(name: str, value: Any) -> str:
    if name == "traj_ids" and value is None:
        return "(each played trajectory once, in id order)"
    if isinstance(value, list) and len(value) > 12:
        return f"[{', '.join(map(repr, value[:12]))}, ... ({len(value)} in all)]"
    return repr(value)


def config_differences(saved: dict, current: dict) -> list[str]:
    """``"name: saved X, config Y"`` for each :data:`STREAM_FIELDS` entry that differs between
    two :func:`stream_fields` dicts (one written before resolution, listing ``sources`` /
    ``motions``, is resolved first). A field the saved dict lacks (added to the config since)
    matches its default value; a field one side does not use (None, except ``traj_ids``) is not
    compared (the field that makes it unused differs); names outside ``STREAM_FIELDS`` are
    ignored."""
    from trajopt_loader.configs import default

    saved, current = (
        stream_fields(d) if any(n in d for n in _UNRESOLVED) else d for d in (saved, current)
    )
    defaults = stream_fields(default.get_config())
    out = []
    for name in STREAM_FIELDS:
        if name not in saved and name not in current:
            continue
        if name in _BEFORE_ADDED and name not in saved and saved.get("schedule") != "random":
            saved = dict(saved, **{name: _BEFORE_ADDED[name]})  # older streams: unbounded
        if name not in saved and current.get(name) == defaults.get(name, object()):
            continue  # a field added since: the saved stream behaved as its default
        absent = _OMITTED_AT.get(name, "(absent)")
        a, b = saved.get(name, absent), current.get(name, absent)
        if name != "traj_ids" and (a is None or b is None):
            continue
        if a != b:
            out.append(f"{name}: saved {_show(name, a)}, config {_show(name, b)}")
    return out


def stream_differences(saved: dict, current: dict) -> list[str]:
    """Human-readable differences between two ``"stream"`` records (empty: same stream)."""
    if saved.get("version") != current["version"]:
        return [
            f"fingerprint version: saved {saved.get('version')!r}, this trajopt-loader "
            f"writes {current['version']}"
        ]
    out = config_differences(saved["config"], current["config"])
    s_old, s_new = saved["store"], current["store"]
    for key in sorted(set(s_old["keys"]) & set(s_new["keys"])):
        if s_old["keys"][key] != s_new["keys"][key]:
            out.append(f"store key {key!r}: saved {s_old['keys'][key]}, now {s_new['keys'][key]}")
    if s_old["index"] != s_new["index"]:
        out.append(_index_difference(s_old["index"], s_new["index"]))
    return out


def _is_record(stream: Any) -> bool:
    return (
        isinstance(stream, dict)
        and isinstance(stream.get("fingerprint"), str)
        and isinstance(stream.get("config"), dict)
        and isinstance(stream.get("store"), dict)
        and isinstance(stream["store"].get("keys"), dict)
        and isinstance(stream["store"].get("index"), str)
    )


def check_state_shape(state: Any, where: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` is shaped like :data:`STATE_SHAPE`.

    ``where`` names the state in the message (e.g. ``"iterator state file ckpt/data.json"``).
    """
    k = state.get("next_index") if isinstance(state, dict) else None
    ok = (
        isinstance(state, dict)
        and set(state) <= {"next_index", STATE_KEY, FEEDBACK_KEY}
        and isinstance(state.get(FEEDBACK_KEY, {}), dict)
        and isinstance(k, int)
        and not isinstance(k, bool)
        and k >= 0
        and (STATE_KEY not in state or _is_record(state[STATE_KEY]))
    )
    if not ok:
        shown = json.dumps(state, default=repr)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        raise CheckpointError(
            f"{where} is not an iterator state of a trajopt-loader stream: it holds {shown}; "
            f"expected {STATE_SHAPE}, as returned by it.get_state() and written by "
            "save_state(path, it.get_state()). Fix: pass the file written by save_state (or "
            "grain's process_<i>-of-<n>.json), or start the stream from scratch."
        )


def check_state(
    state: Any, stream: dict, *, num_batches: int | None = None, where: str = "iterator state"
) -> dict[str, int]:
    """Validate ``state`` for the pipeline described by ``stream``; returns grain's bare state.

    Raises:
      CheckpointError: malformed state; ``next_index`` past ``num_batches``; a ``"stream"`` that
        differs from ``stream`` (names each difference and how to proceed).
    """
    check_state_shape(state, where)
    k = state["next_index"]
    if num_batches is not None and k > num_batches:
        raise CheckpointError(
            f"{where} has next_index {k}, past the end of this stream "
            f"(num_batches={num_batches}). Fix: raise num_batches, or start "
            "from scratch."
        )
    from trajopt_loader.pipeline.schedules import ENDLESS

    if num_batches is None and k >= ENDLESS:
        raise CheckpointError(
            f"{where} has next_index {k}, outside [0, {ENDLESS}) of an endless "
            "stream (num_batches=None); no iterator reaches it. Fix: pass the "
            "state saved by it.get_state(), or start from scratch."
        )
    if STATE_KEY not in state:
        warnings.warn(
            f"{where} {{'next_index': {k}}} has no stream fingerprint; restored "
            "without checking that it belongs to this config and store.",
            stacklevel=3,
        )
    else:
        diffs = stream_differences(state[STATE_KEY], stream)
        if diffs:
            raise CheckpointError(
                f"{where} belongs to another stream than this pipeline ("
                + "; ".join(diffs)
                + "): restoring it would read other data at the saved "
                "position. Fix: rebuild the pipeline with the saved config values and the store "
                "as it was when saved; or start this stream from scratch (do not restore); or, "
                "if the trajectories played are known to be unchanged, restore the bare "
                f"position unchecked: it.set_state({{'next_index': {k}}})."
            )
    return {"next_index": k}
