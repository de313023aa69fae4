"""Cost of the read-integrity checks (chunk checksums, presence checks), next to the same runs
without them, in one run on the same data.

Synthetic Digit-sized trajectories (qpos 61, qvel 54, action 20 float32 columns; random values)
are exported twice to a temporary directory:

* **checked** (format 2, what ``export_npz`` writes): Blosc + zarr's ``crc32c`` codec, every chunk
  written, and the CRC-32C of each decoded chunk in the index; reads verify it.
* **unchecked** (format 1, what ``export_npz`` wrote before): Blosc only, no checksums. Read twice:
  with format 1's presence check of each loaded chunk, and through a plain zarr slice read with
  no check at all (the reader before the checks existed).

Measured: export throughput (MB/s of input arrays), whole-key load of every key into a fresh
host cache (``warm``), and the 4096-env x 32-step host batch (all keys, float32) from a warm
whole-key cache and from a chunk LRU whose budget holds ~1/4 of the data (so batches keep
loading, checking and evicting chunks).

    python benchmarks/bench_integrity.py                  # 48 trajectories x 4000 steps
    python benchmarks/bench_integrity.py --num_traj 4 --length 300 --envs 64 --repeats 2

No assertions: prints one table (best of ``--repeats``, the three readers interleaved; compare
rows of the same run) and the time of the CRC pass alone over all decoded chunks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from trajopt_loader.store import TrajectoryStore, export_npz, export_write, layout
from trajopt_loader.store.integrity import chunk_crcs

ROWS = {"qpos": 61, "qvel": 54, "action": 20}  # Digit v3: nq, nv, nu


def _write_traj_format_1(group, name, t, chunk_key_separator="/"):
    """``export_write.write_traj`` as format 1 wrote it: Blosc only, no checksums, zero chunks
    skipped, zarr's default chunk keys (through zarr: no node metadata or byte count returned)."""
    entry = {
        "name": name,
        "length": t.length,
        "dt": t.dt,
        "source_file": t.source_file,
        "rows_in_file": t.rows_in_file,
        "keys": {},
        "derived": t.derived,
        "padded": t.padded,
        "scalars": t.scalars,
    }
    for key, a in t.arrays.items():
        entry["keys"][key] = {
            "shape": list(a.shape[1:]),
            "dtype": str(a.dtype),
            "chunk_rows": layout.chunk_rows(a.shape[1:], a.dtype, t.length),
        }
    tg = group.create_group(name, attributes=entry)
    for key, a in t.arrays.items():
        tg.create_array(
            key,
            shape=a.shape,
            dtype=a.dtype,
            chunks=(entry["keys"][key]["chunk_rows"], *a.shape[1:]),
            compressors=BloscCodec(**layout.BLOSC),
        )[...] = a
    return entry, None, None


def _export(npz: Path, out: Path, checked: bool) -> float:
    t0 = time.perf_counter()
    if checked:
        export_npz(npz, out, source="digit", convention="mujoco", progress=False)
    else:
        with (
            mock.patch.object(export_write, "write_traj", _write_traj_format_1),
            mock.patch.object(layout, "FORMAT_VERSION", 1),
        ):
            export_npz(npz, out, source="digit", convention="mujoco", progress=False)
    return time.perf_counter() - t0


def _open(out: Path, mode: str, budget: int) -> TrajectoryStore:
    store = TrajectoryStore(out, cache_bytes=budget, cache_dtype="float32")
    if mode == "no check":  # the reader before the checks: a plain zarr slice read
        store._read_rows = lambda t, k, a, b: np.asarray(store._array(t, k)[a:b])
    return store


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--num_traj", type=int, default=48)
    p.add_argument("--length", type=int, default=4000)
    p.add_argument("--envs", type=int, default=4096)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "npz" / "walk").mkdir(parents=True)
        for i in range(args.num_traj):
            arrays = {k: rng.standard_normal((args.length, n), np.float32) for k, n in ROWS.items()}
            np.savez(tmp / "npz" / "walk" / f"traj_{i}.npz", dt=np.float64(0.01), **arrays)
        raw = args.num_traj * args.length * sum(ROWS.values()) * 4
        stores, export_s = {}, {"checked": [], "unchecked": []}
        for r in range(args.repeats):  # interleaved: a noisy machine disturbs both alike
            for name in export_s:
                stores[name] = tmp / f"{name}{r}.zarr"
                export_s[name].append(_export(tmp / "npz", stores[name], name == "checked"))
        assert (
            zarr.open_group(str(stores["unchecked"]), mode="r").attrs[layout.INDEX_KEY][
                "format_version"
            ]
            == 1
        )
        modes = {
            "format 2: checksums": ("checked", "checked"),
            "format 1: presence checks": ("unchecked", "presence"),
            "format 1: no check (before)": ("unchecked", "no check"),
        }
        ids = rng.integers(0, args.num_traj, args.envs)
        starts = rng.integers(0, args.length - args.window, (args.batches, args.envs))

        def batches(store):
            for s in starts:
                steps = s[:, None] + np.arange(args.window)
                for key in ROWS:
                    store.gather(key, ids, steps)

        whole = {m: _open(stores[w], mode, 2**34) for m, (w, mode) in modes.items()}
        lru = {m: _open(stores[w], mode, raw // 4) for m, (w, mode) in modes.items()}
        for m in modes:
            whole[m].warm(tuple(ROWS))
            batches(lru[m])  # fill the LRU once
        times = {m: {"load": [], "whole": [], "lru": []} for m in modes}
        for _ in range(args.repeats):
            for m, (w, mode) in modes.items():
                t = times[m]
                t["load"].append(
                    _best(lambda w=w, mode=mode: _open(stores[w], mode, 2**34).warm(tuple(ROWS)), 1)
                )
                t["whole"].append(_best(lambda s=whole[m]: batches(s), 1) / args.batches)
                t["lru"].append(_best(lambda s=lru[m]: batches(s), 1) / args.batches)
        store = TrajectoryStore(stores["checked"])
        decoded = [
            (store.read(i, k), store.info(i).chunk_rows[k])
            for i in range(args.num_traj)
            for k in ROWS
        ]
        crc_s = _best(lambda: [chunk_crcs(a, n) for a, n in decoded], args.repeats)
        print(
            f"{args.num_traj} trajectories x {args.length} steps, {raw / 1e6:.1f} MB raw "
            f"float32; batch [{args.envs}, {args.window}] of {', '.join(ROWS)}; best of "
            f"{args.repeats}, interleaved"
        )
        print(
            f"{'reader':<30} {'export MB/s':>11} {'whole load ms':>13} "
            f"{'batch ms (whole)':>16} {'batch ms (LRU)':>14}"
        )
        for m, (w, _) in modes.items():
            t = times[m]
            print(
                f"{m:<30} {raw / 1e6 / min(export_s[w]):>11.1f} {min(t['load']) * 1e3:>13.1f} "
                f"{min(t['whole']) * 1e3:>16.2f} {min(t['lru']) * 1e3:>14.2f}"
            )
        print(f"CRC-32C of every decoded chunk ({raw / 1e6:.1f} MB): {crc_s * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
