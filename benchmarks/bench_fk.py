"""Forward-kinematics throughput: MJX (jitted, vmapped, chunked) vs a MuJoCo ``mj_kinematics`` loop.

Computes world positions of end-effector sites for ``envs x window`` frames (one pipeline batch,
default 4096 x 32 = 131072 frames) of random Digit v3 states and prints frames/s of both paths,
the one-off MJX compile time, and the largest difference between them (m).

Run from the repository root (real data beside the clone, in ../shared/data):

    JAX_PLATFORMS=cpu python benchmarks/bench_fk.py
    python benchmarks/bench_fk.py --envs 1024 --window 32 --chunk_size 16384 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from trajopt_loader import MUJOCO
from trajopt_loader.kinematics import load_kinematics_model, site_positions, site_positions_mujoco

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def random_states(model: mujoco.MjModel, n: int, seed: int = 0) -> np.ndarray:
    """[n, nq] float64: random base pose, ball joints on SO(3), hinges/slides within range."""
    rng = np.random.default_rng(seed)
    q = np.tile(model.qpos0, (n, 1))
    for j in range(model.njnt):
        a, kind = model.jnt_qposadr[j], model.jnt_type[j]
        if kind in (mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_BALL):
            a += 3 if kind == mujoco.mjtJoint.mjJNT_FREE else 0
            q[:, a : a + 4] = Rotation.random(n, random_state=rng).as_quat(scalar_first=True)
        else:
            lo, hi = model.jnt_range[j] if model.jnt_limited[j] else (-1.0, 1.0)
            q[:, a] = rng.uniform(lo, hi, n)
    return q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(DATA / "digit_v3" / "digit-v3.xml"))
    parser.add_argument("--sites", default="left-hand,right-hand,left-foot-mid,right-foot-mid")
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--chunk_size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--mujoco_frames",
        type=int,
        default=None,
        help="frames for the (slow) mj_kinematics loop; default: all",
    )
    args = parser.parse_args()

    import jax  # after argument parsing: importing MJX is slow

    model, sites = load_kinematics_model(args.model), tuple(args.sites.split(","))
    qpos = random_states(model, args.envs * args.window).reshape(args.envs, args.window, -1)

    start = time.perf_counter()
    site_positions(model, qpos[:1].repeat(args.envs, 0), sites, MUJOCO, chunk_size=args.chunk_size)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        mjx_out = site_positions(model, qpos, sites, MUJOCO, chunk_size=args.chunk_size)
        times.append(time.perf_counter() - start)
    n = qpos.shape[0] * qpos.shape[1]
    flat = qpos.reshape(n, -1)
    m_frames = n if args.mujoco_frames is None else min(args.mujoco_frames, n)
    start = time.perf_counter()
    mj_out = site_positions_mujoco(model, flat[:m_frames], sites, MUJOCO)
    mj_s = time.perf_counter() - start
    err = float(np.abs(mjx_out.reshape(n, len(sites), 3)[:m_frames] - mj_out).max())
    result = {
        "model": Path(args.model).name,
        "sites": len(sites),
        "frames": n,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
        "chunk_size": args.chunk_size,
        "mjx_compile_s": round(compile_s, 2),
        "mjx_best_s": round(min(times), 4),
        "mjx_frames_per_s": round(n / min(times)),
        "mujoco_frames": m_frames,
        "mujoco_s": round(mj_s, 3),
        "mujoco_frames_per_s": round(m_frames / mj_s),
        "speedup": round((n / min(times)) / (m_frames / mj_s), 1),
        "max_abs_diff_m": err,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
