"""Two real JAX processes on 127.0.0.1 each report the failures of their env shard
(tests/multihost_feedback_worker.py): both hold the same statistics after every report, equal to
those of one process reporting all envs, and both stream the single-process batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trajopt_loader.configs import load_config
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.store import TrajectoryStore, export_npz

REPO = Path(__file__).resolve().parents[2]
N = 10
CONFIG = {
    "num_envs": 8,
    "window_size": 4,
    "schedule": "random",
    "cyclic": False,
    "keys": ["qpos"],
    "adaptive.enabled": True,
    "adaptive.lag": 4,
    "adaptive.bin_s": 0.1,
    "adaptive.ema_rate": 0.5,
    "adaptive.report_timeout_s": 30.0,
}


@pytest.mark.slow
def test_processes_report_their_shards_and_share_the_statistics(tmp_path):
    from conftest import _make_npz_tree
    from test_multihost import _free_port

    sys.path.insert(0, str(REPO / "tests"))
    from multihost_feedback_worker import failures

    _make_npz_tree(tmp_path / "npz", {"walk": [40, 60, 50]})
    store = tmp_path / "s.zarr"
    export_npz(tmp_path / "npz", store, source="toy", convention="mujoco", progress=False)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    env.pop("XLA_FLAGS", None)
    args = [str(_free_port()), str(store), str(tmp_path), json.dumps(CONFIG), str(N)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "multihost_feedback_worker.py"), str(i), *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        logs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, p in enumerate(procs):
        assert p.returncode == 0 and f"WORKER-OK {i}" in logs[i], logs[i][-4000:]
    got = [np.load(tmp_path / f"p{i}.npz") for i in range(2)]
    # the oracle: one process reporting every env with the same rule
    config = load_config("default", {"zarr_path": str(store), **CONFIG})
    ds = make_dataset(config, TrajectoryStore(store), 0, 1)
    it = iter(ds)
    stats = []
    for k in range(N):
        batch = next(it)
        for p in range(2):
            np.testing.assert_array_equal(got[p]["traj_id"][k], batch["traj_id"])
            np.testing.assert_array_equal(got[p]["start"][k], batch["start"])
        it.report_failures(*failures(batch["traj_id"], batch["start"]))
        stats.append(ds.feedback.statistics())
    for p in range(2):
        assert got[p]["stats"].tobytes() == np.stack(stats).tobytes()  # bit-identical
    assert np.stack(stats)[-1].sum() > 0  # failures were seen and folded
