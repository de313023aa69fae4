"""``trajopt-loader export`` (trajopt_loader.commands.export) run as a subprocess."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import revealing

from trajopt_loader.conventions import PINOCCHIO
from trajopt_loader.store import TrajectoryStore


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", "export", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_error_line(r, code=1):
    assert r.returncode == code, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("trajopt-loader export: error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.slow
def test_cassie_refused_without_qvel_then_exported(shared_data, tmp_path):
    out = tmp_path / "x.zarr"
    root = shared_data / "cassie" / "trajopt"
    r = _cli(root, out, "--source", "cassie", "--convention", "mujoco", "--noprogress")
    line = _one_error_line(r)
    assert "aslip_walk/traj_0.npz: key 'qvel': is missing" in line
    assert "--allow-missing qvel" in line and "--derive-qvel" in line
    assert not out.exists()
    r = _cli(
        root,
        out,
        "--source",
        "cassie",
        "--convention",
        "mujoco",
        "--allow-missing",
        "qvel",
        "--noprogress",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:4] == [
        f"exported 24 trajectories, {2 * 1682 + 28 + 14 * 32 + 7 * 31} frames "
        + r.stdout.split(" frames ")[1].splitlines()[0],
        "  source 'cassie' (convention mujoco)",
        "  cassie/agility_reference: 3 trajectories",
        "  cassie/aslip_walk: 21 trajectories",
    ]
    store = TrajectoryStore(out)
    assert [t.source_file for t in store.trajectories[3:]] == [f"traj_{i}.npz" for i in range(21)]
    r = _cli(
        root,
        out,
        "--source",
        "cassie",
        "--convention",
        "mujoco",
        "--motion",
        "agility_reference",
        "--noprogress",
    )
    assert "already exist" in _one_error_line(r) and "--overwrite" in r.stderr


@pytest.mark.slow
def test_options(tmp_path):
    src = tmp_path / "npz" / "walk"
    src.mkdir(parents=True)
    for i in range(3):
        np.savez(src / f"traj_{i}.npz", revealing(i, 5, 7), revealing(i, 5, 6, -1e4))
    out = tmp_path / "s.zarr"
    line = _one_error_line(_cli(tmp_path / "npz", out, "--source", "d", "--dt", "0.02"))
    assert "pass --convention mujoco|pinocchio" in line
    line = _one_error_line(
        _cli(
            tmp_path / "npz",
            out,
            "--source",
            "d",
            "--convention",
            "pinocchio",
            "--dt",
            "0.02",
            "--noprogress",
        )
    )
    assert "--key qpos=arr_0" in line
    line = _one_error_line(
        _cli(tmp_path / "npz", out, "--source", "d", "--convention", "mujoco", "--derive-qvel")
    )
    assert "need --model" in line
    r = _cli(
        tmp_path / "npz",
        out,
        "--source",
        "d",
        "--quat-order",
        "xyzw",
        "--lin-vel-frame",
        "body",
        "--ang-vel-frame",
        "body",
        "--key",
        "qpos=arr_0",
        "--key",
        "qvel=arr_1",
        "--dt",
        "0.02",
        "--max-trajs-per-motion",
        "2",
        "--noprogress",
    )
    assert r.returncode == 0, r.stderr
    store = TrajectoryStore(out)
    assert store.convention("d") == PINOCCHIO and store.lengths.tolist() == [5, 5]
    assert store.trajectories[1].dt == 0.02
    assert np.array_equal(store.read(1, "qvel"), revealing(1, 5, 6, -1e4))
    r = _cli(
        tmp_path / "npz",
        out,
        "--source",
        "d",
        "--convention",
        "pinocchio",
        "--key",
        "qpos=arr_0",
        "--key",
        "qvel=arr_1",
        "--dt",
        "0.02",
        "--overwrite",
        "--chunk-key-separator",
        ".",
        "--noprogress",
    )
    assert r.returncode == 0 and "(replaced)" in r.stdout
    store = TrajectoryStore(out)
    assert store.lengths.tolist() == [5, 5, 5]
    assert (out / "d/walk/traj2/qvel/c.0.0").is_file() and not (
        out / "d/walk/traj2/qvel/c"
    ).exists()
    store.warm(("qvel",))  # the bulk first touch reads the c.0.0 files
    assert np.array_equal(store.read(2, "qvel"), revealing(2, 5, 6, -1e4))
