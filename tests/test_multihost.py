"""Two real JAX processes (2 CPU devices each) stream one global batch: tests/multihost_worker.py.

The parent test computes the single-process batches of the same config and seed; the workers write
what they saw to ``.npz`` files. Checked: (a) each process read only its env rows (its local batch
and every ``store.gather`` call), (b) the global arrays equal the single-process batches, (c) a
per-process checkpoint restored into a fresh pipeline continues with identical batches, and the
saved 2-process state also resumes a 1-process pipeline.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from trajopt_loader.configs import load_config
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.pipeline.process_state import restore_process_state
from trajopt_loader.store import TrajectoryStore, export_npz

pytestmark = pytest.mark.slow  # real subprocesses

LENGTHS = [7, 12, 9, 15, 6, 10]  # traj i: qpos[t, j] = 100 i + t + j / 100
N, SAVE_AT, E = 6, 2, 8
CONFIGS = {  # cyclic off: the revealing values have no unit base quaternion at qpos[3:7]
    "seq": {
        "num_envs": E,
        "window_size": 4,
        "allow_wrap": False,
        "assignment": "random",
        "seed": 3,
        "cyclic": False,
    },
    "rand": {
        "num_envs": E,
        "window_size": 5,
        "schedule": "random",
        "end_policy": "clamp",
        "seed": 5,
        "cyclic": False,
    },
    "wrap": {"num_envs": E, "window_size": 4, "seed": 1, "cyclic": False},  # env e plays e % 6
}
KEYS = (
    "qpos",
    "qvel",
    "action",
    "step",
    "loop",
    "valid",
    "env_id",
    "traj_id",
    "start",
    "episode_start",
    "episode_first_step",
    "episode_loop",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_workers(store: Path, out: Path, timeout: float = 60.0) -> None:
    """Start both workers, wait for both (killing both as soon as one fails or time runs out)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    env.pop("XLA_FLAGS", None)
    args = [str(_free_port()), str(store), str(out), json.dumps(CONFIGS), str(N), str(SAVE_AT)]
    logs = [open(out / f"worker{i}.log", "w") for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "multihost_worker.py"), str(i), *args],
            cwd=REPO,
            env=env,
            stdout=logs[i],
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for f in logs:
            f.close()
    for i, p in enumerate(procs):
        text = (out / f"worker{i}.log").read_text()
        assert p.returncode == 0 and f"WORKER-OK {i}" in text, (
            f"worker {i} exited with {p.returncode}:\n{text[-4000:]}"
        )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``(store path, out dir)`` after both workers ran every config of ``CONFIGS``."""
    from conftest import _make_npz_tree

    tmp = tmp_path_factory.mktemp("multihost")
    _make_npz_tree(tmp / "npz", {"walk": LENGTHS})
    store = tmp / "toy.zarr"
    export_npz(tmp / "npz", store, source="toy", convention="mujoco", progress=False)
    out = tmp / "out"
    out.mkdir()
    _run_workers(store, out)
    return store, out


def _config(store: Path, name: str):
    return load_config("default", {"zarr_path": str(store), **CONFIGS[name]})


def _single(store: Path, name: str, n: int) -> list[dict]:
    """The oracle: the first ``n`` batches of the 1-process stream of the same config and seed."""
    it = iter(make_dataset(_config(store, name), TrajectoryStore(store), 0, 1))
    return list(itertools.islice(it, n))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_process_reads_only_its_envs(run, name):
    store, out = run
    for p in range(2):
        got = np.load(out / f"p{p}_{name}.npz")
        lo, hi = p * E // 2, (p + 1) * E // 2
        single = _single(store, name, len(got["gather_traj"]))
        np.testing.assert_array_equal(got["mesh_processes"], [0, 0, 1, 1])
        np.testing.assert_array_equal(got["local_env_id"], np.tile(np.arange(lo, hi), (N, 1)))
        for key in KEYS:
            want = np.stack([b[key][lo:hi] for b in single[:N]])
            np.testing.assert_array_equal(
                got[f"local_{key}"],
                want.astype(got[f"local_{key}"].dtype),
                err_msg=f"process {p} {key}",
            )
        # every gather of the process (including read-ahead) asked for its env rows only
        np.testing.assert_array_equal(
            got["gather_traj"], np.stack([b["traj_id"][lo:hi] for b in single])
        )
        np.testing.assert_array_equal(
            got["gather_step"], np.stack([b["step"][lo:hi] for b in single])
        )
        # the host cache holds this process's share: what its envs play (wrap: env e keeps
        # trajectory e % 6; seq / rand: every trajectory), bytes = its rows of 3 float64 keys
        share = {
            "wrap": np.unique([e % len(LENGTHS) for e in range(lo, hi)]),
            "seq": np.arange(len(LENGTHS)),
            "rand": np.arange(len(LENGTHS)),
        }[name]
        np.testing.assert_array_equal(got["cached_qpos"], share)
        assert int(got["cached_bytes"]) == sum(LENGTHS[i] for i in share) * (9 + 8 + 2) * 8


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_global_arrays_equal_the_single_process_stream(run, name):
    store, out = run
    single = _single(store, name, N)
    for b in single:  # the oracle itself against the revealing values
        np.testing.assert_array_equal(b["qpos"][..., 0], 100.0 * b["traj_id"][:, None] + b["step"])
    # the stream moves between trajectories (wrap: every env keeps its own)
    assert len({tuple(b["traj_id"]) for b in single}) > (0 if name == "wrap" else 1)
    for p in range(2):
        got = np.load(out / f"p{p}_{name}.npz")
        for key in KEYS:
            want = np.stack([b[key] for b in single])
            assert got[f"global_{key}"].shape == want.shape, key
            np.testing.assert_array_equal(
                got[f"global_{key}"],
                want.astype(got[f"global_{key}"].dtype),
                err_msg=f"process {p} {key}",
            )
        sums = [(b["qpos"].astype(np.float64) * b["valid"][..., None]).sum() for b in single]
        np.testing.assert_allclose(got["jit_sum"], sums, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_restored_processes_continue_with_identical_batches(run, name):
    store, out = run
    single = _single(store, name, N)
    for p in range(2):
        got = np.load(out / f"p{p}_{name}.npz")
        for key in KEYS:
            np.testing.assert_array_equal(
                got[f"restored_{key}"], got[f"global_{key}"][SAVE_AT:], err_msg=f"process {p} {key}"
            )
    # the 2-process state resumes a 1-process pipeline at the same global batch
    config = _config(store, name)
    ds = make_dataset(config, TrajectoryStore(store), 0, 1)
    it = iter(ds)
    record = restore_process_state(
        out / f"ckpt_{name}", it, config, process_index=0, process_count=1
    )
    # the fingerprint saved by 2 processes is the one of a 1-process pipeline of the same stream
    assert record["process_count"] == 2 and record["iterator"] == {
        "next_index": SAVE_AT,
        "stream": ds.stream,
    }
    for k in range(SAVE_AT, N):
        batch = next(it)
        for key in KEYS:
            np.testing.assert_array_equal(batch[key], single[k][key], err_msg=key)
