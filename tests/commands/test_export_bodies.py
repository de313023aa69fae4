"""``trajopt-loader export --model M.xml --bodies NAMES`` writes the body keys and the layout."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np

from trajopt_loader.store import TrajectoryStore


def test_cli_bodies(shared_data, tmp_path):
    root = tmp_path / "src" / "walk"
    root.mkdir(parents=True)
    shutil.copy(shared_data / "cassie/trajopt/agility_reference/traj_2.npz", root)
    out = tmp_path / "s.zarr"
    args = [
        root.parent,
        out,
        "--source",
        "cassie",
        "--convention",
        "mujoco",
        "--noprogress",
        "--bodies",
        "left-foot,cassie-pelvis",
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", "export", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "--bodies need --model" in bad.stderr
    args += ["--model", shared_data / "cassie/cassie.xml"]
    done = subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", "export", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    store = TrajectoryStore(out)
    info = store.trajectories[0]
    assert info.derived["body_names"] == ["left-foot", "cassie-pelvis"]
    assert info.derived["body_quat_order"] == "wxyz"
    assert store.model_layout("cassie")["nq"] == 35
    qpos = store.read(0, "qpos")
    np.testing.assert_array_equal(store.read(0, "body_pos")[:, 1], qpos[:, 0:3])  # pelvis = base
    np.testing.assert_allclose(store.read(0, "body_quat")[:, 1], qpos[:, 3:7], atol=1e-12)
    assert store.read(0, "body_lin_vel").shape == (info.length, 2, 3)
