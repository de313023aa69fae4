r"""Cassie config: joint-space windows (qpos 35, qvel 32, action 10) of Cassie trajectories.

Run it:

    trajopt-loader export ../shared/data/cassie/trajopt/agility_reference cassie.zarr \
        --source cassie --convention mujoco
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
    c["keys"] = ("qpos", "qvel", "action")
    c.sources = ()
    return default.apply_arg(c, arg)
