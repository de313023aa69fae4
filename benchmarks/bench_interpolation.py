"""Cost of windows at a control rate (``InterpolateKeys``) per batch, next to the plain gather.

On Cassie's ``agility_reference`` clips (2 kHz traj0 / traj1 and ~29 Hz traj2; qpos 35 with 3
quaternions (base + 2 achilles ball joints), qvel 32, action 10; exported to a temporary store,
host cache float32 and warm, as ``make_dataset`` opens it), it times per batch of ``E`` envs x
``W`` steps at random window starts:

* ``gather``: ``GatherKeys.map`` of stored-frame windows (what a stream without ``control_dt``
  runs);
* ``tables``: ``InterpolateKeys.map`` of control-step windows at ``control_dt`` with its
  control-rate tables (what ``make_dataset`` runs when they fit ``cache_bytes``: every played
  trajectory interpolated once, then one gather per key; ``build`` is that one-time cost);
* ``per batch``: the same without tables, interpolating every batch (default ``control_dt``
  0.02 s is 40.00007 stored frames per step on the 2 kHz clips, whose recorded dt is not
  exactly 0.5 ms, and 0.58 on traj2, so nearly every step lies between frames: two rows
  gathered, lerp, and slerp of the 3 quaternions, float32);
* ``lerp only``: per batch without quaternions (the slerp costs the difference).

Run::

    python benchmarks/bench_interpolation.py                      # E = 256, 4096; W = 32
    python benchmarks/bench_interpolation.py --num_envs 4096 --batches 50 --control_dt 0.01

No assertions: it prints ms per batch and tables / gather, per batch / gather (goal <= 1.5 at
4096 envs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from trajopt_loader.kinematics import load_kinematics_model, quaternion_qpos_addresses
from trajopt_loader.store import TrajectoryStore, export_npz
from trajopt_loader.transforms import GatherKeys, InterpolateKeys, WindowIndices, control_lengths

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KEYS = ("qpos", "qvel", "action")


def _median_ms(fns, batches: int) -> list[float]:
    """Median ms per call of each of ``fns``, timed in interleaved rounds (a shared, loaded
    machine slows all of them alike)."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(batches):
        for fn, spent in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t)
    return [1e3 * float(np.median(t)) for t in times]


def _element(lengths, num_envs: int, window: int, rng) -> dict:
    traj = rng.integers(0, 3, num_envs).astype(np.int32)
    start = rng.integers(0, lengths[traj]).astype(np.int32)
    return WindowIndices(lengths, window, "wrap").map({"traj_id": traj, "start": start})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_envs", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--control_dt", type=float, default=0.02)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export_npz(
            DATA / "cassie" / "trajopt",
            Path(tmp) / "cassie.zarr",
            source="cassie",
            motion="agility_reference",
            convention="mujoco",
            progress=False,
        )
        store = TrajectoryStore(Path(tmp) / "cassie.zarr", cache_dtype="float32")
        store.warm(KEYS)
        quats = quaternion_qpos_addresses(load_kinematics_model(DATA / "cassie" / "cassie.xml"))
        ids = np.arange(3)
        plain = GatherKeys(store, KEYS, "float32", traj_ids=ids)
        common = dict(traj_ids=ids, control_dt=args.control_dt)
        tables = InterpolateKeys(
            store, KEYS, "float32", **common, quaternions=quats, table_bytes=2**31
        )
        per_batch = InterpolateKeys(store, KEYS, "float32", **common, quaternions=quats)
        lerp_only = InterpolateKeys(store, KEYS, "float32", **common)
        t = time.perf_counter()
        tables.tables()
        build = 1e3 * (time.perf_counter() - t)
        controls = control_lengths(store, args.control_dt)
        print(
            f"stored lengths {store.lengths.tolist()} (dt {np.round(store.dts, 6).tolist()} s)"
            f" -> {controls.tolist()} control steps of {args.control_dt} s; quaternions at "
            f"qpos{list(quats)}; tables built once in {build:.1f} ms"
        )
        print(
            f"{'E':>6} {'gather ms':>10} {'tables':>8} {'per batch':>10} {'lerp only':>10} "
            f"{'tables/gather':>14} {'per batch/gather':>17}"
        )
        for E in args.num_envs:
            rng = np.random.default_rng(0)
            stored = _element(store.lengths, E, args.window, rng)
            control = _element(controls, E, args.window, rng)
            row = _median_ms(
                [
                    lambda stored=stored: plain.map(stored),
                    lambda control=control: tables.map(control),
                    lambda control=control: per_batch.map(control),
                    lambda control=control: lerp_only.map(control),
                ],
                args.batches,
            )
            print(
                f"{E:>6} {row[0]:>10.2f} {row[1]:>8.2f} {row[2]:>10.2f} {row[3]:>10.2f} "
                f"{row[1] / row[0]:>14.2f} {row[2] / row[0]:>17.2f}"
            )


if __name__ == "__main__":
    main()
