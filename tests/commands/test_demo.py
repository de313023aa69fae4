"""Tests of ``trajopt-loader demo`` (trajopt_loader/commands/demo.py) and the bundled sample."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from trajopt_loader.commands import demo

SHARED_CASSIE = REPO.parent / "shared" / "data" / "cassie"


def test_sample_is_an_unmodified_licensed_subset_under_1mb():
    files = sorted(
        p.relative_to(demo.SAMPLE).as_posix() for p in demo.SAMPLE.rglob("*") if p.is_file()
    )
    assert files == ["LICENSE", "README.md", "agility_reference/traj_2.npz"] + [
        f"aslip_walk/traj_{i}.npz" for i in range(6)
    ]
    assert sum(p.stat().st_size for p in demo.SAMPLE.rglob("*") if p.is_file()) < 2**20
    assert (demo.SAMPLE / "LICENSE").read_bytes() == (SHARED_CASSIE / "LICENSE").read_bytes()
    assert "osudrl/apex @ 82c44af" in (demo.SAMPLE / "README.md").read_text()
    for name in files[2:]:
        digest = [
            hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (demo.SAMPLE / name, SHARED_CASSIE / "trajopt" / name)
        ]
        assert digest[0] == digest[1], name


def test_run_demo_loss_falls_at_least_four_fold(tmp_path):
    lines: list[str] = []
    result = demo.run_demo(
        120, num_envs=16, window_size=12, log_every=40, workdir=tmp_path, out=lines.append
    )
    assert len(result["losses"]) == 120 and np.all(np.isfinite(result["losses"]))
    assert result["final_loss"] < result["initial_loss"] / 4
    assert list(tmp_path.iterdir()) == []  # the temporary store is removed
    frames = sum(len(np.load(p)["qpos"]) for p in demo.SAMPLE.rglob("*.npz"))
    assert f"7 trajectories, {frames} frames" in lines[0] and frames == 28 + 6 * 32
    dts = [float(np.load(demo.SAMPLE / "aslip_walk" / f"traj_{i}.npz")["dt"]) for i in range(6)]
    assert lines[1] == (
        f"streaming aslip_walk: 6 trajectories, dt {min(dts):.4g}-{max(dts):.4g} s "
        f"(a window of 12 steps is {12 * np.mean(dts):.2f} s)"
    )
    assert max(dts) / min(dts) < 1.01 and 0.034 < float(
        np.load(demo.SAMPLE / "agility_reference" / "traj_2.npz")["dt"]
    )  # left out: other rate
    logged = [int(m.group(1)) for m in map(re.compile(r"\s+step\s+(\d+)\s+loss").match, lines) if m]
    assert logged == [1, 40, 80, 120]


def test_stats_match_numpy_over_the_streamed_motion(tmp_path):
    from trajopt_loader.store import TrajectoryStore, export_npz

    export_npz(
        demo.SAMPLE,
        tmp_path / "s.zarr",
        source="cassie",
        convention="mujoco",
        allow_missing=("qvel", "action"),
        progress=False,
    )
    store = TrajectoryStore(str(tmp_path / "s.zarr"))
    stats = demo._sample_stats(store, store.select(motions=(demo.MOTION,)))
    qs = [np.load(demo.SAMPLE / "aslip_walk" / f"traj_{i}.npz")["qpos"] for i in range(6)]
    np.testing.assert_allclose(stats["q_mu"], np.concatenate(qs).mean(0), rtol=1e-12)
    dq = np.concatenate([np.diff(q, axis=0) for q in qs])
    np.testing.assert_allclose(stats["d_sd"], np.maximum(dq.std(0), 1e-3), rtol=1e-12)


@pytest.mark.slow
def test_cli_demo_runs_with_no_arguments():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, last = re.search(
        r"loss ([\d.]+) \(first 10 steps\) -> ([\d.]+) \(last 10\)", proc.stdout
    ).groups()
    assert float(last) < float(first) / 4
    assert re.search(r"300 steps in [\d.]+ s .*: [\d.]+ batches/s, \d+ env-steps/s", proc.stdout)
