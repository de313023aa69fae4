"""Validation of the config fields of the model check and the body references."""

from __future__ import annotations

import pytest

from trajopt_loader.configs import load_config, validate_config
from trajopt_loader.errors import ConfigError


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("model_path", "", "an MJCF path or unset"),
        ("references.anchor_body", "", "a body name or unset"),
    ],
)
def test_bad_values_are_refused(field, value, expected):
    config = load_config()
    section, _, name = field.rpartition(".")
    (config[section] if section else config)[name] = value
    with pytest.raises(
        ConfigError, match=f"config field {field}={value!r} is invalid: expected {expected}"
    ):
        validate_config(config)


def test_good_values_pass():
    config = load_config(
        overrides={
            "model_path": "robot.xml",
            "references.body_keys": True,
            "references.anchor_body": "pelvis",
        }
    )
    assert validate_config(config) is config
