r"""Cassie config: joint-space windows (qpos 35, qvel 32) of Cassie trajectories, with references.

Run it:

    trajopt-loader export ../shared/data/cassie/trajopt cassie.zarr --source cassie \
        --convention mujoco --model ../shared/data/cassie/cassie.xml --derive-qvel
    trajopt-loader stream --config=trajopt_loader/configs/cassie.py --config.zarr_path=cassie.zarr \
        --config.motions="('aslip_walk',)"

The motions have different time steps (``store.dts``): ``agility_reference`` traj0 / traj1 are
1682 steps at dt = 0.0005 s (32 steps = 16 ms), traj2 is 28 steps at ~0.034 s, and the 21
``aslip_walk`` strides are 31-32 steps at ~0.025 s (32 steps ~ 0.8 s, about one stride).
``make_dataset`` refuses a selection whose dt differ by more than 5% unless ``allow_mixed_dt``,
so choose one rate with ``motions`` (or ``traj_ids``). Windows longer than what is left of a
trajectory wrap to its step 0 (``end_policy="wrap"``; every 32-step window over a trajectory
of fewer than 32 steps does): every step is recorded data (``valid=True``), but not a continuous
motion by itself. ``loop`` marks the seam, and ``cyclic=True`` (the default) moves the base of
the next loop to where the previous one ended (``transforms/cycles.py``): seamless for cyclic
clips such as the ``aslip_walk`` strides; for a clip that does not end in the pose it began with,
the joints still jump at the seam (``end_policy="clamp"`` pads with ``valid=False`` instead).
"""

from __future__ import annotations

from ml_collections import config_dict

from trajopt_loader.configs import default


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
    """Cassie defaults; ``arg``: ``"field=value,..."`` overrides (see ``default.py``)."""
    c = default.get_config()
    c.num_envs = 256
    c.window_size = 32
    # 1024 steps = 32 windows: ~25 s of aslip_walk (dt ~0.025 s), then a new episode, so the
    # continued base stays within ~50 m (float32 resolves 4 um there; unbounded: ~1 km).
    c.episode_length = 1024
    # qpos and qvel exist in every Cassie motion once aslip_walk is exported with
    # `--model cassie.xml --derive-qvel` (it has no qvel and no action); add "action" for
    # agility_reference only: --config.motions="('agility_reference',)".
    c["keys"] = ("qpos", "qvel")
    c.sources = ()
    c.references.enabled = True
    c.references.robot = "cassie"
    return default.apply_arg(c, arg)
