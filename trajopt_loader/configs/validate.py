"""Validation of trajopt-loader configs: every field's type and range, unknown / missing names.

``validate_config(config)`` is what :func:`trajopt_loader.configs.load_config` runs after the
overrides; field names and meanings: ``trajopt_loader/configs/default.py``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from ml_collections import config_dict

from trajopt_loader.choices import (
    ASSIGNMENTS,
    EE_SOURCES,
    END_POLICIES,
    INT32_MAX,
    SCHEDULES,
    cast_dtype,
)
from trajopt_loader.errors import ConfigError

__all__ = ["check_field", "flat_fields", "is_int", "is_number", "suggestion", "validate_config"]


def suggestion(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def flat_fields(config: config_dict.ConfigDict, prefix: str = "") -> dict[str, Any]:
    """``{"references.enabled": value, ...}``: every leaf field of ``config`` by dotted name."""
    out = {}
    for key, value in config.items():
        if isinstance(value, config_dict.ConfigDict):
            out.update(flat_fields(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_field(ok: bool, name: str, value: Any, expected: str) -> None:
    """Raise ConfigError naming ``name``, ``value`` and ``expected`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"config field {name}={value!r} is invalid: expected {expected}.")


def is_int(value: Any, low: int, high: int = 2**63 - 1) -> bool:
    """An int (not a bool) in ``[low, high]``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = suggestion(str(value), choices)
        raise ConfigError(f"config field {name}={value!r} is not one of {choices}.{hint}")


def _str_tuple(name: str, value: Any) -> None:
    check_field(
        isinstance(value, tuple) and all(isinstance(v, str) and v for v in value),
        name,
        value,
        "a tuple of non-empty strings",
    )


def is_number(value: Any, low: float, high: float) -> bool:
    """An int or float (not a bool) in ``[low, high]``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def validate_config(config: config_dict.ConfigDict) -> config_dict.ConfigDict:
    """Check every field of a trajopt-loader config; returns it unchanged.

    Unknown or missing field names (against ``default.get_config()``) and bad values raise.

    Raises:
      ConfigError: naming the field, the value, what is expected, and a close name if any.
    """
    from trajopt_loader.configs import default

    flat, known = flat_fields(config), flat_fields(default.get_config())
    for name in flat:
        if name not in known:
            raise ConfigError(f"unknown config field {name!r}.{suggestion(name, known)}")
    for name in known:
        if name not in flat:
            raise ConfigError(
                f"config field {name!r} is missing; start from "
                "trajopt_loader.configs.default.get_config()"
            )
    c = config
    check_field(
        c.zarr_path is None or (isinstance(c.zarr_path, str) and c.zarr_path),
        "zarr_path",
        c.zarr_path,
        "a store path or URL (or unset)",
    )
    check_field(is_int(c.num_envs, 1, INT32_MAX), "num_envs", c.num_envs, "an int >= 1")
    check_field(is_int(c.window_size, 1, INT32_MAX), "window_size", c.window_size, "an int >= 1")
    check_field(
        c.stride is None or is_int(c.stride, 1, INT32_MAX),
        "stride",
        c.stride,
        "an int >= 1, or None for window_size",
    )
    check_field(
        is_int(c.future_steps, 0, INT32_MAX - c.window_size),
        "future_steps",
        c.future_steps,
        "an int >= 0 (look-ahead frames per window), with window_size + future_steps < 2**31",
    )
    check_field(isinstance(c.random_start, bool), "random_start", c.random_start, "True or False")
    check_field(
        isinstance(c.episode_origin_keys, bool),
        "episode_origin_keys",
        c.episode_origin_keys,
        "True or False",
    )
    _choice("schedule", c.schedule, SCHEDULES)
    _choice("assignment", c.assignment, ASSIGNMENTS)
    _choice("end_policy", c.end_policy, END_POLICIES)
    check_field(
        isinstance(c.traj_ids, tuple) and all(is_int(t, 0, INT32_MAX) for t in c.traj_ids),
        "traj_ids",
        c.traj_ids,
        "a tuple of trajectory ids >= 0",
    )
    check_field(
        (c.assignment == "explicit") == bool(c.traj_ids),
        "traj_ids",
        c.traj_ids,
        "a non-empty tuple exactly when assignment='explicit'",
    )
    _str_tuple("sources", c.sources)
    _str_tuple("motions", c.motions)
    check_field(isinstance(c.allow_wrap, bool), "allow_wrap", c.allow_wrap, "True or False")
    check_field(
        c.episode_length is None or is_int(c.episode_length, 0, INT32_MAX),
        "episode_length",
        c.episode_length,
        "an int >= 1 (steps per episode), or 0 / None for unbounded",
    )
    check_field(isinstance(c.cyclic, bool), "cyclic", c.cyclic, "True or False")
    check_field(
        isinstance(c.allow_mixed_dt, bool), "allow_mixed_dt", c.allow_mixed_dt, "True or False"
    )
    check_field(
        c.control_dt is None
        or (
            isinstance(c.control_dt, (int, float))
            and not isinstance(c.control_dt, bool)
            and 0 < c.control_dt < float("inf")
        ),
        "control_dt",
        c.control_dt,
        "a control time step > 0 in seconds, or None for the stored frames",
    )
    _str_tuple("keys", c["keys"])
    check_field(
        len(c["keys"]) > 0 and len(set(c["keys"])) == len(c["keys"]),
        "keys",
        c["keys"],
        "a non-empty tuple of distinct array names, e.g. ('qpos', 'qvel', 'action')",
    )
    cast_dtype(c.dtype)
    check_field(is_int(c.seed, 0), "seed", c.seed, "an int >= 0")
    check_field(is_int(c.cache_bytes, 1), "cache_bytes", c.cache_bytes, "an int >= 1 (bytes)")
    check_field(
        isinstance(c.remote_timeout_s, (int, float))
        and not isinstance(c.remote_timeout_s, bool)
        and 0 < c.remote_timeout_s < float("inf"),
        "remote_timeout_s",
        c.remote_timeout_s,
        "a number of seconds > 0",
    )
    check_field(is_int(c.remote_retries, 0), "remote_retries", c.remote_retries, "an int >= 0")
    check_field(is_int(c.host_prefetch, 0), "host_prefetch", c.host_prefetch, "an int >= 0")
    check_field(is_int(c.device_prefetch, 1), "device_prefetch", c.device_prefetch, "an int >= 1")
    check_field(is_int(c.read_threads, 0), "read_threads", c.read_threads, "an int >= 0")
    check_field(
        c.num_batches is None or is_int(c.num_batches, 1),
        "num_batches",
        c.num_batches,
        "an int >= 1, or None for endless",
    )
    from trajopt_loader.configs.validate_sampling import validate_sampling

    validate_sampling(c)
    check_field(
        isinstance(c.references.enabled, bool),
        "references.enabled",
        c.references.enabled,
        "True or False",
    )
    _str_tuple("references.ee_sites", c.references.ee_sites)
    _choice("references.ee_source", c.references.ee_source, EE_SOURCES)
    check_field(
        isinstance(c.references.heading_frame_keys, bool),
        "references.heading_frame_keys",
        c.references.heading_frame_keys,
        "True or False",
    )
    check_field(
        isinstance(c.references.body_keys, bool),
        "references.body_keys",
        c.references.body_keys,
        "True or False",
    )
    check_field(
        c.references.anchor_body is None
        or (isinstance(c.references.anchor_body, str) and c.references.anchor_body != ""),
        "references.anchor_body",
        c.references.anchor_body,
        "a body name or unset",
    )
    check_field(
        c.model_path is None or (isinstance(c.model_path, str) and c.model_path != ""),
        "model_path",
        c.model_path,
        "an MJCF path or unset",
    )
    check_field(
        isinstance(c.working_set.enabled, bool),
        "working_set.enabled",
        c.working_set.enabled,
        "True or False",
    )
    check_field(
        is_int(c.working_set.rotate_every, 1),
        "working_set.rotate_every",
        c.working_set.rotate_every,
        "an int >= 1 (batches per working set)",
    )
    d = c.distributed
    check_field(
        d.num_processes is None or is_int(d.num_processes, 1),
        "distributed.num_processes",
        d.num_processes,
        "an int >= 1 or unset",
    )
    check_field(
        d.process_id is None or is_int(d.process_id, 0, (d.num_processes or 2**31) - 1),
        "distributed.process_id",
        d.process_id,
        "an int in [0, num_processes) or unset",
    )
    return config
