"""Tests of ``trajopt-loader bench`` (trajopt_loader/commands/bench.py): discovery and running."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

from trajopt_loader.commands.bench import find_benchmarks, run_benchmarks


def test_finds_the_repository_benchmarks():
    names = [p.stem for p in find_benchmarks()]
    assert "bench_device_overlap" in names and names == sorted(names)
    assert [p.stem for p in find_benchmarks(only=["overlap"])] == ["bench_device_overlap"]


def test_runs_each_script_and_reports_exit_codes(tmp_path, capfd):
    (tmp_path / "bench_ok.py").write_text("print('ok', 6 * 7)\n")
    (tmp_path / "bench_fail.py").write_text("raise SystemExit(3)\n")
    (tmp_path / "helper.py").write_text("raise SystemExit('not a benchmark')\n")
    lines: list[str] = []
    codes = run_benchmarks(find_benchmarks(tmp_path), out=lines.append)
    assert codes == {"bench_fail": 3, "bench_ok": 0}
    assert "ok 42" in capfd.readouterr().out
    assert lines[-1].startswith("== bench_ok: exit 0, ")


def test_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="--benchmarks-dir"):
        find_benchmarks(tmp_path / "nope")


@pytest.mark.slow
def test_cli_list():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", "bench", "--list"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "bench_device_overlap" in proc.stdout.split()


@pytest.mark.slow
def test_host_pipeline_benchmark_runs_on_tiny_sizes():
    """The benchmark script keeps working as the pipeline's defaults change (not a timing test)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [
            sys.executable,
            str(find_benchmarks(only=("host_pipeline",))[0]),
            "--num_traj",
            "3",
            "--length",
            "80",
            "--num_envs",
            "8",
            "--window",
            "4",
            "--batches",
            "2",
            "--read_threads",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = re.compile(r"^\s+8\s+4\s+[\d.]+\s+(.+?)\s{2,}[\d.]+\s+[\d.]+\s+[\d.]+$")
    methods = [m.group(1) for m in map(row.match, proc.stdout.splitlines()) if m]
    assert methods[0] == "make_dataset (sequential, 1 thr)" and methods[-1].startswith("memcpy")


@pytest.mark.slow
def test_integrity_benchmark_runs_on_tiny_sizes():
    """bench_integrity.py keeps working (not a timing test): three rows, checked and not."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [
            sys.executable,
            str(find_benchmarks(only=("integrity",))[0]),
            "--num_traj",
            "3",
            "--length",
            "100",
            "--envs",
            "8",
            "--window",
            "4",
            "--batches",
            "2",
            "--repeats",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert [line[:30].strip() for line in lines[2:5]] == [
        "format 2: checksums",
        "format 1: presence checks",
        "format 1: no check (before)",
    ]
    assert lines[5].startswith("CRC-32C of every decoded chunk (0.2 MB): ")


def test_scale_benchmark_runs_on_tiny_sizes(tmp_path):
    """bench_scale keeps working (in-memory sizes and the working-set run); not a timing test."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [
            sys.executable,
            str(find_benchmarks(only=("scale",))[0]),
            "--clips",
            "12",
            "--frames",
            "30",
            "--big",
            "24",
            "--big_frames",
            "20",
            "--envs",
            "16",
            "--window",
            "4",
            "--batches",
            "2",
            "--dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split("|") for line in proc.stdout.splitlines() if "frames/s" in line]
    assert [r[0].split() for r in rows] == [["12", "/"], ["12", "."], ["24", "."], ["24", "."]]
    files_dirs = [[int(n.replace(",", "")) for n in r[2].split()] for r in rows[:3]]
    # files: root, source, motion zarr.json + 5 per clip; directories: source, motion + 7 per
    # clip with "/" chunk keys (traj, 2 x (key, c, c/0)), 3 with "." (traj, 2 x key)
    assert files_dirs == [
        [3 + 5 * 12, 2 + 7 * 12],
        [3 + 5 * 12, 2 + 3 * 12],
        [3 + 5 * 24, 2 + 3 * 24],
    ]
    assert "(working set)" in rows[3][-1] and "cache budget" in proc.stdout
    rule = next(line for line in proc.stdout.splitlines() if line.startswith("rotation rule"))
    r = int(rule.split("rotate_every ")[1].split()[0])  # from min_rotate_every, two rotations
    assert f"working set over {max(2, 2 * r + 10)} batches" in proc.stdout
