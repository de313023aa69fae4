"""Checks made when a saved stream position is restored: which recorded fields differ, and the
shape and range of the state (the records themselves: :mod:`trajopt_loader.pipeline.fingerprint`).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from trajopt_loader.errors import CheckpointError
from trajopt_loader.pipeline.fingerprint import (
    BEFORE_ADDED,
    FEEDBACK_KEY,
    OMITTED_AT,
    STATE_KEY,
    STATE_SHAPE,
    STREAM_FIELDS,
    UNRESOLVED,
    stream_fields,
)

__all__ = ["check_state", "check_state_shape", "config_differences", "stream_differences"]


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
        stream_fields(d) if any(n in d for n in UNRESOLVED) else d for d in (saved, current)
    )
    defaults = stream_fields(default.get_config())
    out = []
    for name in STREAM_FIELDS:
        if name not in saved and name not in current:
            continue
        if name in BEFORE_ADDED and name not in saved and saved.get("schedule") != "random":
            saved = dict(saved, **{name: BEFORE_ADDED[name]})  # older streams: unbounded
        if name not in saved and current.get(name) == defaults.get(name, object()):
            continue  # a field added since: the saved stream behaved as its default
        absent = OMITTED_AT.get(name, "(absent)")
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
