"""Store benchmark: export time, zarr slice read vs host-cache gather (whole-key and chunk-LRU).

    python benchmarks/bench_store_gather.py [--envs 4096] [--window 32] [--repeats 20]

Exports the real Cassie trajectories (../shared/data/cassie/trajopt, agility_reference +
aslip_walk) to a temporary store, then times ``TrajectoryStore.gather("qpos", ...)`` for random
windows of ``envs`` environments with a budget that holds everything (one fancy index) and with a
tiny budget (LRU of time-chunks), against one zarr slice read per window.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from trajopt_loader.store import TrajectoryStore, export_npz

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cassie" / "trajopt"


def _time(fn, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--envs", type=int, default=4096)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cassie.zarr"
        t0 = time.perf_counter()
        s = export_npz(
            DATA, out, source="cassie", convention="mujoco", allow_missing=("qvel",), progress=False
        )
        print(
            f"export: {s.trajectories} trajectories, {s.frames} frames, "
            f"{s.bytes / 2**20:.2f} MiB raw -> {s.stored_bytes / 2**20:.2f} MiB stored "
            f"in {time.perf_counter() - t0:.2f} s"
        )
        rng = np.random.default_rng(0)
        probe = TrajectoryStore(out)
        ids = rng.integers(0, len(probe.trajectories), args.envs)
        start = rng.integers(0, 10**6, args.envs)
        steps = (start[:, None] + np.arange(args.window)) % probe.lengths[ids][:, None]
        nbytes = args.envs * args.window * 35 * 8
        for name, budget in (("whole-key cache", 2**31), ("chunk LRU, 256 KiB budget", 2**18)):
            store = TrajectoryStore(out, cache_bytes=budget)
            dt = _time(lambda store=store: store.gather("qpos", ids, steps), args.repeats)
            info = store.cache_info()
            print(
                f"gather qpos [{args.envs}, {args.window}, 35] {name}: {dt * 1e3:.2f} ms "
                f"({nbytes / dt / 2**30:.2f} GiB/s), cache {info['bytes_used'] / 2**20:.2f} MiB"
            )
        store = TrajectoryStore(out, cache_bytes=0)
        arr = [store._array(int(i), "qpos") for i in ids[:64]]
        dt = _time(lambda: [a[0 : args.window] for a in arr], 3) / 64
        print(
            f"zarr slice read of one window: {dt * 1e3:.3f} ms "
            f"(x {args.envs} envs = {dt * args.envs * 1e3:.0f} ms per batch)"
        )


if __name__ == "__main__":
    main()
