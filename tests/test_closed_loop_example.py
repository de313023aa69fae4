"""examples/closed_loop.py on the real Cassie strides, small: the sampler concentrates on the
failing segments, and the restored run is bit-identical (the example asserts it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_closed_loop_example_concentrates_and_restores(shared_data):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "closed_loop.py"),
            "--data",
            str(shared_data / "cassie" / "trajopt"),
            "--num-envs",
            "32",
            "--batches",
            "24",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    uniform = float(re.search(r"\((\d+\.\d)% of the starts", out.stdout).group(1))
    # 3 of the 21 strides (665 steps in all, end_policy wrap: every step a start), 10 steps each
    assert abs(uniform - 100 * 30 / 665) < 0.05
    shares = [float(s) for s in re.findall(r"(\d+\.\d)% of the envs start", out.stdout)]
    assert len(shares) == 6 and min(shares[2:]) > 4 * uniform, out.stdout
    assert "statistics are bit-identical: True" in out.stdout
