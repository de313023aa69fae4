"""Stores for the viz tests: a Digit v3 motion made on the real model, a Cassie ghost store."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def digit_qpos(m, n: int = 40, dt: float = 0.02, phase: float = 0.0) -> np.ndarray:
    """float64 ``[n, nq]`` for the Digit ``mujoco.MjModel`` ``m``: its ``qpos0`` walking forward
    (0.5 m/s), turning (0.4 rad/s) at 1 m height, every actuated joint swinging by 0.3 rad
    (clipped to its range) with ``phase``."""
    from trajopt_loader.robots import digit_v3

    t = np.arange(n) * dt
    q = np.tile(m.qpos0, (n, 1))
    q[:, 0], q[:, 1], q[:, 2] = 0.5 * t, 0.0, 1.0
    yaw = 0.4 * t
    q[:, 3:7] = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], 1)  # wxyz
    for k, a in enumerate(digit_v3.QPOS_INDEX):
        j = int(np.flatnonzero(m.jnt_qposadr == a)[0])
        lo, hi = m.jnt_range[j] if m.jnt_limited[j] else (-np.inf, np.inf)
        q[:, a] = np.clip(m.qpos0[a] + 0.3 * np.sin(2 * np.pi * t + phase + k), lo, hi)
    return q


def digit_store(tmp: Path, m) -> Path:
    """A store ``digit_v3/walk/{traj0, traj1}`` (MuJoCo convention) with qvel from qpos and the
    world positions of Digit's 4 end-effector sites as ``ee_pos [T, 4, 3]``, for the
    Digit ``mujoco.MjModel`` ``m`` (loading digit-v3.xml with its meshes takes seconds: load
    once)."""
    from trajopt_loader import MUJOCO, export_npz
    from trajopt_loader.kinematics import qvel_from_qpos, site_positions_mujoco
    from trajopt_loader.robots import digit_v3

    root = tmp / "digit_npz" / "walk"
    root.mkdir(parents=True)
    for i, phase in enumerate((0.0, 2.0)):
        q = digit_qpos(m, phase=phase)
        np.savez(
            root / f"traj_{i}.npz",
            qpos=q,
            qvel=qvel_from_qpos(m, q, 0.02, MUJOCO),
            ee_pos=site_positions_mujoco(m, q, digit_v3.EE_SITES, MUJOCO),
            dt=np.float64(0.02),
        )
    out = tmp / "digit.zarr"
    export_npz(root.parent, out, source="digit_v3", convention="mujoco", progress=False)
    return out
