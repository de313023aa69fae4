"""Host cost per batch of failure-adaptive window starts, next to the plain gather of the batch.

For Digit-sized rows (qpos 61, qvel 54, action 20, float32) in a synthetic store of 64
trajectories x 2000 steps at dt 0.01 s (1 s bins: 20 per trajectory, 1280 bins), ``E`` envs,
window 32, it times per batch, in one run:

* ``gather``: window indices + ``GatherKeys`` of the three keys for a plain random schedule
  element (what every batch costs without adaptive sampling), warm cache;
* ``uniform draw``: the plain random schedule element (``RandomSchedule[k]``);
* ``adaptive draw + report``: the adaptive schedule element (new statistics every batch: the
  start distribution and its cdf are recomputed) plus ``report`` of the batch with ~5% of the
  envs failed (bincount and EMA fold), single process;
* ``weighted draw``: static ``motion_weights`` only (one bin per trajectory).

Run::

    python benchmarks/bench_adaptive.py                      # E = 4096
    python benchmarks/bench_adaptive.py --num_envs 256 4096 --batches 50

No assertions: it prints ms per batch and the ratio to the gather (goal: adaptive <= 1.5x).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_host_pipeline import rate, write_store

from trajopt_loader.configs import load_config
from trajopt_loader.pipeline.stages import make_schedule
from trajopt_loader.transforms.gather import GatherKeys
from trajopt_loader.transforms.windows import WindowIndices


def config_of(store, num_envs: int, **overrides):
    return load_config(
        "default",
        {
            "zarr_path": str(store.path),
            "num_envs": num_envs,
            "window_size": 32,
            "schedule": "random",
            "cyclic": False,
            "keys": ("qpos", "qvel", "action"),
            **overrides,
        },
    )


def bench(store, num_envs: int, batches: int) -> list[tuple[str, float]]:
    eligible = store.select()
    plain = make_schedule(config_of(store, num_envs), store.lengths, eligible, 0, 1, store)
    adaptive = make_schedule(
        config_of(store, num_envs, **{"adaptive.enabled": True}),
        store.lengths,
        eligible,
        0,
        1,
        store,
    )
    weighted = make_schedule(
        config_of(store, num_envs, motion_weights={"walk": 2.0}),
        store.lengths,
        eligible,
        0,
        1,
        store,
    )
    window = WindowIndices(store.lengths, 32, "wrap")
    gather = GatherKeys(store, ("qpos", "qvel", "action"), "float32", traj_ids=eligible)
    counter = {"plain": 0, "gather": 0, "adaptive": 0, "weighted": 0}

    def step(name, fn):
        def call():
            k = counter[name]
            counter[name] += 1
            return fn(k)

        return call

    feedback = adaptive.sampler
    fail = np.random.default_rng(0).random(num_envs) < 0.05
    fail_step = np.random.default_rng(1).integers(0, 32, num_envs)

    def adaptive_step(k):
        element = adaptive[k]
        feedback.report(k, fail, fail_step, k + 1)
        return element

    rows = [
        (
            "gather (window indices + GatherKeys)",
            rate(step("gather", lambda k: gather.map(window.map(plain[k]))), batches),
        ),
        ("uniform draw (RandomSchedule[k])", rate(step("plain", plain.__getitem__), batches)),
        ("adaptive draw + report", rate(step("adaptive", adaptive_step), batches)),
        ("weighted draw (motion_weights)", rate(step("weighted", weighted.__getitem__), batches)),
    ]
    return [(name, 1e3 / r) for name, r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_envs", type=int, nargs="+", default=[4096])
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(Path(tmp), 64, 2000)
        for num_envs in args.num_envs:
            rows = bench(store, num_envs, args.batches)
            base = rows[0][1]
            print(f"\nE = {num_envs}, W = 32, 64 x 2000 steps, {base:.2f} ms gather per batch")
            print(f"{'method':40s} {'ms/batch':>9s} {'x gather':>9s}")
            for name, ms in rows:
                print(f"{name:40s} {ms:9.3f} {ms / base:9.3f}")


if __name__ == "__main__":
    main()
