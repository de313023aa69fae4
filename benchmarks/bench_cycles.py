"""Cost of continuing cyclic motions (``ContinueCycles``) per batch, next to the gather it follows.

On the real Cassie ``aslip_walk`` strides (qpos 35, MuJoCo-derived qvel 32, feet ``ee_pos`` 2x3,
exported to a temporary store), it builds batches of ``E`` envs x ``W`` steps in which every
step has been through the seam (``loop >= 1``, the worst case: every row is rewritten) and times

* ``gather``: ``store.gather`` of qpos, qvel, ee_pos cast to float32 (what ``GatherKeys`` does);
* ``ContinueCycles.map``: the rewrite of base position / quaternion, world velocity and feet,
  for these straight strides (a pure translation per loop) and, with the cached heading change
  set to 0.3 rad, for turning ones (rotation of positions, quaternions, velocities, feet);
* ``make_dataset`` with ``cyclic`` off and on (Cassie config without references, wrap schedule):
  ms per batch, and ms to build it on a freshly opened (cold) store ("build"; with ``cyclic``
  every played trajectory's ``Delta`` is computed up front: one gather of 3 qpos rows each,
  which decodes their qpos into the host cache).

Run::

    python benchmarks/bench_cycles.py                          # E = 256, 4096; W = 32
    python benchmarks/bench_cycles.py --num_envs 4096 --batches 50

No assertions: it prints ms per batch.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np

from trajopt_loader import TrajectoryStore, export_npz, load_config, make_dataset
from trajopt_loader.kinematics import make_export_preprocess
from trajopt_loader.transforms import ContinueCycles

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _store(tmp: Path) -> TrajectoryStore:
    root = tmp / "npz" / "aslip_walk"
    root.mkdir(parents=True)
    for src in sorted((DATA / "cassie" / "trajopt" / "aslip_walk").glob("*.npz")):
        with np.load(src) as f:
            ee = np.stack([f["left_foot_pos"], f["right_foot_pos"]], axis=1)
            np.savez(root / src.name, qpos=f["qpos"], ee_pos=ee, dt=f["dt"])
    export_npz(
        root.parent,
        tmp / "aslip.zarr",
        source="cassie",
        convention="mujoco",
        progress=False,
        preprocess=make_export_preprocess(
            str(DATA / "cassie" / "cassie.xml"), convention="mujoco", derive_qvel=True
        ),
    )
    store = TrajectoryStore(tmp / "aslip.zarr")
    store.warm()
    return store


def _best_ms(fn, batches: int) -> float:
    fn()
    times = []
    for _ in range(batches):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_envs", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp))
        keys = ("qpos", "qvel", "ee_pos")
        print(
            f"{'E':>6} {'gather ms':>10} {'cycles ms':>10} {'turning':>8} {'pipeline off':>13} "
            f"{'on':>8} {'build off':>10} {'on':>8}"
        )
        for E in args.num_envs:
            rng = np.random.default_rng(0)
            traj = rng.integers(0, len(store.lengths), E).astype(np.int32)
            t = rng.integers(0, 10**4, E)[:, None] + np.arange(args.window)
            L = store.lengths[traj][:, None]
            step, loop = (t % L).astype(np.int32), (1 + t // L).astype(np.int32)
            base = {"traj_id": traj, "step": step, "loop": loop}

            def gather(traj=traj, step=step):
                return {k: store.gather(k, traj, step).astype(np.float32) for k in keys}

            batch = base | gather()
            cycles, turning = ContinueCycles(store), ContinueCycles(store)
            turning.deltas(np.arange(len(store.lengths)))
            turning._table[1][:] = 0.3  # every stride turns 0.3 rad per loop (arithmetic path)
            row = [
                _best_ms(gather, args.batches),
                _best_ms(lambda c=cycles, b=batch: c.map(b), args.batches),
                _best_ms(lambda c=turning, b=batch: c.map(b), args.batches),
            ]
            for cyclic in (False, True):
                config = load_config(
                    "cassie",
                    {
                        "zarr_path": store.path,
                        "num_envs": E,
                        "window_size": args.window,
                        "keys": keys,
                        "cyclic": cyclic,
                        "references.enabled": False,
                    },
                )
                it = iter(make_dataset(config, store, 0, 1))
                for _ in itertools.islice(it, 3):  # past the first loop: every env has wrapped
                    pass
                row.append(_best_ms(lambda it=it: next(it), args.batches))
            for cyclic in (False, True):
                config = load_config(
                    "cassie",
                    {
                        "zarr_path": store.path,
                        "num_envs": E,
                        "window_size": args.window,
                        "keys": keys,
                        "cyclic": cyclic,
                        "references.enabled": False,
                    },
                )
                t = time.perf_counter()
                make_dataset(config, TrajectoryStore(store.path), 0, 1)
                row.append(1e3 * (time.perf_counter() - t))
            print(
                f"{E:>6} {row[0]:>10.2f} {row[1]:>10.2f} {row[2]:>8.2f} {row[3]:>13.2f} "
                f"{row[4]:>8.2f} {row[5]:>10.1f} {row[6]:>8.1f}"
            )


if __name__ == "__main__":
    main()
