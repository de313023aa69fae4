"""Failure paths of the CLI end in one line: bad dtypes, OS errors, checkpoints, Ctrl-C."""

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, revealing

from trajopt_loader.errors import CheckpointError, ExportError
from trajopt_loader.store import TrajectoryStore, export_npz


def _env(**extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **extra)
    if "TRAJOPT_LOADER_TRACEBACK" not in extra:
        env.pop("TRAJOPT_LOADER_TRACEBACK", None)
    return env


def _cli(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", *map(str, args)],
        cwd=REPO,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_float128_is_refused_at_validation_in_one_line(make_npz_tree, tmp_path):
    make_npz_tree(
        tmp_path / "npz", {"m": [4, dict(length=4, qvel=np.zeros((4, 8), np.longdouble))]}
    )
    args = (
        "export",
        tmp_path / "npz",
        tmp_path / "s.zarr",
        "--source",
        "s",
        "--convention",
        "mujoco",
        "--noprogress",
    )
    proc = _cli(*args)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(
        "trajopt-loader export: error: m/traj_1.npz: key 'qvel': has "
        "dtype float128 (shape (4, 8)), which Zarr cannot store; "
        "expected float16, float32 or float64"
    )
    assert not (tmp_path / "s.zarr").exists()
    traced = _cli(*args, TRAJOPT_LOADER_TRACEBACK="1")
    assert traced.returncode == 1 and "Traceback (most recent call last)" in traced.stderr
    assert "ExportError: m/traj_1.npz: key 'qvel'" in traced.stderr


@pytest.mark.slow
def test_output_under_a_file_is_one_line_naming_path_and_errno(make_npz_tree, tmp_path):
    make_npz_tree(tmp_path / "npz", {"m": [4]})
    (tmp_path / "file").write_text("x")
    proc = _cli(
        "export",
        tmp_path / "npz",
        tmp_path / "file" / "s.zarr",
        "--source",
        "s",
        "--convention",
        "mujoco",
        "--noprogress",
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"failed at '{tmp_path / 'file'}': File exists (errno EEXIST)" in proc.stderr


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_os_errors_while_writing_become_export_errors(make_npz_tree, tmp_path, monkeypatch, code):
    from trajopt_loader.store import direct_write

    make_npz_tree(tmp_path / "npz", {"m": [4, 5]})
    out = tmp_path / "s.zarr"
    export_npz(tmp_path / "npz", out, source="s", progress=False, convention="mujoco")
    real = direct_write.write_new  # the file writer of the staged chunk files

    def write_new(path, data):
        if "/c/" in str(path):
            raise OSError(code, os.strerror(code), str(path))
        return real(path, data)

    monkeypatch.setattr(direct_write, "write_new", write_new)
    with pytest.raises(
        ExportError,
        match=rf"failed at '.*/m/traj0/qpos/c/0/0': "
        rf"{os.strerror(code)} \(errno {errno.errorcode[code]}\); "
        "nothing was committed",
    ):
        export_npz(
            tmp_path / "npz", out, source="s", overwrite=True, progress=False, convention="mujoco"
        )
    monkeypatch.undo()
    store = TrajectoryStore(out)
    assert store.lengths.tolist() == [4, 5]
    np.testing.assert_array_equal(store.read(1, "qpos"), revealing(1, 5, 9))


def test_unexpected_error_is_one_line_unless_traceback_is_asked(monkeypatch, capsys):
    from trajopt_loader.cli import _clear_errors

    def command(argv):
        raise RuntimeError("blosc decompression failed\n  (code -1)")

    monkeypatch.delenv("TRAJOPT_LOADER_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as e:
        _clear_errors("stream", command, [])(["stream"])
    assert e.value.code == 1
    assert capsys.readouterr().err == (
        "trajopt-loader stream: error: RuntimeError: blosc "
        "decompression failed (code -1) (set "
        "TRAJOPT_LOADER_TRACEBACK=1 for the traceback)\n"
    )
    monkeypatch.setenv("TRAJOPT_LOADER_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="blosc decompression failed"):
        _clear_errors("stream", command, [])(["stream"])


def test_checkpoint_position_outside_the_stream_is_refused(tmp_path, make_npz_tree):
    from trajopt_loader.configs import load_config
    from trajopt_loader.pipeline import make_dataset
    from trajopt_loader.pipeline.schedules import ENDLESS

    make_npz_tree(tmp_path / "npz", {"walk": [20, 12]})
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    config = load_config(
        "default",
        {
            "zarr_path": str(tmp_path / "s.zarr"),
            "num_envs": 2,
            "window_size": 4,
            "keys": ("qpos",),
            "cyclic": False,
        },
    )
    assert config.num_batches is None  # endless
    it = iter(make_dataset(config, None, 0, 1))
    first = next(it)
    stream = it.get_state()["stream"]
    for k, match in [
        (ENDLESS, rf"next_index {ENDLESS}, outside \[0, {ENDLESS}\)"),
        (2**62 + 5, rf"next_index {2**62 + 5}, outside"),
        (-1, r'"next_index": -1'),
    ]:
        with pytest.raises(CheckpointError, match=match):
            it.set_state({"next_index": k, "stream": stream})
    it.set_state({"next_index": 0, "stream": stream})
    np.testing.assert_array_equal(next(it)["qpos"], first["qpos"])


def _interrupt(args: list, delay: float, ready=lambda: True):
    """Start ``trajopt-loader *args``, SIGINT it ``delay`` s later (and once ``ready()``)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "trajopt_loader.cli", *map(str, args)],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    deadline = time.monotonic() + 60
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)
    return proc.returncode, time.monotonic() - t0, err


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from conftest import _make_npz_tree

    root = tmp_path_factory.mktemp("sigint")
    _make_npz_tree(root / "npz", {"m": [50] * 4})
    export_npz(root / "npz", root / "s.zarr", source="s", progress=False, convention="mujoco")
    return root / "s.zarr"


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 3.0])
def test_ctrl_c_stops_stream_within_a_second_with_one_line(small_store, tmp_path, delay):
    rc, took, err = _interrupt(
        [
            "stream",
            "--config=default",
            f"--config.zarr_path={small_store}",
            "--config.num_envs=8",
            "--config.window_size=4",
            "--config.references.enabled=False",
            "--config.cyclic=False",
            "--num_batches=100000000",
            "--noprogress",
        ],
        delay,
    )
    assert (rc, err) == (130, "trajopt-loader stream: interrupted\n")
    assert took < 2.0


@pytest.mark.slow
def test_ctrl_c_stops_export_and_removes_its_temp_dir(make_npz_tree, tmp_path):
    make_npz_tree(tmp_path / "npz", {"m": [20] * 400})
    out = tmp_path / "s.zarr"
    rc, took, err = _interrupt(
        [
            "export",
            tmp_path / "npz",
            out,
            "--source",
            "s",
            "--convention",
            "mujoco",
            "--noprogress",
        ],
        0.5,
        lambda: any(tmp_path.glob(".s.zarr.tmp-*/m/traj3")),
    )
    assert (rc, err) == (130, "trajopt-loader export: interrupted\n") and took < 2.0
    assert not out.exists()
    # a cleanup longer than the grace time is cut short; the next export finishes it
    make_npz_tree(tmp_path / "small", {"w": [3]})
    export_npz(tmp_path / "small", out, source="s", progress=False, convention="mujoco")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["npz", "s.zarr", "small"]
    assert [t.path for t in TrajectoryStore(out).trajectories] == ["s/w/traj0"]
