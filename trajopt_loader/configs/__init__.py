"""ml-collections configs of trajopt-loader: loading and overriding (validation:
:mod:`trajopt_loader.configs.validate`).

``load_config("cassie", {"num_envs": 8})`` (or a path ``"my_config.py"``, optionally with a
big_vision-style argument ``"cassie:num_envs=8"``) returns a locked, validated ConfigDict.
Field names and meanings: ``trajopt_loader/configs/default.py``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ml_collections import config_dict

from trajopt_loader.configs.validate import flat_fields, suggestion, validate_config
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
    known = flat_fields(config)
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
                f"unknown config field {name!r}.{suggestion(name, known)} "
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
            f"{suggestion(name_or_path, NAMED)}"
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
