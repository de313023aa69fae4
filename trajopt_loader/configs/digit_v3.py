r"""Digit v3 config: joint-space windows (qpos 61, qvel 54, action 20) for large env batches.

Run it:

    trajopt-loader stream --config=trajopt_loader/configs/digit_v3.py \
        --config.zarr_path=digit.zarr --config.num_envs=4096

4096 envs x 32 steps x (61 + 54 + 20) float32 = 71 MB per batch; two batches read ahead on
the host and two on the device keep memory bounded (DESIGN decision 5).
"""

from __future__ import annotations

from ml_collections import config_dict

from trajopt_loader.configs import default


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
    """Digit v3 defaults; ``arg``: ``"field=value,..."`` overrides (see ``default.py``)."""
    c = default.get_config()
    c.num_envs = 4096
    c.window_size = 32
    c.episode_length = 1024  # steps (32 windows), then a new episode (bounded base offsets)
    c["keys"] = ("qpos", "qvel", "action")
    c.cache_bytes = 4 * 2**30
    c.read_threads = 2
    # Robot references (trajopt_loader/transforms/references.py): actuated joint targets, base
    # pose / body-frame velocities; end effectors from `ee_pos` in the data, or from forward
    # kinematics with --config.references.model_path=digit-v3.xml.
    c.references.enabled = True
    c.references.robot = "digit_v3"
    return default.apply_arg(c, arg)
