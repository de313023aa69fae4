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
from typing import Any, Iterable, Mapping

from ml_collections import config_dict

from trajopt_loader.errors import ConfigError

NAMED = ("default", "cassie", "digit_v3")
SCHEDULES = ("sequential", "random")
ASSIGNMENTS = ("round_robin", "random", "explicit")
END_POLICIES = ("wrap", "clamp")
INT32_MAX = 2**31 - 1


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


def apply_overrides(config: config_dict.ConfigDict,
                    overrides: Mapping[str, Any] | Iterable[str] | None) -> config_dict.ConfigDict:
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
        if not isinstance(node, config_dict.ConfigDict) or leaf not in node or \
                isinstance(node[leaf], config_dict.ConfigDict):
            raise ConfigError(f"unknown config field {name!r}.{_suggest(name, known)} "
                              f"Known fields: {sorted(known)}")
        if isinstance(value, list):
            value = tuple(value)
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config field {name!r} cannot take {value!r}: {e}") from None
    return config


def _load_module(name_or_path: str):
    if name_or_path in NAMED:
        return importlib.import_module(f"trajopt_loader.configs.{name_or_path}")
    if not os.path.isfile(name_or_path):
        raise ConfigError(f"config {name_or_path!r} is neither a named config {NAMED} nor a file."
                          f"{_suggest(name_or_path, NAMED)}")
    spec = importlib.util.spec_from_file_location("trajopt_loader_user_config", name_or_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {name_or_path!r} defines no get_config(arg=None)")
    return module


def load_config(name_or_path: str = "default",
                overrides: Mapping[str, Any] | Iterable[str] | None = None
                ) -> config_dict.ConfigDict:
    """Load a named config (``default``, ``cassie``, ``digit_v3``) or a config file path, with an
    optional ``:arg`` suffix passed to ``get_config(arg)``, apply ``overrides`` (see
    :func:`apply_overrides`), lock and validate it.

    Raises:
      ConfigError: unknown config name / field (with a suggestion) or an invalid value.
    """
    name, _, arg = str(name_or_path).partition(":")
    stem = os.path.basename(name).removesuffix(".py")
    if not os.path.isfile(name) and stem in NAMED:  # "cassie", "cassie.py", ".../cassie.py"
        name = stem
    config = _load_module(name).get_config(arg or None)
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
        raise ConfigError(f"config field {name}={value!r} is not one of {choices}."
                          f"{_suggest(str(value), choices)}")


def _str_tuple(name: str, value: Any) -> None:
    _check(isinstance(value, tuple) and all(isinstance(v, str) and v for v in value), name, value,
           "a tuple of non-empty strings")


def validate_config(config: config_dict.ConfigDict) -> config_dict.ConfigDict:
    """Check every field of a trajopt-loader config; returns it unchanged.

    Unknown or missing field names (against ``default.get_config()``) and bad values raise.

    Raises:
      ConfigError: naming the field, the value, what is expected, and a close name if any.
    """
    from trajopt_loader.configs import default
    from trajopt_loader.transforms.gather import cast_dtype

    flat, known = _flat(config), _flat(default.get_config())
    for name in flat:
        if name not in known:
            raise ConfigError(f"unknown config field {name!r}.{_suggest(name, known)}")
    for name in known:
        if name not in flat:
            raise ConfigError(f"config field {name!r} is missing; start from "
                              "trajopt_loader.configs.default.get_config()")
    c = config
    _check(c.zarr_path is None or (isinstance(c.zarr_path, str) and c.zarr_path), "zarr_path",
           c.zarr_path, "a store path or URL (or unset)")
    _check(_is_int(c.num_envs, 1, INT32_MAX), "num_envs", c.num_envs, "an int >= 1")
    _check(_is_int(c.window_size, 1, INT32_MAX), "window_size", c.window_size, "an int >= 1")
    _check(c.stride is None or _is_int(c.stride, 1, INT32_MAX), "stride", c.stride,
           "an int >= 1, or None for window_size")
    _choice("schedule", c.schedule, SCHEDULES)
    _choice("assignment", c.assignment, ASSIGNMENTS)
    _choice("end_policy", c.end_policy, END_POLICIES)
    _check(isinstance(c.traj_ids, tuple) and all(_is_int(t, 0, INT32_MAX) for t in c.traj_ids),
           "traj_ids", c.traj_ids, "a tuple of trajectory ids >= 0")
    _check((c.assignment == "explicit") == bool(c.traj_ids), "traj_ids", c.traj_ids,
           "a non-empty tuple exactly when assignment='explicit'")
    _str_tuple("sources", c.sources)
    _str_tuple("motions", c.motions)
    _check(isinstance(c.allow_wrap, bool), "allow_wrap", c.allow_wrap, "True or False")
    _check(c.episode_length is None or _is_int(c.episode_length, 0, INT32_MAX), "episode_length",
           c.episode_length, "an int >= 1 (steps per episode), or 0 / None for unbounded")
    _check(isinstance(c.cyclic, bool), "cyclic", c.cyclic, "True or False")
    _check(isinstance(c.allow_mixed_dt, bool), "allow_mixed_dt", c.allow_mixed_dt, "True or False")
    _str_tuple("keys", c["keys"])
    _check(len(c["keys"]) > 0 and len(set(c["keys"])) == len(c["keys"]), "keys", c["keys"],
           "a non-empty tuple of distinct array names, e.g. ('qpos', 'qvel', 'action')")
    cast_dtype(c.dtype)
    _check(_is_int(c.seed, 0), "seed", c.seed, "an int >= 0")
    _check(_is_int(c.cache_bytes, 1), "cache_bytes", c.cache_bytes, "an int >= 1 (bytes)")
    _check(isinstance(c.remote_timeout_s, (int, float)) and not isinstance(c.remote_timeout_s, bool)
           and 0 < c.remote_timeout_s < float("inf"), "remote_timeout_s", c.remote_timeout_s,
           "a number of seconds > 0")
    _check(_is_int(c.remote_retries, 0), "remote_retries", c.remote_retries, "an int >= 0")
    _check(_is_int(c.host_prefetch, 0), "host_prefetch", c.host_prefetch, "an int >= 0")
    _check(_is_int(c.device_prefetch, 1), "device_prefetch", c.device_prefetch, "an int >= 1")
    _check(_is_int(c.read_threads, 0), "read_threads", c.read_threads, "an int >= 0")
    _check(c.num_batches is None or _is_int(c.num_batches, 1), "num_batches", c.num_batches,
           "an int >= 1, or None for endless")
    _check(isinstance(c.references.enabled, bool), "references.enabled", c.references.enabled,
           "True or False")
    _str_tuple("references.ee_sites", c.references.ee_sites)
    _check(isinstance(c.references.heading_frame_keys, bool), "references.heading_frame_keys",
           c.references.heading_frame_keys, "True or False")
    _check(isinstance(c.working_set.enabled, bool), "working_set.enabled", c.working_set.enabled,
           "True or False")
    _check(_is_int(c.working_set.rotate_every, 1), "working_set.rotate_every",
           c.working_set.rotate_every, "an int >= 1 (batches per working set)")
    d = c.distributed
    _check(d.num_processes is None or _is_int(d.num_processes, 1), "distributed.num_processes",
           d.num_processes, "an int >= 1 or unset")
    _check(d.process_id is None or _is_int(d.process_id, 0, (d.num_processes or 2**31) - 1),
           "distributed.process_id", d.process_id, "an int in [0, num_processes) or unset")
    return config
