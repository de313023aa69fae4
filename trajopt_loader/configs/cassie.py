r"""Cassie config: joint-space windows (qpos 35, qvel 32, action 10) of Cassie trajectories.

Run it:

    trajopt-loader export ../shared/data/cassie/trajopt cassie.zarr --source cassie \
        --convention mujoco --model ../shared/data/cassie/cassie.xml --derive-qvel
    trajopt-loader stream --config=trajopt_loader/configs/cassie.py --config.zarr_path=cassie.zarr

Windows of 32 steps at the 2 kHz reference rate are 16 ms of motion; the walking samples are
28-1682 steps long, so `end_policy="wrap"` keeps every window full of real data.
"""

from __future__ import annotations

from ml_collections import config_dict

from trajopt_loader.configs import default


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
    """Cassie defaults; ``arg``: ``"field=value,..."`` overrides (see ``default.py``)."""
    c = default.get_config()
    c.num_envs = 256
    c.window_size = 32
    # qpos and qvel exist in every Cassie motion once aslip_walk is exported with
    # `--model cassie.xml --derive-qvel` (it has no qvel and no action); add "action" for
    # agility_reference only: --config.motions="('agility_reference',)".
    c["keys"] = ("qpos", "qvel")
    c.sources = ()
    c.references.enabled = True
    c.references.robot = "cassie"
    return default.apply_arg(c, arg)
