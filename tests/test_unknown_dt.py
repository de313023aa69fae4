"""dt may be unknown, never guessed: export records it (index null, store.dts NaN) with one
warning; such data streams; whatever needs a time step refuses it naming the fix."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import zarr
from conftest import revealing

from trajopt_loader import load_config, make_dataset
from trajopt_loader.errors import ConfigError, ExportError
from trajopt_loader.store import TrajectoryStore, check_velocity_consistency, export_npz
from trajopt_loader.store.inspect import format_report, inspect_store
from trajopt_loader.store.time_step import DT_FIX, UNKNOWN_DT, dt_known, index_dt, require_dt
from trajopt_loader.store.validate import load_trajectory

FIX = "dt=SECONDS"  # every refusal names how to set the time step


@pytest.fixture
def no_dt(tmp_path, make_npz_tree):
    """``npz/walk/traj_{0,1,2}.npz`` (lengths 6, 8, 10) without ``dt`` or ``time``."""
    return make_npz_tree(tmp_path / "npz", {"walk": [6, 8, 10]}, dt=None)


def _export(root, out, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_npz(root, out, source="s", convention="mujoco", progress=False, **kw)
    return [str(w.message) for w in caught]


def test_load_trajectory_records_unknown_only_when_asked(no_dt, make_npz_tree, tmp_path):
    f = no_dt / "walk" / "traj_0.npz"
    with pytest.raises(
        ExportError,
        match=r"traj_0.npz: has no 'dt' scalar .* pass dt=SECONDS "
        r"\(CLI --dt SECONDS\); it is never guessed. To export without one, "
        r"record it as unknown: dt='unknown' \(CLI --dt unknown\)",
    ):
        load_trajectory(f)
    assert math.isnan(load_trajectory(f, dt=UNKNOWN_DT).dt)
    assert math.isnan(load_trajectory(f, dt="Unknown").dt)
    assert load_trajectory(f, dt=0.02).dt == 0.02
    timed = make_npz_tree(
        tmp_path / "timed", {"w": [{"length": 5, "time": np.arange(5) * 0.5}]}, dt=None
    )
    assert load_trajectory(timed / "w" / "traj_0.npz", dt=UNKNOWN_DT).dt == 0.5  # time wins
    with pytest.raises(ExportError, match=r"dt='soon' .* \(or 'unknown' to record"):
        load_trajectory(f, dt="soon")
    assert [dt_known(x) for x in (0.01, float("nan"), None, 0.0, -1.0)] == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert index_dt(float("nan")) is None and index_dt(0.01) == 0.01
    assert require_dt(0.01, "x", "f") == 0.01


def test_export_records_unknown_dt_with_one_warning_and_streams(no_dt, tmp_path):
    out = tmp_path / "s.zarr"
    messages = _export(no_dt, out, dt=UNKNOWN_DT)
    assert len(messages) == 1
    assert messages[0].startswith(
        "3 trajectories (walk/traj_0.npz, walk/traj_1.npz, "
        "walk/traj_2.npz) have no 'dt' and no 'time'"
    )
    assert FIX in messages[0] and "--dt SECONDS" in messages[0]
    index = zarr.open_group(str(out), mode="r").attrs["trajopt_loader"]
    assert [e["dt"] for e in index["sources"]["s"]["motions"]["walk"]] == [None, None, None]
    store = TrajectoryStore(out)
    assert np.isnan(store.dts).all() and all(math.isnan(t.dt) for t in store.trajectories)
    # all-unknown streams (one rate of its own); values are the stored rows
    config = load_config(
        "default",
        {"num_envs": 3, "window_size": 4, "keys": ("qpos",), "cyclic": False, "dtype": "float64"},
    )
    ds = make_dataset(config, store, 0, 1)
    assert "nan" in ds.stream["store"]["index"]
    batch = next(iter(ds))
    for e, length in enumerate((6, 8, 10)):
        np.testing.assert_array_equal(batch["qpos"][e], revealing(e, length, 9)[:4])


def test_mixed_known_and_unknown_is_refused_unless_allowed(no_dt, make_npz_tree, tmp_path):
    out = tmp_path / "s.zarr"
    _export(no_dt, out, dt=UNKNOWN_DT)
    make_npz_tree(tmp_path / "timed", {"run": [5]}, dt=0.01)
    export_npz(tmp_path / "timed", out, source="s", progress=False, convention="mujoco")
    store = TrajectoryStore(out)
    assert store.dts[3] == 0.01
    config = load_config(
        "default", {"num_envs": 4, "window_size": 4, "keys": ("qpos",), "cyclic": False}
    )
    with pytest.raises(ConfigError) as info:
        make_dataset(config, store, 0, 1)
    msg = str(info.value)
    assert msg.startswith(
        f"3 of the 4 trajectories selected in {store.path!r} (sources=(), "
        "motions=()) have an unknown dt (s/walk) and 1 a known one (0.01-0.01 s)"
    )
    assert DT_FIX in msg and "--config.allow_mixed_dt=True" in msg
    mixed = load_config(
        "default",
        {
            "num_envs": 4,
            "window_size": 4,
            "keys": ("qpos",),
            "cyclic": False,
            "allow_mixed_dt": True,
        },
    )
    batch = next(iter(make_dataset(mixed, store, 0, 1)))
    assert batch["traj_id"].tolist() == [0, 1, 2, 3]
    one_kind = load_config(
        "default",
        {"num_envs": 2, "window_size": 4, "keys": ("qpos",), "cyclic": False, "motions": ("run",)},
    )
    assert next(iter(make_dataset(one_kind, store, 0, 1)))["traj_id"].tolist() == [3, 3]


def test_time_step_users_refuse_unknown_dt(no_dt, tmp_path, shared_data):
    out = tmp_path / "s.zarr"
    _export(no_dt, out, dt=UNKNOWN_DT)
    store = TrajectoryStore(out)
    q, v = store.read(0, "qpos"), store.read(0, "qvel")
    with pytest.raises(
        ValueError,
        match=r"velocity check: dt is unknown .* checking qvel against "
        r"dq/dt needs a time step; it is never guessed. Fix: re-export",
    ):
        check_velocity_consistency(q, v, float("nan"))
    report = inspect_store(store)
    text = format_report(report)
    assert "dt unknown" in text and "dt=unknown" in text
    assert all(t.velocity is None for t in report.trajectories)
    # qvel derivation and resampling (export preprocess) on a real dt-less Cassie file
    from trajopt_loader.kinematics import make_export_preprocess

    src = np.load(shared_data / "cassie" / "trajopt" / "aslip_walk" / "traj_0.npz")
    (tmp_path / "cassie" / "walk").mkdir(parents=True)
    np.savez(tmp_path / "cassie" / "walk" / "traj_0.npz", qpos=src["qpos"])
    model = shared_data / "cassie" / "cassie.xml"
    for flag, kw in (
        ("--derive-qvel", {"derive_qvel": True}),
        ("--resample-dt", {"resample_dt": 0.01}),
    ):
        pre = make_export_preprocess(str(model), convention="mujoco", **kw)
        with pytest.raises(
            ExportError,
            match=rf"walk/traj_0.npz: dt is unknown .* but {flag} "
            r"needs a time step; it is never guessed. Fix: .*dt=SECONDS",
        ):
            export_npz(
                tmp_path / "cassie",
                tmp_path / "c.zarr",
                source="c",
                convention="mujoco",
                dt=UNKNOWN_DT,
                preprocess=pre,
                progress=False,
            )
        assert not (tmp_path / "c.zarr").exists()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", "export", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_cli_refuses_without_dt_and_records_unknown_with_dt_unknown(no_dt, tmp_path):
    out = tmp_path / "s.zarr"
    base = (no_dt, out, "--source", "s", "--convention", "mujoco", "--noprogress")
    r = _cli(*base)
    assert r.returncode == 1 and "--dt unknown" in r.stderr and not out.exists()
    r = _cli(*base, "--dt", "unknown")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("have no 'dt' and no 'time'") == 1
    assert np.isnan(TrajectoryStore(out).dts).all()
    r = _cli(*base, "--dt", "fast", "--overwrite")
    assert r.returncode == 1 and "--dt 'fast' is not a time step" in r.stderr
