"""A Cassie MJX tracking loop fed by ``device_iterator``: the stream used as an environment would.

Run from the repository root (exports the ``aslip_walk`` strides with derived ``qvel`` first)::

    python examples/mjx_tracking.py                       # kinematics only: fast on a CPU
    python examples/mjx_tracking.py --physics --num-envs 1024 --batches 50   # full mjx.step (GPU)
    python examples/mjx_tracking.py --bodies              # + body states, the body reward term
    python examples/mjx_tracking.py --adaptive --lagging --terminate-m 0.03 --batches 64

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
  ``--lagging``: kinematics one step behind (the reference at ``t``), a tracker whose base error
  is the reference's base displacement per step, so it fails where the motion is fastest;
* a DeepMimic-style reward (Peng et al. 2018) from the references at ``t + 1``: actuated joint
  positions, velocities, base position (``ref_base_local_pos``, world) and orientation
  (``qpos`` base quaternion), ``exp(-k * error^2)`` terms weighted
  :data:`WEIGHTS`, masked by ``valid``; with ``--bodies`` (the store exported with ``--bodies
  all``, ``references.body_keys``) a body position term compares MJX ``data.xpos`` of the
  stored bodies (ids by the names recorded at export) with ``ref_body_pos``
  (weights :data:`WEIGHTS_BODIES`);
* early termination when the base is more than :data:`TERMINATE_M` from the reference.

``--adaptive`` (``adaptive.enabled``, ``schedule="random"``: every window is an episode, RSI at
its first step, drawn over all strides; bins of :data:`ADAPTIVE_BIN_STEPS` steps): each window's
early terminations (per env, the first window step where ``done``) are reported with
``report_failures``, and later windows start where they failed (from batch ``adaptive.lag = 8``
on); the printout shows the share of starts in a bin that failed rising from its uniform value.
With ``schedule="sequential"`` the draw would only move each env's episode start within its own
trajectory, and the lagging tracker fails along whole fast strides.

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
from trajopt_loader.store.layout import BODY_KEYS
from trajopt_loader.transforms.references_bodies import store_body_names

PHYSICS_DT = 0.0025  # s, mjx.step substep
KP = np.array([100.0, 100.0, 88.0, 96.0, 50.0] * 2)  # N m / rad at the joint, per leg motor
KD = KP / 10.0  # N m s / rad
WEIGHTS = {"joint_pos": 0.5, "joint_vel": 0.1, "base_pos": 0.2, "base_ori": 0.2}
# with ref_body_pos in the batch (DeepMimic's pose / velocity / end-effector / root split)
WEIGHTS_BODIES = {
    "joint_pos": 0.4,
    "joint_vel": 0.1,
    "base_pos": 0.15,
    "base_ori": 0.15,
    "body_pos": 0.2,
}
SCALES = {
    "joint_pos": 2.0,
    "joint_vel": 0.01,
    "base_pos": 10.0,
    "base_ori": 2.0,
    "body_pos": 10.0 / 25,  # per squared metre summed over the 25 Cassie bodies
}
ADAPTIVE_BIN_STEPS = 8  # steps per failure bin with --adaptive (4 bins per ~32-step stride)
TERMINATE_M = 0.3  # base position error (m) that ends an episode


def export_aslip(data_root: Path, out: Path, bodies: bool = False) -> Path:
    """Export ``cassie/trajopt/aslip_walk`` (21 strides, 31-32 steps at ~25 ms) to ``out`` with
    ``qvel`` derived from ``qpos`` by the model (the files have none), and with ``bodies`` the
    world states of all bodies (``export --bodies all``: ``body_pos`` ...); returns ``out``."""
    xml = data_root / "cassie" / "cassie.xml"
    export_npz(
        data_root / "cassie" / "trajopt",
        out,
        source="cassie",
        motion="aslip_walk",
        convention="mujoco",
        allow_missing=("qvel",),
        progress=False,
        preprocess=make_export_preprocess(
            str(xml), convention="mujoco", derive_qvel=True, bodies="all" if bodies else ()
        ),
    )
    return out


def tracking_config(
    store_path,
    num_envs: int,
    window_size: int,
    num_batches: int | None,
    seed: int = 0,
    bodies: bool = False,
    adaptive: bool = False,
):
    """The stream an env needs: Cassie references, one look-ahead frame, a random first phase
    per env (no lockstep duplicates), the episode origin; ``bodies``: the ``ref_body_*`` keys
    (a store from ``export_aslip(..., bodies=True)``); ``adaptive``: window starts drawn from
    the reported failures (module docstring)."""
    overrides = {
        "zarr_path": str(store_path),
        "motions": ("aslip_walk",),
        "num_envs": num_envs,
        "window_size": window_size,
        "num_batches": num_batches,
        "seed": seed,
        "future_steps": 1,
        "random_start": True,
        "episode_origin_keys": True,
    }
    if bodies:
        overrides.update({"keys": ("qpos", "qvel", *BODY_KEYS), "references.body_keys": True})
    if adaptive:
        overrides.update(
            {
                "adaptive.enabled": True,
                "adaptive.bin_steps": ADAPTIVE_BIN_STEPS,
                "schedule": "random",
            }
        )
    return load_config("cassie", overrides)


def first_failures(done) -> tuple[np.ndarray, np.ndarray]:
    """``(failed [E] bool, fail_step [E] int)`` of a window's ``done [W, E]``: whether each env
    terminated early, and the first window step where it did (0 where not): the arguments of
    ``report_failures``."""
    done = np.asarray(done)
    return done.any(axis=0), done.argmax(axis=0)


class Tracker:
    """The jitted per-window rollout of the module docstring for one MuJoCo model.

    Args:
      model_path: Cassie MJCF. dt: the stream's time step (s; ``store.dts``).
      physics: ``mjx.step`` (True) or kinematics only (False).
      body_names: the bodies of ``ref_body_pos`` (``store_body_names``), for the body term;
        ``None``: no body term. lagging: kinematics one step behind (module docstring).
      terminate_m: base position error (m) that ends an episode.

    ``window(carry, batch) -> (carry, out)``: ``carry = (mjx.Data [E], done [E] bool)`` (from
    :meth:`initial_carry`), ``batch`` a device batch with ``T = W + 1`` frames; ``out`` holds
    ``[W, E, ...]`` arrays: ``reward``, ``done``, ``reset`` (RSI happened at ``t``),
    ``reset_qpos`` (``qpos`` after the reset at ``t``), ``ctrl [W, E, nu]``, and the env-side
    quantities after the step from MuJoCo: ``base_pos`` (pelvis ``xpos``), ``base_quat``
    (pelvis ``xquat``, w x y z), ``motor_pos`` (actuated ``qpos``); with ``body_names``:
    ``body_pos [W, E, nb, 3]`` (``xpos`` of those bodies) and ``body_term [W, E]`` (the body
    reward term, 1 = exact).
    """

    def __init__(
        self,
        model_path,
        dt: float,
        physics: bool = False,
        body_names=None,
        lagging: bool = False,
        terminate_m: float = TERMINATE_M,
    ):
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
        self.bodies = (
            None if body_names is None else np.array([host.body(n).id for n in body_names])
        )
        self.lagging, self.terminate_m = lagging, float(terminate_m)
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
        qpos, qvel = reference_state(batch, t if self.lagging else t + 1)
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
        weights = WEIGHTS
        if self.bodies is not None:
            diff = data.xpos[:, self.bodies] - ref["ref_body_pos"]
            err["body_pos"] = jnp.sum(diff**2, axis=(-2, -1))
            weights = WEIGHTS_BODIES
        terms = {k: jnp.exp(-SCALES[k] * err[k]) for k in weights}
        reward = sum(weights[k] * terms[k] for k in weights)
        return reward, jnp.sqrt(err["base_pos"]), terms

    def _window(self, carry, batch):
        horizon = batch["valid"].shape[1] - 1  # W: the last frame is the look-ahead

        def step(carry, t):
            data, done = carry
            reset = done | (batch["episode_start"] & (t == 0))
            qpos, qvel = where_envs(reset, reference_state(batch, t), (data.qpos, data.qvel))
            ref = step_slice(batch, t + 1)
            ctrl = self._pd(qpos, qvel, ref["ref_motor_joint_pos"])
            data = self._advance(data.replace(qpos=qpos, qvel=qvel, ctrl=ctrl), batch, t)
            reward, base_err, terms = self._reward(data, ref)
            done = ref["valid"] & (base_err > self.terminate_m)
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
            if self.bodies is not None:
                out["body_pos"] = data.xpos[:, self.bodies]
                out["body_term"] = terms["body_pos"]
            return (data, done), out

        return jax.lax.scan(step, carry, jnp.arange(horizon))


def report_concentration(store, starts, failing) -> None:
    """Print the share of new episodes starting in a failing ``(traj_id, bin)`` cell (one with
    a reported failure during the run) per quarter of the run, next to the share a uniform draw
    over the played trajectories' bins gives."""
    played = {traj for cells in starts for traj, _ in cells}
    bins = sum(-(-int(store.lengths[traj]) // ADAPTIVE_BIN_STEPS) for traj in played)
    print(
        f"{len(failing)} of {bins} bins ({ADAPTIVE_BIN_STEPS} steps) had failures: "
        f"{len(failing) / max(bins, 1):.0%} of the starts under a uniform draw"
    )
    step = max(1, -(-len(starts) // 4))
    for k in range(0, len(starts), step):
        cells = [c for window in starts[k : k + step] for c in window]
        share = sum(c in failing for c in cells) / max(len(cells), 1)
        print(f"windows {k}-{min(k + step, len(starts)) - 1}: {share:.0%} start in a failing bin")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument(
        "--store",
        type=Path,
        help="a Cassie store with aslip_walk + qvel (+ body states with --bodies) "
        "(default: export one into a temporary directory)",
    )
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--window-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--physics", action="store_true", help="mjx.step (default: kinematics)")
    parser.add_argument("--bodies", action="store_true", help="body states + body reward term")
    parser.add_argument(
        "--adaptive", action="store_true", help="report failures; starts drawn from them"
    )
    parser.add_argument(
        "--lagging", action="store_true", help="kinematics one step behind (fails when fast)"
    )
    parser.add_argument("--terminate-m", type=float, default=TERMINATE_M)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store_path = args.store or export_aslip(args.data, Path(tmp) / "cassie.zarr", args.bodies)
        store = TrajectoryStore(str(store_path))
        config = tracking_config(
            store_path,
            args.num_envs,
            args.window_size,
            args.batches,
            bodies=args.bodies,
            adaptive=args.adaptive,
        )
        dt = float(np.nanmedian(store.dts))
        tracker = Tracker(
            args.data / "cassie" / "cassie.xml",
            dt,
            physics=args.physics,
            body_names=store_body_names(store) if args.bodies else None,
            lagging=args.lagging,
            terminate_m=args.terminate_m,
        )
        carry = tracker.initial_carry(args.num_envs)
        failing: set[tuple[int, int]] = set()  # (traj_id, bin) cells with a reported failure
        starts: list[list[tuple[int, int]]] = []  # per window: cells where new episodes start
        with device_iterator(make_dataset(config, store)) as batches:
            for k, batch in enumerate(batches):
                t0 = time.perf_counter()
                carry, out = tracker.window(carry, batch)
                reward = float(out["reward"].mean())  # waits for the window
                rate = args.num_envs * args.window_size / (time.perf_counter() - t0)
                line = (
                    f"window {k}: mean reward {reward:.4f}, resets {int(out['reset'].sum())}, "
                    f"terminations {int(out['done'].sum())}, {rate:.0f} env-steps/s"
                )
                if "body_term" in out:
                    line += f", body term {float(out['body_term'].mean()):.4f}"
                if args.adaptive:
                    failed, fail_step = first_failures(out["done"])
                    batches.report_failures(failed, fail_step)
                    traj, step = np.asarray(batch["traj_id"]), np.asarray(batch["step"])
                    new = np.flatnonzero(np.asarray(batch["episode_start"]))
                    cells = [(int(traj[e]), int(step[e, 0]) // ADAPTIVE_BIN_STEPS) for e in new]
                    starts.append(cells)
                    failing.update(
                        (int(traj[e]), int(step[e, fail_step[e]]) // ADAPTIVE_BIN_STEPS)
                        for e in np.flatnonzero(failed)
                    )
                print(line)
        if args.adaptive:
            report_concentration(store, starts, failing)


if __name__ == "__main__":
    main()
