"""Seed API ``VectorizedTrajectoryDataset.fetch_window``: one vectorized gather vs Python loops.

    python benchmarks/bench_fetch_window.py [--envs 4096] [--window 32] [--repeats 10]

Writes a synthetic Digit-sized store (16 trajectories x 2000 steps, ``qpos`` [T, 61] and ``qvel``
[T, 54] float64, as Digit v3's nq / nv) with ``TrajoptLoader``, assigns every env a random
trajectory and start step, and times reading ``qpos`` windows ``[envs, window, 61]``:

* ``fetch_window``: the seed-API call (cursor wrap + one ``TrajectoryStore.gather``);
* ``tight loop``: per env, per step, a row copy from the *same* decoded host cache array (the best
  a Python loop can do: no checks, no per-env buffers);
* ``seed-style loop``: the predecessor's access pattern (per window step, per env: assignment
  check, wrap, row read from the same cache; ``np.stack`` per step, then over steps);
* ``seed algorithm``: the predecessor's ``fetch_window`` itself (per-env buffers of
  ``buffer_size`` rows, refilled from the same cache instead of zarr; see ``_SeedAlgorithm``);

with the default budget (``buffer_size`` 128: the dataset is held whole) for float64 rows and for
float32 rows (what the seed exported), and with ``buffer_size`` 1 (a budget below the chunks the
envs touch: LRU of time-chunks, re-decoded on every read). Results are checked equal before timing;
times are the best of ``--repeats`` calls (the loops: of ``repeats // 5``).
``fetch_window`` is a memory-bound copy (``np.take``); the loops pay ~1 us of Python per row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from trajopt_loader import TrajoptLoader, VectorizedTrajectoryDataset

N_TRAJ, LENGTH, NQ, NV = 16, 2000, 61, 54


def _time(fn, repeats: int) -> float:
    """Best of ``repeats`` calls (s), after one warm-up call: the least disturbed by other load."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(min(times))


def _write(root: Path, dtype) -> None:
    (root / "digit_v3").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(N_TRAJ):
        qpos = np.cumsum(rng.normal(0, 0.01, (LENGTH, NQ)), axis=0).astype(dtype)
        np.savez(
            root / "digit_v3" / f"traj_{i}.npz",
            qpos=qpos,
            qvel=rng.normal(0, 1, (LENGTH, NV)).astype(dtype),
            dt=np.float64(0.01),
        )


class _SeedAlgorithm:
    """The predecessor's ``fetch_window`` (per window step: per env, wrap, a per-env buffer of
    ``buffer_size`` rows refilled around the step on a miss, ``np.stack``), reading the same decoded
    cache array instead of zarr; buffers persist across calls, so repeated windows are buffer
    hits."""

    def __init__(self, flat, offsets, lengths, traj_ids, steps, buffer_size: int):
        self.flat, self.offsets, self.lengths = flat, offsets, lengths
        self.traj_ids, self.steps, self.buffer_size = traj_ids, steps, buffer_size
        self.buffers = [{} for _ in range(len(steps))]
        self.window_starts = np.zeros(len(steps), np.int64)

    def fetch(self, envs, key="qpos"):
        rows = []
        for e in envs:
            tid = self.traj_ids[e]
            if tid == -1:
                raise ValueError(f"No trajectory assigned to env {e}")
            step, n = self.steps[e], self.lengths[tid]
            if step < 0 or step >= n:
                step = self.steps[e] = step % n
            start, buf = self.window_starts[e], self.buffers[e].get(key)
            if buf is None or not start <= step < start + len(buf):
                start = max(0, step - self.buffer_size // 2)
                stop = min(start + self.buffer_size, n)
                off = self.offsets[tid]
                buf = self.buffers[e][key] = self.flat[off + start : off + stop]
                self.window_starts[e] = start
            rows.append(buf[step - start])
        return np.stack(rows)

    def fetch_window(self, envs, w: int):
        original = self.steps.copy()
        per_t = []
        for k in range(w):
            for e in envs:  # the seed set each env's temporary cursor in a Python loop
                self.steps[e] = (original[e] + k) % self.lengths[self.traj_ids[e]]
            per_t.append(self.fetch(envs))
        self.steps[:] = original
        return np.moveaxis(np.stack(per_t), 0, 1)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--envs", type=int, default=4096)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    n_env, w = args.envs, args.window
    results = {}
    rng = np.random.default_rng(1)
    traj = rng.integers(0, N_TRAJ, n_env)
    start = rng.integers(0, LENGTH, n_env)
    envs = range(n_env)
    for dtype, buffer_size in (("float64", 128), ("float32", 128), ("float64", 1)):
        with tempfile.TemporaryDirectory() as tmp:
            _write(Path(tmp) / "npz", dtype)
            path = TrajoptLoader(Path(tmp) / "npz").save(out_dir=tmp, motion="digit_v3")
            ds = VectorizedTrajectoryDataset(
                path, n_env, {"window_size": w, "buffer_size": buffer_size, "allow_wrap": True}
            )
            ds.update_references(
                env_to_traj=dict(enumerate(traj.tolist())),
                env_to_step=dict(enumerate(start.tolist())),
            )

            def vec(ds=ds):
                return ds.fetch_window(envs, "qpos", w)

            ref = vec()
            mode = "whole" if ds.store.cache_info()["whole_keys"] else "chunk LRU"
            size = N_TRAJ * LENGTH * (NQ + NV) * np.dtype(dtype).itemsize / 2**20
            print(
                f"{dtype} rows, buffer_size={buffer_size}: cache budget "
                f"{ds.cache_bytes / 2**20:.1f} MiB ({mode}); dataset {size:.1f} MiB"
            )
            t_vec = _time(vec, args.repeats)
            line = {"fetch_window": t_vec}
            if mode == "whole":
                flats, offsets = ds.store.cache.whole("qpos")
                flat, lengths = flats[0], ds.traj_lengths

                def tight(flat=flat, offsets=offsets, lengths=lengths):
                    out = np.empty((n_env, w, NQ), flat.dtype)
                    for e in range(n_env):
                        off, n, s = offsets[traj[e]], lengths[traj[e]], start[e]
                        for k in range(w):
                            out[e, k] = flat[off + (s + k) % n]
                    return out

                def seed_style(ds=ds, flat=flat, offsets=offsets):
                    per_t = []
                    for k in range(w):
                        rows = []
                        for e in range(n_env):
                            tid = ds.env_traj_ids[e]
                            if tid == -1:
                                raise ValueError(f"no trajectory assigned to env {e}")
                            n = ds.traj_lengths[tid]
                            rows.append(flat[offsets[tid] + (ds.env_steps[e] + k) % n])
                        per_t.append(np.stack(rows))
                    return np.moveaxis(np.stack(per_t), 0, 1)

                seed = _SeedAlgorithm(
                    flat, offsets, lengths, ds.env_traj_ids, ds.env_steps, buffer_size
                )
                for name, fn in (
                    ("tight loop", tight),
                    ("seed-style loop", seed_style),
                    ("seed algorithm", lambda seed=seed: seed.fetch_window(envs, w)),
                ):
                    np.testing.assert_array_equal(fn(), ref)
                    line[name] = _time(fn, max(1, args.repeats // 5))
            for name, t in line.items():
                speed = (
                    f"  ({t / t_vec:5.1f}x slower than fetch_window)"
                    if name != "fetch_window"
                    else ""
                )
                print(f"  {name:16s} {t * 1e3:9.2f} ms  [{n_env}, {w}, {NQ}]{speed}")
            results[(dtype, buffer_size)] = line
    return results


if __name__ == "__main__":
    main()
