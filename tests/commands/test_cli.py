"""The `trajopt-loader` dispatcher: usage, unknown commands, one-line errors."""

import os
import subprocess
import sys

import pytest
from conftest import REPO


def run_cli(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    env.pop("TRAJOPT_LOADER_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_help_lists_every_command():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for name in ("export", "inspect", "stream", "demo", "bench"):
        assert f"  {name} " in proc.stdout


@pytest.mark.slow
def test_no_command_is_a_usage_error():
    proc = run_cli()
    assert proc.returncode == 2 and "usage: trajopt-loader COMMAND" in proc.stdout


@pytest.mark.slow
def test_unknown_command_names_it():
    proc = run_cli("exprt")
    assert proc.returncode == 2 and "unknown command 'exprt'" in proc.stderr


@pytest.mark.slow
def test_library_error_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "nothing.zarr"
    proc = run_cli("inspect", str(missing))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"no store at {str(missing)!r}" in proc.stderr


@pytest.mark.slow
def test_stream_error_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "nothing.zarr"
    proc = run_cli(
        "stream",
        "--config=trajopt_loader/configs/cassie.py",
        f"--config.zarr_path={missing}",
        "--num_batches",
        "1",
        "--noprogress",
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"trajopt-loader stream: error: no store at {str(missing)!r}")
    )


@pytest.mark.slow
def test_misspelled_config_field_is_one_line_with_a_suggestion():
    proc = run_cli("stream", "--config=trajopt_loader/configs/cassie.py", "--config.window_sise=3")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "trajopt-loader stream: error in flags: 'window_sise' "
        'Did you mean "window_size" instead of "window_sise"?'
    )


@pytest.mark.slow
def test_named_config_resolves_to_the_packaged_file(tmp_path):
    missing = tmp_path / "nothing.zarr"
    proc = run_cli(
        "stream",
        "--config=cassie:num_envs=8",
        f"--config.zarr_path={missing}",
        "--num_batches",
        "1",
        "--noprogress",
    )
    assert proc.returncode == 1  # the config loaded; the store is what is missing
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"trajopt-loader stream: error: no store at {str(missing)!r}")
    )


@pytest.mark.slow
def test_missing_config_file_is_one_line():
    proc = run_cli("stream", "--config=/nope/cfg.py", "--num_batches", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "trajopt-loader stream: error in flags: --config='/nope/cfg.py': no such config file and "
        "not a named config; expected a path to a config .py file or one of "
        "['cassie', 'default', 'digit_v3'] (e.g. --config=cassie)."
    )


@pytest.mark.slow
def test_bad_config_file_override_is_one_line_with_a_suggestion():
    proc = run_cli("stream", "--config=trajopt_loader/configs/cassie.py:num_envz=8")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert line.startswith(
        "trajopt-loader stream: error in flags: "
        "--config='trajopt_loader/configs/cassie.py:num_envz=8': unknown config "
        "field 'num_envz'. Did you mean 'num_envs'?"
    )
    assert "\n" not in line


@pytest.mark.slow
def test_stream_checks_the_env_split_before_joining_other_processes(tmp_path):
    # With 3 processes and 256 envs nothing can work: fail at once instead of waiting for peers.
    proc = run_cli(
        "stream",
        "--config=cassie",
        f"--config.zarr_path={tmp_path / 'x.zarr'}",
        "--config.num_envs=256",
        "--config.distributed.num_processes=3",
        "--config.distributed.process_id=0",
        "--config.distributed.coordinator_address=127.0.0.1:1",
        "--num_batches",
        "1",
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "trajopt-loader stream: error: num_envs=256 is not divisible by process_count=3; every "
        "process must hold the same number of envs. Set num_envs to a multiple of 3 (e.g. 255)."
    )
