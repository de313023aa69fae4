"""A Cassie MJX tracking loop fed by ``device_iterator``: the stream used as an environment would.

Run from the repository root (exports the ``aslip_walk`` strides with derived ``qvel`` first)::

    python examples/mjx_tracking.py                       # kinematics only: fast on a CPU
    python examples/mjx_tracking.py --physics --num-envs 1024 --batches 50   # full mjx.step (GPU)

Per window (``lax.scan`` over its ``W`` steps, jitted once), for every env:

* reference state initialisation (RSI): where ``episode_start`` (at ``t = 0``) or after an early
  termination, ``qpos`` / ``qvel`` are set to the reference at step ``t``
  (``env_helpers.reference_state``; cyclic continuation already applied by the pipeline);
* a PD controller towards ``ref_motor_joint_pos`` at ``t + 1`` (``config.future_steps = 1`` gives
  the window its look-ahead frame, so ``t + 1`` exists at ``t = W - 1``), torques divided by the
  gear and clipped to the motors' ``ctrlrange``;
* the step: ``--physics``: ``mjx.step`` substeps of 2.5 ms (at 5 ms MuJoCo reports QACC
  instability on Cassie) on a Newton-solver copy of the model (``mjx.put_model`` refuses Cassie's
  PGS; ``kinematics.simulation_copy``). Kinematics only (default): the state is set to the
  reference at ``t + 1`` and ``mjx.kinematics`` computes the bodies, so everything but the
  dynamics runs (PD bookkeeping, reward, termination) and the reward is that of a perfect tracker;
* a DeepMimic-style reward (Peng et al. 2018) from the references at ``t + 1``: actuated joint
  positions, velocities, base position (``ref_base_local_pos``, world) and orientation
  (``qpos`` base quaternion), ``exp(-k * error^2)`` terms weighted
  :data:`WEIGHTS`, masked by ``valid``;
* early termination when the base is more than :data:`TERMINATE_M` from the reference.

On a 2-core CPU keep ``--num-envs`` <= 32 with ``--physics`` (a vmapped MJX Cassie scan stalls in
XLA compilation at 63+ envs there). The initial carry is committed to the device
(``jax.device_put(carry, device)``): an uncommitted carry makes the second window compile again.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from trajopt_loader.configs import load_config
from trajopt_loader.env_helpers import reference_state, step_slice, where_envs
from trajopt_loader.kinematics import (
    load_kinematics_model,
    load_model,
    make_export_preprocess,
    simulation_copy,
)
from trajopt_loader.pipeline.dataset import make_dataset
from trajopt_loader.pipeline.device import device_iterator
from trajopt_loader.robots import cassie
from trajopt_loader.store import TrajectoryStore, export_npz

PHYSICS_DT = 0.0025  # s, mjx.step substep
KP = np.array([100.0, 100.0, 88.0, 96.0, 50.0] * 2)  # N m / rad at the joint, per leg motor
KD = KP / 10.0  # N m s / rad
WEIGHTS = {"joint_pos": 0.5, "joint_vel": 0.1, "base_pos": 0.2, "base_ori": 0.2}
SCALES = {"joint_pos": 2.0, "joint_vel": 0.01, "base_pos": 10.0, "base_ori": 2.0}
TERMINATE_M = 0.3  # base position error (m) that ends an episode


def export_aslip(data_root: Path, out: Path) -> Path:
    """Export ``cassie/trajopt/aslip_walk`` (21 strides, 31-32 steps at ~25 ms) to ``out`` with
    ``qvel`` derived from ``qpos`` by the model (the files have none); returns ``out``."""
    xml = data_root / "cassie" / "cassie.xml"
    export_npz(
        data_root / "cassie" / "trajopt",
        out,
        source="cassie",
        motion="aslip_walk",
        convention="mujoco",
        allow_missing=("qvel",),
        progress=False,
        preprocess=make_export_preprocess(str(xml), convention="mujoco", derive_qvel=True),
    )
    return out


def tracking_config(
    store_path, num_envs: int, window_size: int, num_batches: int | None, seed: int = 0
):
    """The stream an env needs: Cassie references, one look-ahead frame, a random first phase
    per env (no lockstep duplicates), the episode origin."""
    return load_config(
        "cassie",
        {
            "zarr_path": str(store_path),
            "motions": ("aslip_walk",),
            "num_envs": num_envs,
            "window_size": window_size,
            "num_batches": num_batches,
            "seed": seed,
            "future_steps": 1,
            "random_start": True,
            "episode_origin_keys": True,
        },
    )


class Tracker:
    """The jitted per-window rollout of the module docstring for one MuJoCo model.

    Args:
      model_path: Cassie MJCF. dt: the stream's time step (s; ``store.dts``).
      physics: ``mjx.step`` (True) or kinematics only (False).

    ``window(carry, batch) -> (carry, out)``: ``carry = (mjx.Data [E], done [E] bool)`` (from
    :meth:`initial_carry`), ``batch`` a device batch with ``T = W + 1`` frames; ``out`` holds
    ``[W, E, ...]`` arrays: ``reward``, ``done``, ``reset`` (RSI happened at ``t``),
    ``reset_qpos`` (``qpos`` after the reset at ``t``), ``ctrl [W, E, nu]``, and the env-side
    quantities after the step from MuJoCo: ``base_pos`` (pelvis ``xpos``), ``base_quat``
    (pelvis ``xquat``, w x y z), ``motor_pos`` (actuated ``qpos``).
    """

    def __init__(self, model_path, dt: float, physics: bool = False):
        host = (
            simulation_copy(load_model(model_path), PHYSICS_DT)
            if physics
            else load_kinematics_model(model_path)
        )
        self.physics, self.substeps = physics, max(1, round(float(dt) / PHYSICS_DT))
        self.model = mjx.put_model(host)
        self.act_q = np.asarray(cassie.SPEC.actuated_qpos_index)
        self.act_v = np.asarray(cassie.SPEC.actuated_qvel_index)
        self.gear = host.actuator_gear[:, 0].copy()
        self.ctrl_lo, self.ctrl_hi = host.actuator_ctrlrange.T.copy()
        self.pelvis = host.body(cassie.ROOT_BODY).id
        self.window = jax.jit(self._window)

    def initial_carry(self, num_envs: int):
        """``(mjx.Data [E], done [E] False)``, committed to the first local device (where
        ``device_iterator`` puts batches; ``jax.device_put`` without a device leaves it
        uncommitted, and the window's committed output carry would then compile it again)."""
        data = jax.vmap(lambda _: mjx.make_data(self.model))(jnp.arange(num_envs))
        return jax.device_put((data, jnp.zeros(num_envs, bool)), jax.local_devices()[0])

    def _pd(self, qpos, qvel, target):
        torque = KP * (target - qpos[:, self.act_q]) - KD * qvel[:, self.act_v]
        return jnp.clip(torque / self.gear, self.ctrl_lo, self.ctrl_hi)

    def _advance(self, data, batch, t):
        if self.physics:
            step = jax.vmap(mjx.step, in_axes=(None, 0))
            return jax.lax.fori_loop(0, self.substeps, lambda _, d: step(self.model, d), data)
        qpos, qvel = reference_state(batch, t + 1)
        return jax.vmap(mjx.kinematics, in_axes=(None, 0))(
            self.model, data.replace(qpos=qpos, qvel=qvel)
        )

    def _reward(self, data, ref):
        quat = data.qpos[:, 3:7]
        dot = jnp.abs(jnp.sum(quat * ref["qpos"][:, 3:7], axis=-1))
        err = {
            "joint_pos": jnp.sum((data.qpos[:, self.act_q] - ref["ref_motor_joint_pos"]) ** 2, -1),
            "joint_vel": jnp.sum((data.qvel[:, self.act_v] - ref["ref_motor_joint_vel"]) ** 2, -1),
            "base_pos": jnp.sum((data.xpos[:, self.pelvis] - ref["ref_base_local_pos"]) ** 2, -1),
            "base_ori": (2 * jnp.arccos(jnp.clip(dot, 0.0, 1.0))) ** 2,
        }
        reward = sum(WEIGHTS[k] * jnp.exp(-SCALES[k] * err[k]) for k in WEIGHTS)
        return reward, jnp.sqrt(err["base_pos"])

    def _window(self, carry, batch):
        horizon = batch["valid"].shape[1] - 1  # W: the last frame is the look-ahead

        def step(carry, t):
            data, done = carry
            reset = done | (batch["episode_start"] & (t == 0))
            qpos, qvel = where_envs(reset, reference_state(batch, t), (data.qpos, data.qvel))
            ref = step_slice(batch, t + 1)
            ctrl = self._pd(qpos, qvel, ref["ref_motor_joint_pos"])
            data = self._advance(data.replace(qpos=qpos, qvel=qvel, ctrl=ctrl), batch, t)
            reward, base_err = self._reward(data, ref)
            done = ref["valid"] & (base_err > TERMINATE_M)
            out = {
                "reward": jnp.where(ref["valid"], reward, 0.0),
                "done": done,
                "reset": reset,
                "reset_qpos": qpos,
                "ctrl": ctrl,
                "base_pos": data.xpos[:, self.pelvis],
                "base_quat": data.xquat[:, self.pelvis],
                "motor_pos": data.qpos[:, self.act_q],
            }
            return (data, done), out

        return jax.lax.scan(step, carry, jnp.arange(horizon))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument(
        "--store",
        type=Path,
        help="a Cassie store with aslip_walk + qvel "
        "(default: export one into a temporary directory)",
    )
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--window-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--physics", action="store_true", help="mjx.step (default: kinematics)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store_path = args.store or export_aslip(args.data, Path(tmp) / "cassie.zarr")
        store = TrajectoryStore(str(store_path))
        config = tracking_config(store_path, args.num_envs, args.window_size, args.batches)
        dt = float(np.nanmedian(store.dts))
        tracker = Tracker(args.data / "cassie" / "cassie.xml", dt, physics=args.physics)
        carry = tracker.initial_carry(args.num_envs)
        with device_iterator(make_dataset(config, store)) as batches:
            for k, batch in enumerate(batches):
                t0 = time.perf_counter()
                carry, out = tracker.window(carry, batch)
                reward = float(out["reward"].mean())  # waits for the window
                print(
                    f"window {k}: mean reward {reward:.4f}, resets {int(out['reset'].sum())}, "
                    f"terminations {int(out['done'].sum())}, "
                    f"{args.num_envs * args.window_size / (time.perf_counter() - t0):.0f} "
                    "env-steps/s"
                )


if __name__ == "__main__":
    main()
