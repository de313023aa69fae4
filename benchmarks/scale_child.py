"""The measuring child of ``bench_scale.py``: open a store, time its first and steady batches,
and report the process's own peak RSS (one process per store, so the peak is that store's alone).

Run by ``bench_scale.py`` as ``bench_scale.py --child STORE ...`` (its flags are parsed there).
"""

from __future__ import annotations

import resource
import time

import numpy as np

#: The synthetic clips' keys and row sizes (float32): humanoid-sized qpos and qvel.
ROWS = {"qpos": 36, "qvel": 35}


def peak_rss() -> int:
    """Peak resident bytes of this process's own memory (Linux ``VmHWM``; ``ru_maxrss`` keeps
    the parent's peak at fork across ``exec``, e.g. an export run by the parent)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(store_path: str, args) -> dict:
    """Open, first batch and steady batches in this process (run in a child per size)."""
    from trajopt_loader.configs import load_config
    from trajopt_loader.pipeline import make_dataset
    from trajopt_loader.store import TrajectoryStore

    t0 = time.perf_counter()
    store = TrajectoryStore(store_path, cache_bytes=args.cache_bytes)
    t_open = time.perf_counter() - t0
    cfg = load_config()
    cfg.zarr_path, cfg.num_envs, cfg.window_size = store_path, args.envs, args.window
    cfg.schedule, cfg.dtype, cfg.cache_bytes = "random", "float32", args.cache_bytes
    cfg["keys"] = tuple(ROWS)
    cfg.read_threads, cfg.host_prefetch, cfg.cyclic = 1, 0, False
    rule = {}
    if args.working_set:
        cfg.working_set.enabled = True
        cfg.working_set.rotate_every = args.rotate_every
        if not args.rotate_every:  # the documented rule, from the in-memory run's measurements
            from trajopt_loader.pipeline.working_set import min_rotate_every, working_set_size

            ids = store.select()
            cfg.working_set.rotate_every = min_rotate_every(
                cfg, store, ids, args.load_rate, args.batch_s
            )
            rule = {
                "size": working_set_size(cfg, store, ids),
                "load_rate": args.load_rate,
                "batch_s": args.batch_s,
            }
        rule["rotate_every"] = cfg.working_set.rotate_every
    t0 = time.perf_counter()
    it = iter(make_dataset(cfg, store, 0, 1))
    next(it)
    t_first = time.perf_counter() - t0
    # working set: across at least two rotations (batches rotate_every and 2 * rotate_every)
    n = max(args.batches, 2 * rule["rotate_every"] + 10) if rule else args.batches
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - t0)
    t_steady = float(np.mean(times))
    if rule:  # batch k (k >= 1) is times[k - 1]; rotations at k = rotate_every, 2 rotate_every
        r = rule["rotate_every"]
        rule["median_s"] = float(np.median(times))
        rule["rotation_s"] = [times[k - 1] for k in range(r, n + 1, r)]
        slow = [t for t in times if t > 3 * rule["median_s"]]  # waits on a load, or noise
        rule["slow"] = (len(slow), float(sum(slow)))
        rule["batches"] = n
    rss = peak_rss()
    data = int(sum(store.lengths.sum() * n * 4 for n in ROWS.values()))
    batch = args.envs * args.window * sum(ROWS.values()) * 4
    return {
        "open": t_open,
        "first": t_first,
        "steady": t_steady,
        "rss": rss,
        "data": data,
        "batch": batch,
        "rule": rule,
    }
