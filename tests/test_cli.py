"""The `trajopt-loader` dispatcher: usage, unknown commands, one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    env.pop("TRAJOPT_LOADER_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", "trajopt_loader.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_help_lists_every_command():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for name in ("export", "inspect", "stream", "demo", "bench"):
        assert f"  {name} " in proc.stdout


def test_no_command_is_a_usage_error():
    proc = run_cli()
    assert proc.returncode == 2 and "usage: trajopt-loader COMMAND" in proc.stdout


def test_unknown_command_names_it():
    proc = run_cli("exprt")
    assert proc.returncode == 2 and "unknown command 'exprt'" in proc.stderr


def test_library_error_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "nothing.zarr"
    proc = run_cli("inspect", str(missing))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"no store at {str(missing)!r}" in proc.stderr


def test_stream_error_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "nothing.zarr"
    proc = run_cli("stream", "--config=trajopt_loader/configs/cassie.py",
                   f"--config.zarr_path={missing}", "--num_batches", "1", "--noprogress")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"trajopt-loader stream: error: no store at {str(missing)!r}")


def test_misspelled_config_field_is_one_line_with_a_suggestion():
    proc = run_cli("stream", "--config=trajopt_loader/configs/cassie.py", "--config.window_sise=3")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "trajopt-loader stream: error in flags: 'window_sise' "
        'Did you mean "window_size" instead of "window_sise"?')
