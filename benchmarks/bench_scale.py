"""Scale benchmark: export, open, first batch and steady batches of many small clips.

    python benchmarks/bench_scale.py                          # 100, 1000, 15000 clips
    python benchmarks/bench_scale.py --clips 100 1000 15000 --big 150000 --big_frames 100
    python benchmarks/bench_scale.py --clips --big 30000 --big_frames 100 --dir /tmp/scale-work
    python benchmarks/bench_scale.py --clips 20 --frames 40 --envs 64 --window 4   # smoke

Synthetic clips (``--frames`` frames each, qpos 36 + qvel 35 float32, like AMASS-sized humanoid
libraries) are written as ``.npz`` files and exported with ``export_npz``, once per chunk key
separator of ``--separators`` (``"/"``: zarr's default ``qpos/c/0/0``; ``"."``: ``qpos/c.0.0``,
no directories below an array), one after the other from the same files; then, in a fresh
process per size (``scale_child.py``, so peak RSS is that size's alone), the store is opened, the
first batch of the ``random`` schedule (``--envs`` x ``--window``) is gathered (it decodes every
clip's keys into the host cache) and ``--batches`` steady batches are timed. ``--big`` runs one
more size with a cache budget of a quarter of its data in working-set mode
(``working_set.enabled``) and compares its steady batch to the in-memory one (on the last
separator's store), over at least two rotations, with ``working_set.rotate_every`` from the
rotation rule (``min_rotate_every``: the in-memory run's first-touch rate and batch time;
printed) unless ``--rotate_every`` names one; it prints the batches at the rotations and the slow
ones (waits on a load). ``--dir`` keeps the exported stores for later runs. After an export the
files are written to disk (``os.sync``, timed and printed) before the child reads them, which
then come from the page cache (as for a store written earlier on the same host); a store whose
pages were evicted reads from the disk. No assertions: it prints a table.

The export's kernel time depends on the file system's state: on ext4 without a journal (the
benchmark machine) an export started within minutes of deleting many files (e.g. an earlier
run's stores) skips the freed inodes one by one (``recently_deleted`` in a kernel profile) and ran
up to ~2x slower; a full page cache adds reclaim. Compare separators within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scale_child import ROWS, measure

#: store name suffix of each chunk key separator (export option ``chunk_key_separator``)
SUFFIX = {"/": "", ".": "-dot"}


def write_clips(root: Path, clips: int, frames: int, seed: int = 0) -> None:
    """``clips`` synthetic ``.npz`` files under ``root/<motion>/`` (100 clips per motion)."""
    rng = np.random.default_rng(seed)
    block = {k: rng.standard_normal((frames * 8, n)).astype(np.float32) for k, n in ROWS.items()}
    for i in range(clips):
        d = root / f"m{i // 100:05d}"
        d.mkdir(parents=True, exist_ok=True)
        o = (i * 7) % (frames * 7)  # distinct rows per clip without generating them all
        np.savez(
            d / f"c{i % 100:03d}.npz",
            dt=np.float64(1 / 30),
            **{k: b[o : o + frames] for k, b in block.items()},
        )


def run_size(
    tmp: Path,
    clips: int,
    frames: int,
    args,
    working_set: bool = False,
    cache_fraction: float = 1.0,
    rule_inputs: tuple[float, float] | None = None,
    separator: str = "/",
) -> dict:
    from trajopt_loader.store import export_npz

    npz, name = tmp / f"npz{clips}", f"{clips}{SUFFIX[separator]}"
    out = tmp / f"s{name}.zarr"
    if not out.exists():
        if not npz.exists():
            write_clips(npz, clips, frames)
        os.sync()  # the .npz files (and earlier stores) are on disk before the export is timed
        t0 = time.perf_counter()
        s = export_npz(
            npz,
            out,
            source="synth",
            dt=1 / 30,
            progress=False,
            convention="mujoco",
            chunk_key_separator=separator,
        )
        export = time.perf_counter() - t0
        t0 = time.perf_counter()  # the export's files reach the disk before reads are timed:
        os.sync()  # reads right after it compete with its writeback (2-4 x slower first batch)
        sync = time.perf_counter() - t0
        files, dirs = 0, 0
        for _, d, f in os.walk(out):
            files, dirs = files + len(f), dirs + len(d)
        export_info = {
            "export": export,
            "sync": sync,
            "frames": s.frames,
            "files": files,
            "dirs": dirs,
        }
        (tmp / f"export{name}.json").write_text(json.dumps(export_info))
    export_info = json.loads((tmp / f"export{name}.json").read_text())
    data = clips * frames * sum(ROWS.values()) * 4
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(out),
        "--envs",
        str(args.envs),
        "--window",
        str(args.window),
        "--batches",
        str(args.batches),
        "--cache_bytes",
        str(int(data * cache_fraction) if cache_fraction < 1 else 2**40),
        "--rotate_every",
        str(args.rotate_every),
        "--load_rate",
        str(rule_inputs[0] if rule_inputs else 0),
        "--batch_s",
        str(rule_inputs[1] if rule_inputs else 0),
    ] + (["--working_set"] if working_set else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
    if proc.returncode:
        raise SystemExit(f"size {clips} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return dict(export_info, clips=clips, separator=separator, **result)


def row(r: dict) -> str:
    return (
        f"{r['clips']:>8,} {r['separator']:>3} | {r['export']:7.1f} s "
        f"({r['frames'] / r['export'] / 1e3:6.0f}k frames/s, sync {r.get('sync', 0):.1f} s) | "
        f"{r['files']:>8,} {r['dirs']:>8,} | "
        f"{r['open'] * 1e3:7.0f} ms | {r['first']:6.2f} s | "
        f"{r['steady'] * 1e3:7.1f} ms | {r['rss'] / 2**20:7.0f} MiB "
        f"({r['rss'] / (r['data'] + r['batch']):.2f} x data+batch)"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, nargs="*", default=[100, 1000, 15000])
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--big", type=int, default=0, help="clips of the working-set run (0: none)")
    p.add_argument("--big_frames", type=int, default=400)
    p.add_argument("--envs", type=int, default=4096)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument(
        "--rotate_every",
        type=int,
        default=0,
        help="working-set rotation (0: min_rotate_every from the in-memory run's rates)",
    )
    p.add_argument(
        "--separators",
        nargs="+",
        default=["/", "."],
        choices=list(SUFFIX),
        help="chunk key separators exported per size (--big: the last one)",
    )
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument(
        "--dir", default=None, help="work directory, kept (default: a temporary one, removed)"
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cache_bytes", type=int, default=2**40, help=argparse.SUPPRESS)
    p.add_argument("--working_set", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--load_rate", type=float, default=0, help=argparse.SUPPRESS)
    p.add_argument("--batch_s", type=float, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return
    if args.dir:  # kept: stores are exported once and reused by later runs
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(args.dir) if args.dir else tempfile.TemporaryDirectory() as tmp:
        print(
            "   clips sep | export                          |    files     dirs |    open | "
            "first  |  steady | peak RSS"
        )
        for clips in args.clips:
            for sep in args.separators:  # side by side: the same .npz files, one after the other
                print(row(run_size(Path(tmp), clips, args.frames, args, separator=sep)), flush=True)
        if args.big:
            sep = args.separators[-1]
            full = run_size(Path(tmp), args.big, args.big_frames, args, separator=sep)
            print(row(full), "(in memory)", flush=True)
            # the rule's inputs: first-touch rate (bytes of the keys / first batch) and batch time
            inputs = (full["data"] / full["first"], full["steady"])
            ws = run_size(
                Path(tmp),
                args.big,
                args.big_frames,
                args,
                working_set=True,
                cache_fraction=0.25,
                rule_inputs=inputs,
                separator=sep,
            )
            print(row(ws), "(working set)")
            rule = ws["rule"]
            if "size" in rule:
                print(
                    f"rotation rule: sets of {rule['size']:,} trajectories, first-touch rate "
                    f"{rule['load_rate'] / 2**20:.0f} MiB/s, in-memory batch "
                    f"{rule['batch_s'] * 1e3:.1f} ms, margin 2 -> rotate_every "
                    f"{rule['rotate_every']} ({rule['size'] / rule['rotate_every']:.1f} "
                    "trajectories loaded per batch)"
                )
            print(
                f"working set over {rule['batches']} batches: median {rule['median_s'] * 1e3:.1f}"
                " ms; batches at rotations (k = rotate_every, 2 rotate_every, ...): "
                + ", ".join(f"{t * 1e3:.1f} ms" for t in rule["rotation_s"])
                + f"; {rule['slow'][0]} batches over 3 x the median, {rule['slow'][1]:.2f} s"
            )
            print(
                f"cache budget {ws['data'] / 4 / 2**30:.2f} GiB vs data {ws['data'] / 2**30:.2f}"
                f" GiB; steady batch working set {ws['steady'] * 1e3:.1f} ms vs in-memory "
                f"{full['steady'] * 1e3:.1f} ms ({ws['steady'] / full['steady']:.2f} x)"
            )


if __name__ == "__main__":
    main()
