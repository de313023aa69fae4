r"""Default trajopt-loader config: every field, with its default.

Run it (big_vision style; `--config.x=y` overrides any scalar field):

    trajopt-loader stream --config=trajopt_loader/configs/default.py \
        --config.zarr_path=/path/to/store.zarr --config.num_envs=64

`get_config(arg)` also accepts overrides in its argument, `--config=default.py:num_envs=8,seed=1`.
Fields that may stay unset are `config_dict.placeholder(T)` (value None); list-like fields are
tuples. `trajopt_loader.configs.validate_config` checks values.
"""

from __future__ import annotations

from ml_collections import config_dict


def get_config(arg: str | None = None) -> config_dict.ConfigDict:
    """The default config (fields documented inline); ``arg``: ``"field=value,..."`` overrides."""
    c = config_dict.ConfigDict()
    c.zarr_path = config_dict.placeholder(str)  # store path or URL (required to stream)
    c.num_envs = 64  # E: envs in one batch, over all processes
    c.window_size = 32  # W: steps per window
    c.stride = config_dict.placeholder(int)  # steps between chunk starts; None = window_size
    c.future_steps = 0  # F: look-ahead frames appended to every window: keys are
    #                                 [E, W + F, ...] (valid too); schedules still advance by stride
    c.schedule = "sequential"  # "sequential" (marching) | "random" (uniform windows)
    c.assignment = "round_robin"  # sequential: "round_robin" | "random" | "explicit"
    c.traj_ids = ()  # explicit assignment: trajectory ids, cycled over envs
    c.sources = ()  # restrict to these sources (() = all)
    c.motions = ()  # restrict to these motions ("motion" or "source/motion")
    c.random_start = False  # sequential: each env starts at a seeded random valid step
    #                                 instead of 0 (no lockstep duplicates; schedules.py rules)
    c.allow_wrap = True  # sequential: wrap the start (True) or move on to a new trajectory
    c.end_policy = "wrap"  # window past the end: "wrap" (modulo) | "clamp" (valid=False;
    #                                 with allow_wrap each pass then restarts as a new episode)
    c.episode_length = config_dict.placeholder(int)  # sequential: steps per episode at most; then
    c.episode_length = 1024  # restart (allow_wrap) or move on to the next trajectory;
    #                                 None / 0 = unbounded. Bounds cyclic base offsets (float32)
    c.cyclic = True  # steps after a wrap (loop >= 1) continue the base pose of the
    #                                 previous loop (DeepMimic cycles; transforms/cycles.py)
    c.episode_origin_keys = False  # add origin_qpos [E, nq] / origin_qvel [E, nv]: the state at
    #                                 episode_first_step (transforms/origin.py)
    c.allow_mixed_dt = False  # stream trajectories whose dt (s) differ by more than 5%
    # (pipeline.time_step.DT_TOLERANCE); by default make_dataset refuses them, since W steps would
    # span different durations. When True, look rates up with store.dts[batch["traj_id"]].
    c.control_dt = config_dict.placeholder(float)  # s; set: windows sampled every control_dt from
    # the stored frames by interpolation (transforms/interpolate.py); step, window_size, stride and
    # episode_length then count control steps, and trajectories of any stored dt stream together.
    # None = the stored frames as they are.
    c["keys"] = ("qpos", "qvel", "action")
    c.dtype = "float32"  # dtype of the gathered arrays
    c.seed = 0
    c.cache_bytes = 2**31  # host cache budget of the store (bytes)
    c.remote_timeout_s = 30.0  # http(s) stores: max wait (s) to connect and between bytes
    c.remote_retries = 2  # remote stores: retries of a timed-out / failed request
    c.host_prefetch = 2  # batches prepared ahead on the host (grain read-ahead)
    c.device_prefetch = 2  # batches held on the device (double buffer)
    c.read_threads = 1  # grain threads preparing batches
    c.num_batches = config_dict.placeholder(int)  # None = endless
    # schedule="random": static weight per motion, pairs ("motion" or "source/motion", weight >= 0);
    # a motion not named weighs 1 (pipeline/adaptive.py). A dict is accepted by load_config.
    c.motion_weights = ()
    c.adaptive = config_dict.ConfigDict(
        dict(  # failure-adaptive window starts (pipeline/adaptive.py)
            # draw random-window starts / sequential episode first steps from failures
            enabled=False,
            lag=8,  # batch k uses reports of batches <= k - lag; >= host+device prefetch
            bin_s=1.0,  # bin length (s) of the per-(trajectory, bin) failure statistics
            bin_steps=config_dict.placeholder(
                int
            ),  # bin length in steps (needed when dt is unknown)
            ema_rate=0.03,  # EMA rate per reported batch (BeyondMimic 0.001 per step, W=32)
            kernel_size=1,  # non-causal smoothing kernel length in bins (1 = none)
            kernel_decay=0.8,  # kernel weights kernel_decay**t
            uniform_mix=0.1,  # mixture weight of the static (uniform x motion_weights) draw
            report_timeout_s=60.0,  # max wait (s) of a batch for a report it depends on
        )
    )
    c.references = config_dict.ConfigDict(
        dict(
            enabled=False,
            robot=config_dict.placeholder(str),
            model_path=config_dict.placeholder(str),
            ee_sites=(),
            # "auto" | "store" | "mujoco" | "mjx" (transforms/references_config.py)
            ee_source="auto",
            heading_frame_keys=False,  # also add the ref_*heading* keys (transforms/references.py)
            body_keys=False,  # add the ref_body_* keys from the exported body states (needs
            #                   body_pos, body_quat, body_lin_vel, body_ang_vel in config.keys)
            anchor_body=config_dict.placeholder(str),  # anchor of ref_body_heading_*; None = the
            #                   first stored body
        )
    )
    c.model_path = config_dict.placeholder(str)  # the environment's MJCF: make_dataset refuses a
    #                                 store whose recorded joint / body layout differs from it
    c.working_set = config_dict.ConfigDict(
        dict(  # data larger than cache_bytes (random: pipeline/working_set.py; sequential:
            enabled=False,  # working_set_sequential.py): envs play a resident subset, which
            rotate_every=100,  # rotates every this many batches (random: at least
            #                    min_rotate_every, or batches wait for the next set)
        )
    )
    c.distributed = config_dict.ConfigDict(
        dict(
            coordinator_address=config_dict.placeholder(str),
            num_processes=config_dict.placeholder(int),
            process_id=config_dict.placeholder(int),
        )
    )
    apply_arg(c, arg)
    return c


def apply_arg(config: config_dict.ConfigDict, arg: str | None) -> config_dict.ConfigDict:
    """Apply ``"a=1,b.c=x"`` overrides from a config file argument (values as Python literals,
    else strings); unknown fields raise ``ConfigError`` with a suggestion."""
    if not arg:
        return config
    from trajopt_loader.configs import apply_overrides  # late: the package imports this module

    return apply_overrides(config, arg.split(","))
