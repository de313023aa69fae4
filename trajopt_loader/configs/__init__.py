"""ml-collections configs of trajopt-loader: loading, overriding and validation.

``load_config("cassie", {"num_envs": 8})`` (or a path ``"my_config.py"``, optionally with a
big_vision-style argument ``"cassie:num_envs=8"``) returns a locked, validated ConfigDict.
Field names and meanings: ``trajopt_loader/configs/default.py``.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import os
from collections.abc import Iterable, Mapping
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

__all__ = [
    "NAMED",
    "apply_overrides",
    "config_file",
    "load_config",
    "named_config",
    "validate_config",
]

NAMED = ("default", "cassie", "digit_v3")


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def _flat(config: config_dict.ConfigDict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in config.items():
        if isinstance(value, config_dict.ConfigDict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def apply_overrides(
    config: config_dict.ConfigDict, overrides: Mapping[str, Any] | Iterable[str] | None
) -> config_dict.ConfigDict:
    """Set dotted fields in place: ``{"num_envs": 8, "references.enabled": True}`` or
    ``["num_envs=8", "keys=('qpos',)"]`` (string values parsed as Python literals, else kept as
    strings). Lists become tuples. Returns ``config``.

    Raises:
      ConfigError: unknown field (with the closest known name) or a value of the wrong type.
    """
    if not overrides:
        return config
    if not isinstance(overrides, Mapping):
        pairs = {}
        for item in overrides:
            name, sep, text = str(item).partition("=")
            if not sep:
                raise ConfigError(f"override {item!r} is not of the form field=value")
            try:
                pairs[name.strip()] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                pairs[name.strip()] = text
        overrides = pairs
    known = _flat(config)
    for name, value in overrides.items():
        *parents, leaf = name.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, config_dict.ConfigDict) else None
        if (
            not isinstance(node, config_dict.ConfigDict)
            or leaf not in node
            or isinstance(node[leaf], config_dict.ConfigDict)
        ):
            raise ConfigError(
                f"unknown config field {name!r}.{_suggest(name, known)} "
                f"Known fields: {sorted(known)}"
            )
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, Mapping) and isinstance(node[leaf], tuple):  # motion_weights
            value = tuple((k, v) for k, v in value.items())
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config field {name!r} cannot take {value!r}: {e}") from None
    return config


def named_config(name_or_path: str) -> str | None:
    """The named config (one of :data:`NAMED`) that ``name_or_path`` means, or None.

    ``"cassie"``, ``"cassie.py"`` and ``".../cassie.py"`` mean ``"cassie"`` unless a file exists
    at that path (an existing file always means itself)."""
    stem = os.path.basename(name_or_path).removesuffix(".py")
    return stem if stem in NAMED and not os.path.isfile(name_or_path) else None


def config_file(name_or_path: str) -> str | None:
    """The config ``.py`` file ``name_or_path`` means: an existing file itself, else the packaged
    file of the named config it means (:func:`named_config`), else None. Works from any directory
    and from an installed (non-editable) package."""
    if os.path.isfile(name_or_path):
        return name_or_path
    named = named_config(name_or_path)
    return None if named is None else os.path.join(os.path.dirname(__file__), f"{named}.py")


def _load_module(name_or_path: str):
    if name_or_path in NAMED:
        return importlib.import_module(f"trajopt_loader.configs.{name_or_path}")
    if not os.path.isfile(name_or_path):
        raise ConfigError(
            f"config {name_or_path!r} is neither a named config {NAMED} nor a file."
            f"{_suggest(name_or_path, NAMED)}"
        )
    spec = importlib.util.spec_from_file_location("trajopt_loader_user_config", name_or_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {name_or_path!r} defines no get_config(arg=None)")
    return module


def load_config(
    name_or_path: str = "default", overrides: Mapping[str, Any] | Iterable[str] | None = None
) -> config_dict.ConfigDict:
    """Load a named config (``default``, ``cassie``, ``digit_v3``) or a config file path, with an
    optional ``:arg`` suffix passed to ``get_config(arg)``, apply ``overrides`` (see
    :func:`apply_overrides`), lock and validate it.

    Raises:
      ConfigError: unknown config name / field (with a suggestion) or an invalid value.
    """
    name, _, arg = str(name_or_path).partition(":")
    config = _load_module(named_config(name) or name).get_config(arg or None)
    config.lock()
    apply_overrides(config, overrides)
    validate_config(config)
    return config


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config field {name}={value!r} is invalid: expected {expected}.")


def _is_int(value: Any, low: int, high: int = 2**63 - 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"config field {name}={value!r} is not one of {choices}.{_suggest(str(value), choices)}"
        )


def _str_tuple(name: str, value: Any) -> None:
    _check(
        isinstance(value, tuple) and all(isinstance(v, str) and v for v in value),
        name,
        value,
        "a tuple of non-empty strings",
    )


def _number(value: Any, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _validate_sampling(c) -> None:
    """``motion_weights`` and ``adaptive.*`` (pipeline/adaptive.py)."""
    _check(
        isinstance(c.motion_weights, tuple)
        and all(
            isinstance(p, tuple)
            and len(p) == 2
            and isinstance(p[0], str)
            and p[0]
            and _number(p[1], 0, float("inf"))
            and p[1] < float("inf")
            for p in c.motion_weights
        ),
        "motion_weights",
        c.motion_weights,
        "pairs ('motion' or 'source/motion', finite weight >= 0), e.g. (('aslip_walk', 2.0),)",
    )
    a = c.adaptive
    _check(isinstance(a.enabled, bool), "adaptive.enabled", a.enabled, "True or False")
    if c.motion_weights and c.schedule != "random":
        raise ConfigError(
            f"config field motion_weights={c.motion_weights!r} needs "
            "schedule='random' (sequential assignment is closed-form round robin "
            "or permutation). Fix: --config.schedule=random, or drop the weights."
        )
    if (
        a.enabled
        and c.schedule == "sequential"
        and not (c.allow_wrap and c.end_policy == "wrap" and c.episode_length)
    ):
        raise ConfigError(
            f"config field adaptive.enabled=True with schedule='sequential' draws the first step "
            f"of every episode, which needs bounded episodes on a kept trajectory: allow_wrap="
            f"True, end_policy='wrap' and episode_length > 0 (got allow_wrap={c.allow_wrap}, "
            f"end_policy={c.end_policy!r}, episode_length={c.episode_length}). Fix: set them, "
            "or use schedule='random'."
        )
    _check(_is_int(a.lag, 1, INT32_MAX), "adaptive.lag", a.lag, "an int >= 1 (batches)")
    if a.enabled and a.lag < c.host_prefetch + c.device_prefetch:
        raise ConfigError(
            f"config field adaptive.lag={a.lag} is below the prefetch depth "
            f"host_prefetch + device_prefetch = {c.host_prefetch + c.device_prefetch}"
            ": batches read ahead would wait for reports of batches the consumer "
            "has not been given. Fix: --config.adaptive.lag="
            f"{c.host_prefetch + c.device_prefetch} or more."
        )
    _check(
        _number(a.bin_s, 1e-12, float("inf")) and a.bin_s < float("inf"),
        "adaptive.bin_s",
        a.bin_s,
        "a bin length in seconds > 0",
    )
    _check(
        a.bin_steps is None or _is_int(a.bin_steps, 1, INT32_MAX),
        "adaptive.bin_steps",
        a.bin_steps,
        "an int >= 1 (steps), or None to use bin_s",
    )
    _check(_number(a.ema_rate, 1e-300, 1.0), "adaptive.ema_rate", a.ema_rate, "a number in (0, 1]")
    _check(_is_int(a.kernel_size, 1, 2**20), "adaptive.kernel_size", a.kernel_size, "an int >= 1")
    _check(
        _number(a.kernel_decay, 0.0, 1.0),
        "adaptive.kernel_decay",
        a.kernel_decay,
        "a number in [0, 1]",
    )
    _check(
        _number(a.uniform_mix, 0.0, 1.0),
        "adaptive.uniform_mix",
        a.uniform_mix,
        "a number in [0, 1]",
    )
    _check(
        _number(a.report_timeout_s, 1e-3, float("inf")) and a.report_timeout_s < float("inf"),
        "adaptive.report_timeout_s",
        a.report_timeout_s,
        "a number of seconds > 0",
    )


def validate_config(config: config_dict.ConfigDict) -> config_dict.ConfigDict:
    """Check every field of a trajopt-loader config; returns it unchanged.

    Unknown or missing field names (against ``default.get_config()``) and bad values raise.

    Raises:
      ConfigError: naming the field, the value, what is expected, and a close name if any.
    """
    from trajopt_loader.configs import default

    flat, known = _flat(config), _flat(default.get_config())
    for name in flat:
        if name not in known:
            raise ConfigError(f"unknown config field {name!r}.{_suggest(name, known)}")
    for name in known:
        if name not in flat:
            raise ConfigError(
                f"config field {name!r} is missing; start from "
                "trajopt_loader.configs.default.get_config()"
            )
    c = config
    _check(
        c.zarr_path is None or (isinstance(c.zarr_path, str) and c.zarr_path),
        "zarr_path",
        c.zarr_path,
        "a store path or URL (or unset)",
    )
    _check(_is_int(c.num_envs, 1, INT32_MAX), "num_envs", c.num_envs, "an int >= 1")
    _check(_is_int(c.window_size, 1, INT32_MAX), "window_size", c.window_size, "an int >= 1")
    _check(
        c.stride is None or _is_int(c.stride, 1, INT32_MAX),
        "stride",
        c.stride,
        "an int >= 1, or None for window_size",
    )
    _check(
        _is_int(c.future_steps, 0, INT32_MAX - c.window_size),
        "future_steps",
        c.future_steps,
        "an int >= 0 (look-ahead frames per window), with window_size + future_steps < 2**31",
    )
    _check(isinstance(c.random_start, bool), "random_start", c.random_start, "True or False")
    _check(
        isinstance(c.episode_origin_keys, bool),
        "episode_origin_keys",
        c.episode_origin_keys,
        "True or False",
    )
    _choice("schedule", c.schedule, SCHEDULES)
    _choice("assignment", c.assignment, ASSIGNMENTS)
    _choice("end_policy", c.end_policy, END_POLICIES)
    _check(
        isinstance(c.traj_ids, tuple) and all(_is_int(t, 0, INT32_MAX) for t in c.traj_ids),
        "traj_ids",
        c.traj_ids,
        "a tuple of trajectory ids >= 0",
    )
    _check(
        (c.assignment == "explicit") == bool(c.traj_ids),
        "traj_ids",
        c.traj_ids,
        "a non-empty tuple exactly when assignment='explicit'",
    )
    _str_tuple("sources", c.sources)
    _str_tuple("motions", c.motions)
    _check(isinstance(c.allow_wrap, bool), "allow_wrap", c.allow_wrap, "True or False")
    _check(
        c.episode_length is None or _is_int(c.episode_length, 0, INT32_MAX),
        "episode_length",
        c.episode_length,
        "an int >= 1 (steps per episode), or 0 / None for unbounded",
    )
    _check(isinstance(c.cyclic, bool), "cyclic", c.cyclic, "True or False")
    _check(isinstance(c.allow_mixed_dt, bool), "allow_mixed_dt", c.allow_mixed_dt, "True or False")
    _check(
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
    _check(
        len(c["keys"]) > 0 and len(set(c["keys"])) == len(c["keys"]),
        "keys",
        c["keys"],
        "a non-empty tuple of distinct array names, e.g. ('qpos', 'qvel', 'action')",
    )
    cast_dtype(c.dtype)
    _check(_is_int(c.seed, 0), "seed", c.seed, "an int >= 0")
    _check(_is_int(c.cache_bytes, 1), "cache_bytes", c.cache_bytes, "an int >= 1 (bytes)")
    _check(
        isinstance(c.remote_timeout_s, (int, float))
        and not isinstance(c.remote_timeout_s, bool)
        and 0 < c.remote_timeout_s < float("inf"),
        "remote_timeout_s",
        c.remote_timeout_s,
        "a number of seconds > 0",
    )
    _check(_is_int(c.remote_retries, 0), "remote_retries", c.remote_retries, "an int >= 0")
    _check(_is_int(c.host_prefetch, 0), "host_prefetch", c.host_prefetch, "an int >= 0")
    _check(_is_int(c.device_prefetch, 1), "device_prefetch", c.device_prefetch, "an int >= 1")
    _check(_is_int(c.read_threads, 0), "read_threads", c.read_threads, "an int >= 0")
    _check(
        c.num_batches is None or _is_int(c.num_batches, 1),
        "num_batches",
        c.num_batches,
        "an int >= 1, or None for endless",
    )
    _validate_sampling(c)
    _check(
        isinstance(c.references.enabled, bool),
        "references.enabled",
        c.references.enabled,
        "True or False",
    )
    _str_tuple("references.ee_sites", c.references.ee_sites)
    _choice("references.ee_source", c.references.ee_source, EE_SOURCES)
    _check(
        isinstance(c.references.heading_frame_keys, bool),
        "references.heading_frame_keys",
        c.references.heading_frame_keys,
        "True or False",
    )
    _check(
        isinstance(c.references.body_keys, bool),
        "references.body_keys",
        c.references.body_keys,
        "True or False",
    )
    _check(
        c.references.anchor_body is None
        or (isinstance(c.references.anchor_body, str) and c.references.anchor_body != ""),
        "references.anchor_body",
        c.references.anchor_body,
        "a body name or unset",
    )
    _check(
        c.model_path is None or (isinstance(c.model_path, str) and c.model_path != ""),
        "model_path",
        c.model_path,
        "an MJCF path or unset",
    )
    _check(
        isinstance(c.working_set.enabled, bool),
        "working_set.enabled",
        c.working_set.enabled,
        "True or False",
    )
    _check(
        _is_int(c.working_set.rotate_every, 1),
        "working_set.rotate_every",
        c.working_set.rotate_every,
        "an int >= 1 (batches per working set)",
    )
    d = c.distributed
    _check(
        d.num_processes is None or _is_int(d.num_processes, 1),
        "distributed.num_processes",
        d.num_processes,
        "an int >= 1 or unset",
    )
    _check(
        d.process_id is None or _is_int(d.process_id, 0, (d.num_processes or 2**31) - 1),
        "distributed.process_id",
        d.process_id,
        "an int in [0, num_processes) or unset",
    )
    return config
