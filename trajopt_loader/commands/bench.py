"""``trajopt-loader bench``: run the benchmark scripts of ``benchmarks/`` with their small defaults.

    trajopt-loader bench [--only device_overlap,...] [--list] [--benchmarks-dir DIR]

A thin wrapper: each ``benchmarks/bench_*.py`` runs in its own Python process (so each one starts
JAX fresh), one after the other, with its output passed through. ``benchmarks/`` ships with the
source tree (a clone), not with the installed package; point ``--benchmarks-dir`` at it otherwise.
Exits non-zero when a benchmark fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from absl import flags

from trajopt_loader.commands.common import define

FLAGS = flags.FLAGS
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
USAGE = "trajopt-loader bench [--only WORD,...] [--list] [--benchmarks-dir DIR]"
EXAMPLE = "trajopt-loader bench --only device_overlap"

define("list", "only", [], "Run only benchmarks whose name contains one of these words.")
define("bool", "list", False, "List the benchmarks and exit.")
define(
    "string",
    "benchmarks-dir",
    None,
    "Folder of bench_*.py scripts (default: the benchmarks/ folder of the source checkout).",
)


def find_benchmarks(directory: str | os.PathLike | None = None, only=()) -> list[Path]:
    """``bench_*.py`` scripts of ``directory`` (default: ``<clone>/benchmarks``), sorted by name,
    filtered to names containing one of ``only`` (all when empty).

    Raises:
      FileNotFoundError: the folder does not exist (the message says where it was looked for).
    """
    d = Path(directory) if directory else DEFAULT_DIR
    if not d.is_dir():
        where = f"at {directory}" if directory else "next to the installed package"
        raise FileNotFoundError(
            f"no benchmarks folder {where}: benchmarks/ ships with the source tree, not the "
            "installed package. Fix: run from a clone, or pass "
            "--benchmarks-dir=/path/to/benchmarks."
        )
    scripts = sorted(d.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(word in s.stem for word in only)]
    return scripts


def run_benchmarks(scripts, *, out=print) -> dict[str, int]:
    """Runs each script with ``sys.executable`` (output passed through).

    Returns:
      ``{name: exit code}``.
    """
    codes = {}
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    for script in scripts:
        out(f"== {script.stem} ==")
        sys.stdout.flush()
        t0 = time.perf_counter()
        codes[script.stem] = subprocess.run([sys.executable, str(script)], env=env).returncode
        out(f"== {script.stem}: exit {codes[script.stem]}, {time.perf_counter() - t0:.1f} s ==")
    return codes


def main(argv) -> None:
    """absl entry point of ``trajopt-loader bench``."""
    if len(argv) > 1:
        raise SystemExit(f"trajopt-loader bench takes no positional arguments, got {argv[1:]}")
    try:
        scripts = find_benchmarks(FLAGS["benchmarks-dir"].value, FLAGS.only)
    except FileNotFoundError as e:
        raise SystemExit(f"trajopt-loader bench: {e}") from None
    if not scripts:
        raise SystemExit(
            f"trajopt-loader bench: no bench_*.py matches --only={','.join(FLAGS.only)}"
        )
    if FLAGS.list:
        for s in scripts:
            print(s.stem)
        return
    codes = run_benchmarks(scripts)
    failed = [name for name, code in codes.items() if code]
    if failed:
        raise SystemExit(f"trajopt-loader bench: failed: {', '.join(failed)}")
