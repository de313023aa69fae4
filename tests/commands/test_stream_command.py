"""Tests of ``trajopt-loader stream`` (trajopt_loader/commands/stream.py) on a real Cassie store."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import REPO

from trajopt_loader.commands.stream import make_consumer, run_stream
from trajopt_loader.configs import load_config
from trajopt_loader.pipeline import make_dataset

RATE = re.compile(
    r"^\s+(streaming|host pipeline only|consumer only)\s+([\d.]+) s\s+([\d.]+) ms/batch\s+"
    r"([\d.]+) batches/s\s+(\d+) env-steps/s\s+([\d.]+) MB/s$"
)


def cassie_config(store, **overrides):
    # aslip_walk traj13 (32 steps), traj14, traj15 (31 steps): one rate (dt ~0.025 s); the
    # 31-step ones leave an invalid step under clamp. The store has no qvel/action for them.
    return load_config(
        "cassie",
        {
            "zarr_path": str(store),
            "assignment": "explicit",
            "traj_ids": (16, 17, 18),
            "keys": ("qpos", "motor_vel"),
            "references.enabled": False,
            "num_envs": 8,
            "window_size": 16,
            **overrides,
        },
    )


def numpy_oracle(config, n: int):
    """float64 ``sum_t qpos * valid`` over the first n host batches, and the valid count."""
    batches = list(itertools.islice(iter(make_dataset(config)), n))
    assert len(batches) == n
    total = sum(
        (b["qpos"].astype(np.float64) * b["valid"][..., None]).sum(axis=(0, 1)) for b in batches
    )
    return total, int(sum(b["valid"].sum() for b in batches))


def test_consumer_matches_numpy_on_one_batch_with_invalid_steps():
    rng = np.random.default_rng(0)
    batch = {
        "qpos": rng.standard_normal((5, 7, 35)).astype(np.float32),
        "valid": rng.random((5, 7)) < 0.6,
    }
    acc = (jax.numpy.ones(35), jax.numpy.asarray(3, jax.numpy.int32))
    total, count = make_consumer()(acc, jax.device_put(batch))
    want = 1 + (batch["qpos"].astype(np.float64) * batch["valid"][..., None]).sum(axis=(0, 1))
    np.testing.assert_allclose(np.asarray(total), want, rtol=1e-5, atol=1e-5)
    assert int(count) == 3 + batch["valid"].sum()


def test_run_stream_reports_parseable_rates_and_oracle_result(cassie_store):
    config = cassie_config(cassie_store, num_batches=14, end_policy="clamp")
    lines: list[str] = []
    result = run_stream(config, 10, warmup=2, progress=False, out=lines.append)
    assert result["batches"] == 10 and result["consumed"] == 12

    total, count = numpy_oracle(config, 12)
    assert result["count"] == count and 0 < count < 12 * 8 * 16  # clamp leaves invalid steps
    np.testing.assert_allclose(result["sum"], total, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(result["mean"], total / count, rtol=1e-5, atol=1e-6)

    rows = {m.group(1): [float(x) for x in m.groups()[1:]] for m in map(RATE.match, lines) if m}
    assert set(rows) == {"streaming", "host pipeline only", "consumer only"}
    seconds, ms, per_s, env_steps, mb = rows["streaming"]
    assert per_s == pytest.approx(10 / result["seconds"], rel=1e-3, abs=0.1)
    assert env_steps == pytest.approx(per_s * 8 * 16, rel=1e-2)
    nbytes = sum(8 * 16 * k * 4 for k in (35, 10)) + 8 * 16 * (4 + 4 + 1) + 8 * (5 * 4 + 1)
    # qpos/motor_vel f32; step, loop i32 + valid per step; 5 int32 + 1 bool per env
    assert result["batch_bytes"] == nbytes
    assert mb == pytest.approx(per_s * nbytes / 1e6, rel=1e-2, abs=0.1)
    assert ms == pytest.approx(1e3 * result["seconds"] / 10, abs=0.006)
    assert seconds == pytest.approx(result["seconds"], abs=6e-4)
    assert re.match(r"streaming / max\(host, consumer\) = [\d.]+", lines[4].strip())


@pytest.mark.slow
def test_cli_stream_subprocess(cassie_store):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    cmd = [
        sys.executable,
        "-m",
        "trajopt_loader.cli",
        "stream",
        "--config=trajopt_loader/configs/cassie.py",
        f"--config.zarr_path={cassie_store}",
        "--config.assignment=explicit",
        "--config.traj_ids=(16,17,18)",
        "--config.num_envs=8",
        "--config.window_size=16",
        "--config.keys=('qpos','motor_vel')",
        "--config.references.enabled=False",
        "--num_batches",
        "5",
        "--noprogress",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("streamed 5 batches (+1 warm-up) of 8 x 16 env-steps")
    assert sum(bool(RATE.match(line)) for line in lines) == 3
    m = re.search(r"mean qpos over (\d+) valid steps of 6 batches: \[([^\]]+)\]", proc.stdout)
    total, count = numpy_oracle(cassie_config(cassie_store), 6)
    assert int(m.group(1)) == count
    np.testing.assert_allclose(
        [float(x) for x in m.group(2).split()], (total / count)[:7], atol=1e-4
    )


@pytest.mark.slow
def test_cli_stream_without_config_says_what_to_pass():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", "stream"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "--config is required" in proc.stderr
