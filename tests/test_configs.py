"""Configs: loading by name / path / argument, overrides, validation with suggestions."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from conftest import REPO
from ml_collections import config_dict

from trajopt_loader.configs import apply_overrides, load_config, validate_config
from trajopt_loader.errors import ConfigError

FIELDS = {
    "zarr_path": None,
    "num_envs": 64,
    "window_size": 32,
    "stride": None,
    "schedule": "sequential",
    "assignment": "round_robin",
    "traj_ids": (),
    "sources": (),
    "motions": (),
    "allow_wrap": True,
    "end_policy": "wrap",
    "episode_length": 1024,
    "cyclic": True,
    "allow_mixed_dt": False,
    "control_dt": None,
    "keys": ("qpos", "qvel", "action"),
    "dtype": "float32",
    "seed": 0,
    "cache_bytes": 2**31,
    "remote_timeout_s": 30.0,
    "remote_retries": 2,
    "host_prefetch": 2,
    "device_prefetch": 2,
    "read_threads": 1,
    "num_batches": None,
    "references.enabled": False,
    "references.robot": None,
    "references.model_path": None,
    "references.ee_sites": (),
    "references.heading_frame_keys": False,
    "references.body_keys": False,
    "references.anchor_body": None,
    "model_path": None,
    "references.ee_source": "auto",
    "future_steps": 0,
    "random_start": False,
    "episode_origin_keys": False,
    "working_set.enabled": False,
    "working_set.rotate_every": 100,
    "distributed.coordinator_address": None,
    "distributed.num_processes": None,
    "distributed.process_id": None,
    "motion_weights": (),
    "adaptive.enabled": False,
    "adaptive.lag": 8,
    "adaptive.bin_s": 1.0,
    "adaptive.bin_steps": None,
    "adaptive.ema_rate": 0.03,
    "adaptive.kernel_size": 1,
    "adaptive.kernel_decay": 0.8,
    "adaptive.uniform_mix": 0.1,
    "adaptive.report_timeout_s": 60.0,
}


def _flat(c, prefix=""):
    out = {}
    for k, v in c.items():
        out.update(
            _flat(v, f"{prefix}{k}.")
            if isinstance(v, config_dict.ConfigDict)
            else {f"{prefix}{k}": v}
        )
    return out


def test_default_has_exactly_the_contract_fields():
    assert _flat(load_config("default")) == FIELDS


@pytest.mark.parametrize("name", ["default", "cassie", "digit_v3"])
def test_named_configs_validate_lock_and_document_their_command(name):
    c = load_config(name)
    assert set(_flat(c)) == set(FIELDS)
    robot = {"default": None, "cassie": "cassie", "digit_v3": "digit_v3"}[name]
    assert c.zarr_path is None and c.references.robot == robot
    assert c.references.enabled is (robot is not None)
    assert all(not isinstance(v, list) for v in _flat(c).values())
    with pytest.raises(AttributeError):
        c.new_field = 1  # locked
    doc = importlib.import_module(f"trajopt_loader.configs.{name}").__doc__
    assert f"--config=trajopt_loader/configs/{name}.py" in doc
    assert c["keys"] == (("qpos", "qvel") if name == "cassie" else ("qpos", "qvel", "action"))


def test_same_config_by_path_name_and_argument():
    path = REPO / "trajopt_loader" / "configs" / "digit_v3.py"
    by_path = load_config(f"{path}:num_envs=8,seed=3")
    assert (by_path.num_envs, by_path.seed, by_path.window_size) == (8, 3, 32)
    by_name = load_config("digit_v3", {"num_envs": 8, "seed": 3})
    assert by_path == by_name
    by_strings = load_config("digit_v3.py", ["num_envs=8", "seed=3", "keys=['qpos']"])
    assert by_strings["keys"] == ("qpos",) and by_strings.num_envs == 8


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_env": 3}, "unknown config field 'num_env'. Did you mean 'num_envs'?"),
        ({"references.enabld": True}, "Did you mean 'references.enabled'?"),
        ({"schedule": "sequentail"}, "Did you mean 'sequential'?"),
        ({"end_policy": "clip"}, r"not one of \('wrap', 'clamp'\)"),
        ({"window_size": 0}, "window_size=0"),
        ({"stride": -2}, "stride=-2"),
        ({"num_envs": "many"}, "'num_envs' cannot take 'many'"),
        ({"keys": ()}, "keys"),
        ({"dtype": "float33"}, "dtype='float33'"),
        ({"assignment": "explicit"}, "traj_ids"),
        ({"traj_ids": (1, 2)}, "traj_ids"),
        ({"read_threads": -1}, "read_threads=-1"),
        ({"allow_mixed_dt": "yes"}, "'allow_mixed_dt' cannot take 'yes'"),
        ({"cyclic": 1}, "'cyclic' cannot take 1"),
        ({"episode_length": -5}, "episode_length=-5"),
        ({"distributed.num_processes": 2, "distributed.process_id": 2}, "process_id=2"),
    ],
)
def test_bad_fields_raise_config_error_with_hint(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("default", overrides)


def test_validate_rejects_unknown_field_in_an_unlocked_config_with_suggestion():
    c = load_config("default")
    c.unlock()
    c.windw_size = 8
    with pytest.raises(
        ConfigError, match="unknown config field 'windw_size'. Did you mean 'window_size'"
    ):
        validate_config(c)
    with pytest.raises(ConfigError, match="not of the form"):
        apply_overrides(load_config("default"), ["num_envs"])
    with pytest.raises(ConfigError, match="Did you mean 'cassie'"):
        load_config("casie")


def test_explicit_assignment_and_bfloat16():
    c = load_config("cassie", {"assignment": "explicit", "traj_ids": [2, 0], "dtype": "bfloat16"})
    assert c.traj_ids == (2, 0) and c.dtype == "bfloat16"


def test_episode_length_accepts_unbounded_spellings():
    assert load_config("default", {"episode_length": 0}).episode_length == 0
    assert load_config("cassie", {"episode_length": None}).episode_length is None
    assert load_config("digit_v3").episode_length == load_config("cassie").episode_length == 1024


@pytest.mark.slow
def test_configs_import_no_pipeline_code():
    """Configs are data: loading one imports no pipeline, transform or store module (nor grain,
    JAX, MuJoCo or zarr)."""
    code = (
        "import sys; from trajopt_loader.configs import load_config; load_config('cassie'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grain', 'jax', 'mujoco', "
        "'zarr') or m.startswith(('trajopt_loader.pipeline', 'trajopt_loader.transforms', "
        "'trajopt_loader.store'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert out.stdout.strip() == "[]"
