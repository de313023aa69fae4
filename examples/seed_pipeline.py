"""The seed API's documented pipeline, end to end, on real Cassie data; then Digit references.

Run from the repository root::

    python examples/seed_pipeline.py  # ../shared/data, else bundled sample
    python examples/seed_pipeline.py --data ../shared/data/cassie/trajopt --windows 20 --num-envs 64

Steps: export the ``agility_reference`` motion (MuJoCo data: ``convention="mujoco"``) with
``TrajoptLoader`` -> ``VectorizedTrajectoryDataset`` -> ``update_references`` -> a host window
function (``fetch_window`` + cursor advance) -> ``DoubleBufferStreamer`` -> a jitted
``jax.lax.scan`` consumer, whose result is checked against a numpy oracle computed from the
``.npz`` files. Then the Digit step: ``build_refs_from_window`` with the 24-index third-arm
``DigitRefSpec`` on a synthetic Pinocchio-convention window (nq=65, nv=58), checked by hand.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import trajopt_loader
from trajopt_loader import (
    DigitRefSpec,
    DoubleBufferStreamer,
    TrajoptLoader,
    VectorizedTrajectoryDataset,
    build_refs_from_window,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cassie" / "trajopt"
BUNDLED = Path(trajopt_loader.__file__).parent / "sample_data" / "cassie"
MOTION = "agility_reference"
A_POS = [
    7,
    8,
    9,
    14,
    18,
    23,
    30,
    31,
    32,
    33,
    34,
    35,
    36,
    41,
    45,
    50,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
]
A_VEL = [
    6,
    7,
    8,
    12,
    16,
    20,
    26,
    27,
    28,
    29,
    30,
    31,
    32,
    36,
    40,
    44,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
]


def scan_step(carry, x):
    """One time step for all envs: ``c = 0.5 c + sum(qpos[:6] * qvel[:6]) + qpos[2]`` -> [E]."""
    qpos_t, qvel_t = x
    carry = 0.5 * carry + jnp.sum(qpos_t[:, :6] * qvel_t[:, :6], axis=-1) + qpos_t[:, 2]
    return carry, carry


@jax.jit
def consume(carry, batch):
    """carry [E] float32, batch qpos [E, W, nq], qvel [E, W, nv] -> (carry [E], per-step [W, E])."""
    xs = (jnp.swapaxes(batch["qpos"], 0, 1), jnp.swapaxes(batch["qvel"], 0, 1))
    return jax.lax.scan(scan_step, carry, xs)


def oracle(data: Path, file_of_env, start_of_env, n_windows: int, window: int) -> np.ndarray:
    """The same recurrence in float64 on the ``.npz`` rows (steps wrapped modulo the length)."""
    files = {f: np.load(data / MOTION / f) for f in set(file_of_env)}
    carry = np.zeros(len(file_of_env))
    for e, (f, s) in enumerate(zip(file_of_env, start_of_env, strict=True)):
        qpos, qvel = files[f]["qpos"], files[f]["qvel"]
        for t in (s + np.arange(n_windows * window)) % len(qpos):
            carry[e] = 0.5 * carry[e] + qpos[t, :6] @ qvel[t, :6] + qpos[t, 2]
    return carry


def stream(data: Path, out_dir: str, num_envs: int, window: int, n_windows: int) -> float:
    """Runs the pipeline; returns the max abs difference to the numpy oracle."""
    zarr_path = TrajoptLoader(data).save(
        out_dir=out_dir, dataset_source="cassie", motion=MOTION, convention="mujoco"
    )
    cfg = {"window_size": window, "buffer_size": 128, "allow_wrap": True}
    ds = VectorizedTrajectoryDataset(zarr_path=zarr_path, num_envs=num_envs, cfg=cfg)
    print("trajectories:", ds.available_trajectories, "lengths:", ds.traj_lengths.tolist())
    files = [t.source_file for t in ds.store.trajectories]  # e.g. traj0 <- traj_0.npz
    traj = [e % len(files) for e in range(num_envs)]
    start = [37 * e for e in range(num_envs)]
    ds.update_references(env_to_traj=dict(enumerate(traj)), env_to_step=dict(enumerate(start)))
    envs = list(range(num_envs))

    def host_fetch_window():
        qpos = ds.fetch_window(envs, key="qpos", window_size=window)
        qvel = ds.fetch_window(envs, key="qvel", window_size=window)
        ds.update_references(env_to_step={e: ds.env_steps[e] + window for e in envs})
        return {"qpos": qpos, "qvel": qvel}

    carry = jnp.zeros(num_envs, jnp.float32)
    with DoubleBufferStreamer(window_fn=host_fetch_window) as streamer:
        for _ in range(n_windows):
            batch = streamer.next_window()  # on the device; the next one is being prepared
            carry, _ = consume(carry, batch)
    want = oracle(data, [files[t] for t in traj], start, n_windows, window)
    err = float(np.max(np.abs(np.asarray(carry) - want)))
    print(
        f"{n_windows} windows of [{num_envs}, {window}, ...]: scan result "
        f"{np.asarray(carry)[:3]} ...; max |jax - numpy oracle| = {err:.2e}"
    )
    return err


def digit_refs() -> float:
    """``build_refs_from_window`` on a synthetic third-arm window in Pinocchio convention: base at
    ``p_t = (0.1 t, 0, 1)``, yaw 90 deg (quaternion xyzw), body-frame velocity (1, 0, 0)."""
    n = 8
    t = np.arange(n, dtype=np.float64)
    qpos, qvel = np.zeros((n, 65)), np.zeros((n, 58))
    qpos[:, 0], qpos[:, 2] = 0.1 * t, 1.0
    qpos[:, 3:7] = [0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)]
    qpos[:, A_POS] = np.arange(24) / 10
    qvel[:, 0] = 1.0
    refs = build_refs_from_window(qpos, qvel, DigitRefSpec(A_POS, A_VEL))  # default: Pinocchio
    # hand-computed: ref_base_local_pos is the world position, ref_base_local_ori the absolute
    # (roll, pitch, yaw) = (0, 0, 90 deg); the body-frame velocity is not rotated again.
    want_pos = np.stack([0.1 * t, 0 * t, 0 * t + 1.0], axis=1)
    err = max(
        np.abs(refs["ref_base_local_pos"] - want_pos).max(),
        np.abs(refs["ref_base_local_ori"] - [0.0, 0.0, np.pi / 2]).max(),
        np.abs(refs["ref_base_robot_lin_vel"] - [1.0, 0.0, 0.0]).max(),
        np.abs(refs["ref_motor_joint_pos"] - np.arange(24) / 10).max(),
    )
    print("digit refs:", {k: v.shape for k, v in refs.items()}, f"max |error| = {err:.1e}")
    return float(err)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=SHARED if SHARED.is_dir() else BUNDLED,
        help=f"root holding {MOTION}/traj_*.npz (Cassie, MuJoCo convention)",
    )
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--windows", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as out_dir:
        err = stream(args.data, out_dir, args.num_envs, args.window, args.windows)
    ok = err < 1e-3 and digit_refs() < 1e-9
    print(
        "OK: results match the numpy oracle and the hand-computed references" if ok else "MISMATCH"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
