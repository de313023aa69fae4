"""Host throughput of the window pipeline (make_dataset) next to plain numpy baselines.

For Digit-sized rows (qpos 61, qvel 54, action 20, float32) in a synthetic store (written with
``export_npz`` to a temporary directory), it measures, in one run and on the same bytes per batch:

* ``make_dataset``: iterating the grain pipeline (schedule -> window indices -> store gather),
  host cache warm;
* ``numpy gather``: one in-RAM fancy index ``flat[offsets[traj][:, None] + steps]`` per key;
* ``numpy block gather``: the same windows as W contiguous rows each (a strided view indexed
  by window start), a bound for a gather that copies windows rather than rows;
* ``copy to new arrays``: ``ndarray.copy`` of the same shapes (memcpy plus fresh pages);
* ``memcpy``: ``np.copyto`` into preallocated arrays of the same shapes (the reference).

Run::

    python benchmarks/bench_host_pipeline.py                   # 64 x 2000 steps, E = 256, 4096
    python benchmarks/bench_host_pipeline.py --num_envs 4096 --batches 50 --read_threads 1 2
    python benchmarks/bench_host_pipeline.py --no_retain        # glibc malloc defaults

No assertions: it prints a table (batches/s, GB/s, ratio to memcpy).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from trajopt_loader.configs import load_config
from trajopt_loader.pipeline import host_memory, make_dataset
from trajopt_loader.pipeline.stages import make_schedule
from trajopt_loader.store import TrajectoryStore, export_npz
from trajopt_loader.transforms import window_steps

ROWS = {"qpos": 61, "qvel": 54, "action": 20}  # Digit v3: nq, nv, nu


def write_store(tmp: Path, num_traj: int, length: int, seed: int = 0) -> TrajectoryStore:
    """Synthetic Digit-sized trajectories (float32) exported to ``tmp/digit.zarr``."""
    rng = np.random.default_rng(seed)
    root = tmp / "npz" / "walk"
    root.mkdir(parents=True)
    for i in range(num_traj):
        arrays = {k: rng.standard_normal((length, n), np.float32) for k, n in ROWS.items()}
        np.savez(root / f"traj_{i}.npz", dt=np.float64(0.01), **arrays)
    export_npz(tmp / "npz", tmp / "digit.zarr", source="digit", convention="mujoco", progress=False)
    return TrajectoryStore(tmp / "digit.zarr", cache_bytes=2**32)


def rate(fn, batches: int, repeats: int = 3, warmup: int = 3) -> float:
    """Batches per second of ``fn()``: best of ``repeats`` runs of ``batches`` calls (the machine
    may be shared; the best run is the least disturbed one)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(batches):
            fn()
        best = min(best, time.perf_counter() - t)
    return batches / best


def digit_config(num_envs: int, window: int, schedule: str, read_threads: int):
    return load_config(
        "digit_v3",
        {
            "num_envs": num_envs,
            "window_size": window,
            "schedule": schedule,
            "read_threads": read_threads,
            "host_prefetch": 2,
            # the raw window gather; references and cycle continuation
            # are measured by bench_references.py / bench_cycles.py
            "references.enabled": False,
            "cyclic": False,
        },
    )


def bench_baselines(store: TrajectoryStore, config, batches: int) -> list[tuple[str, float]]:
    """Batches per second of plain numpy producing the same bytes as ``config``'s batches."""
    num_envs, window = config.num_envs, config.window_size
    flats = {k: np.concatenate([store.read(t, k) for t in range(len(store.lengths))]) for k in ROWS}
    offsets = np.concatenate([[0], np.cumsum(store.lengths)[:-1]]).astype(np.int64)
    sched = make_schedule(config, store.lengths, store.select())
    indices = []
    for k in range(8):
        el = sched[k]
        steps, _ = window_steps(store.lengths[el["traj_id"]], el["start"], window, "clamp")
        indices.append(offsets[el["traj_id"]][:, None] + steps)
    rows = itertools.cycle(indices)
    # Block copies: a window that does not cross its trajectory's end is W contiguous rows.
    views = {
        k: as_strided(
            f,
            (f.shape[0] - window + 1, window * f.shape[1]),
            (f.strides[0], f.itemsize),
            writeable=False,
        )
        for k, f in flats.items()
    }
    last = next(iter(flats.values())).shape[0] - window  # (bound only: ignores the end)
    firsts = itertools.cycle([np.minimum(i[:, 0], last) for i in indices])
    src = {
        k: np.random.default_rng(1).standard_normal((num_envs, window, n), np.float32)
        for k, n in ROWS.items()
    }
    dst = {k: np.empty_like(v) for k, v in src.items()}
    return [
        (
            "numpy fancy-index gather (rows)",
            rate(lambda: {k: f[i] for i in [next(rows)] for k, f in flats.items()}, batches),
        ),
        (
            "numpy block gather (windows)",
            rate(lambda: {k: v[i] for i in [next(firsts)] for k, v in views.items()}, batches),
        ),
        (
            "copy to new arrays (ndarray.copy)",
            rate(lambda: {k: v.copy() for k, v in src.items()}, batches),
        ),
        (
            "memcpy (np.copyto, preallocated)",
            rate(lambda: [np.copyto(dst[k], src[k]) for k in ROWS], batches),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_traj", type=int, default=64)
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--num_envs", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--schedule", choices=["sequential", "random"], default="sequential")
    parser.add_argument("--read_threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--no_retain",
        action="store_true",
        help="leave glibc malloc at its defaults (make_dataset otherwise keeps "
        "freed batch memory; pipeline.host_memory)",
    )
    args = parser.parse_args()
    retain = not args.no_retain and host_memory.retain_freed_memory()  # all rows alike
    print(f"glibc malloc keeps freed memory: {retain}")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        store = write_store(Path(tmp), args.num_traj, args.length)
        store.warm(tuple(ROWS))
        print(
            f"store: {args.num_traj} x {args.length} steps, rows {ROWS} float32, written and "
            f"warmed in {time.perf_counter() - t:.1f} s; cache {store.cache_info()}"
        )
        print(
            f"{'E':>5} {'W':>3} {'MB/batch':>8}  {'method':<38} {'batch/s':>8} {'GB/s':>6} "
            f"{'x memcpy':>8}"
        )
        for num_envs in args.num_envs:
            mb = num_envs * args.window * sum(ROWS.values()) * 4 / 1e6
            rows = []
            for threads in args.read_threads:
                config = digit_config(num_envs, args.window, args.schedule, threads)
                it = iter(make_dataset(config, store, 0, 1, retain_freed_memory=retain))
                rows.append(
                    (
                        f"make_dataset ({args.schedule}, {threads} thr)",
                        rate(lambda it=it: next(it), args.batches),
                    )
                )
                del it
            rows += bench_baselines(store, config, args.batches)
            memcpy = rows[-1][1]
            for name, per_s in rows:
                print(
                    f"{num_envs:>5} {args.window:>3} {mb:>8.1f}  {name:<38} {per_s:>8.1f} "
                    f"{per_s * mb / 1e3:>6.2f} {per_s / memcpy:>8.2f}"
                )


if __name__ == "__main__":
    main()
