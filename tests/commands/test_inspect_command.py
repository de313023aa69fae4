"""``trajopt-loader inspect`` (trajopt_loader.commands.inspect) run as a subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", "inspect", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_inspect_cassie(cassie_store, shared_data):
    r = _cli(cassie_store, "--max-trajs", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert (
        lines[0]
        == f"store {cassie_store}: 24 trajectories, {2 * 1682 + 28 + 14 * 32 + 7 * 31} frames"
    )
    assert lines[1].startswith("cassie/  convention mujoco (quat wxyz, linear velocity world frame")
    assert lines[2].startswith("  agility_reference/  3 trajectories, length 28..1682, dt ")
    assert lines[3].split()[:4] == ["traj0", "traj_0.npz", "T=1682", "dt=0.000499999"]
    assert "aslip_walk/  21 trajectories, length 31..32" in r.stdout
    assert "    traj3    traj_3.npz" not in r.stdout and "... 18 more (not flagged)" in r.stdout
    assert "speed=0.2" in r.stdout
    assert "  qvel             (32,)      float64     3  " in r.stdout
    assert "flags: 8" in r.stdout
    assert "  cassie/agility_reference/traj1: qvel frozen: 1 distinct row of 1682" in r.stdout
    r = _cli(cassie_store, "--model", shared_data / "cassie" / "cassie.xml")
    assert r.returncode == 0, r.stderr
    assert "cassie/agility_reference/traj2: velocity: qvel is zero while qpos moves" in r.stdout
    assert "qvel vs dq/dt: r=0.9997 scale=0.9992" in r.stdout


@pytest.mark.slow
def test_inspect_errors(tmp_path):
    r = _cli(tmp_path / "missing.zarr")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("trajopt-loader inspect: error: no store at")
