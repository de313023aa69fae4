"""Writers of one store: the export lock, crash-safe commits, stale temporary directories, names.

Concurrent exports and ``kill -9`` use real ``trajopt-loader export`` subprocesses; crashes inside a
commit are simulated in-process by raising at each step with the in-process cleanup disabled (what
a killed process leaves behind), then checking what the next export and a reader see.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import REPO, revealing

from trajopt_loader.errors import ExportError
from trajopt_loader.store import TrajectoryStore, commit, direct_write, export_npz, lock
from trajopt_loader.store import export as export_mod


def _cli(*args) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trajopt_loader.cli",
            "export",
            *map(str, args),
            "--convention",
            "mujoco",
            "--noprogress",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _temps(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.tmp-*"))


def _check_reads(out: Path, expected: dict) -> None:
    """Every trajectory of ``out`` reads its revealing qpos; ``expected = {path: (i, T)}``."""
    store = TrajectoryStore(out)
    assert {t.path: t.length for t in store.trajectories} == {
        p: n for p, (_, n) in expected.items()
    }
    for t in store.trajectories:
        i, n = expected[t.path]
        np.testing.assert_array_equal(store.read(t.traj_id, "qpos"), revealing(i, n, 9))


@pytest.mark.slow
def test_concurrent_cli_exports_keep_both_motions(make_npz_tree, tmp_path):
    make_npz_tree(tmp_path / "a", {"walk": [30, 31]})
    make_npz_tree(tmp_path / "b", {"run": [40]})
    for r in range(3):
        out = tmp_path / f"s{r}.zarr"
        # round 0: two motions of one source; later rounds: a second source as well
        procs = [
            _cli(tmp_path / "a", out, "--source", "s"),
            _cli(tmp_path / "b", out, "--source", "s" if r == 0 else "t"),
        ]
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], results
        other = "s" if r == 0 else "t"
        _check_reads(
            out, {"s/walk/traj0": (0, 30), "s/walk/traj1": (1, 31), f"{other}/run/traj0": (0, 40)}
        )
        assert not _temps(out) and not lock.lock_path(out).exists()


def test_lock_timeout_names_the_holder(make_npz_tree, tmp_path, caplog):
    make_npz_tree(tmp_path / "npz", {"m": [5]})
    out = tmp_path / "s.zarr"
    with lock.store_lock(out):
        with pytest.raises(
            ExportError,
            match=rf"being written by another export \(pid {os.getpid()}"
            r" on .*waited 0.2 s",
        ):
            export_npz(
                tmp_path / "npz",
                out,
                source="s",
                progress=False,
                lock_timeout=0.2,
                convention="mujoco",
            )
    assert [
        r.getMessage().startswith(
            f"waiting up to 0.2 s for another export of {out} to finish (pid {os.getpid()} on "
        )
        for r in caplog.records
    ] == [True]
    export_npz(
        tmp_path / "npz", out, source="s", progress=False, lock_timeout=0, convention="mujoco"
    )
    _check_reads(out, {"s/m/traj0": (0, 5)})


@pytest.mark.slow
def test_kill_9_mid_export_leaves_a_temp_dir_the_next_export_removes(make_npz_tree, tmp_path):
    make_npz_tree(tmp_path / "big", {"slow": [20] * 400})
    make_npz_tree(tmp_path / "small", {"m": [6]})
    out = tmp_path / "s.zarr"
    foreign = tmp_path / f".{out.name}.tmp-foreign"  # not marked by an export of this store
    foreign.mkdir()
    proc = _cli(tmp_path / "big", out, "--source", "s")
    deadline = time.monotonic() + 60
    while not any((t / "slow" / "traj3").exists() for t in _temps(out) if t != foreign):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stale = [t for t in _temps(out) if t != foreign]
    assert len(stale) == 1 and json.loads((stale[0] / lock.MARKER).read_text())["pid"] == proc.pid
    summary = export_npz(tmp_path / "small", out, source="s", progress=False, convention="mujoco")
    assert _temps(out) == [foreign]
    assert any(f"removed {stale[0].name}" in w for w in summary.warnings)
    _check_reads(out, {"s/m/traj0": (0, 6)})


def _overwrite_setup(make_npz_tree, tmp_path):
    make_npz_tree(tmp_path / "old", {"m": [4, 5], "k": [3]})
    make_npz_tree(tmp_path / "new", {"m": [7]})
    make_npz_tree(tmp_path / "later", {"z": [2]})
    out = tmp_path / "s.zarr"
    export_npz(tmp_path / "old", out, source="s", progress=False, convention="mujoco")
    return out


OLD = {"s/k/traj0": (0, 3), "s/m/traj0": (0, 4), "s/m/traj1": (1, 5)}
NEW = {"s/k/traj0": (0, 3), "s/m/traj0": (0, 7)}


def _real_exchange_then(fail):
    real = commit.exchange

    def exchange(a, b):
        done = real(a, b)
        if done:
            fail()
        return done

    return exchange


def _crash():
    raise OSError(errno.EIO, "simulated crash")


@pytest.mark.parametrize(
    "step, after",
    [
        ("before the swap", OLD),
        ("after the swap", OLD),
        ("between two renames", OLD),
        ("after two renames", OLD),
        ("at the root write", OLD),
        ("after the index", NEW),
    ],
)
def test_overwrite_crash_at_each_step_is_settled_by_the_next_export(
    make_npz_tree, tmp_path, monkeypatch, step, after
):
    out = _overwrite_setup(make_npz_tree, tmp_path)
    # a killed process runs neither the rollback nor the cleanup of its temporary directory
    monkeypatch.setattr(commit, "roll_back", lambda *a: None)
    monkeypatch.setattr(export_mod, "remove_tree", lambda p: None)
    monkeypatch.setattr(commit, "drain_zarr", lambda: None)
    if step == "before the swap":
        monkeypatch.setattr(commit, "exchange", lambda a, b: _crash())
    elif step == "after the swap":
        monkeypatch.setattr(commit, "exchange", _real_exchange_then(_crash))
    elif step in ("between two renames", "after two renames"):  # no renameat2 (not Linux)
        monkeypatch.setattr(commit, "exchange", lambda a, b: False)
        real_replace = os.replace

        def replace(src, dst):
            moving_new_in = Path(src).name == "m" and ".tmp-" in str(src)
            if moving_new_in and step == "between two renames":
                _crash()
            real_replace(src, dst)
            if moving_new_in:
                _crash()

        monkeypatch.setattr(os, "replace", replace)
    elif step == "at the root write":  # the index and consolidated metadata: one atomic write
        monkeypatch.setattr(direct_write, "put", lambda path, data: _crash())
    else:
        real = commit.write_marker
        monkeypatch.setattr(
            commit,
            "write_marker",
            lambda tmp, rec: real(tmp, rec) if rec["phase"] != "committed" else _crash(),
        )
    with pytest.raises(ExportError, match="simulated crash"):
        export_npz(
            tmp_path / "new", out, source="s", overwrite=True, progress=False, convention="mujoco"
        )
    # never a hole, except in the two-rename fallback between its renames (settled below)
    assert (out / "s" / "m").is_dir() == (step != "between two renames")
    assert len(_temps(out)) == 1
    monkeypatch.undo()
    summary = export_npz(tmp_path / "later", out, source="s", progress=False, convention="mujoco")
    assert not _temps(out) and any("removed" in w for w in summary.warnings)
    _check_reads(out, {**after, "s/z/traj0": (0, 2)})
    assert zarr.open_group(str(out), mode="r", use_consolidated=True)  # consolidated again


@pytest.mark.parametrize("step", ["after the journal", "at the root write", "after the index"])
def test_crash_while_creating_a_store_is_settled_by_the_next_export(
    make_npz_tree, tmp_path, monkeypatch, step
):
    make_npz_tree(tmp_path / "first", {"m": [4, 5]})
    make_npz_tree(tmp_path / "later", {"z": [2]})
    out = tmp_path / "s.zarr"
    monkeypatch.setattr(commit, "roll_back", lambda *a: None)
    monkeypatch.setattr(export_mod, "remove_tree", lambda p: None)
    real = commit.write_marker
    if step == "after the journal":
        monkeypatch.setattr(commit, "write_marker", lambda tmp, rec: (real(tmp, rec), _crash()))
    elif step == "at the root write":
        monkeypatch.setattr(direct_write, "put", lambda path, data: _crash())
    else:  # the root is written; the journal is not marked committed: rolled forward
        monkeypatch.setattr(
            commit,
            "write_marker",
            lambda tmp, rec: real(tmp, rec) if rec["phase"] != "committed" else _crash(),
        )
    with pytest.raises(ExportError, match="simulated crash"):
        export_npz(tmp_path / "first", out, source="s", progress=False, convention="mujoco")
    monkeypatch.undo()
    export_npz(tmp_path / "later", out, source="s", progress=False, convention="mujoco")
    assert not _temps(out)
    first = {"s/m/traj0": (0, 4), "s/m/traj1": (1, 5)} if step == "after the index" else {}
    _check_reads(out, {**first, "s/z/traj0": (0, 2)})
    assert sorted(p.name for p in (out / "s").iterdir()) == sorted(
        ["zarr.json", "z", *(["m"] if first else [])]
    )


def test_failed_overwrite_rolls_back_in_process(make_npz_tree, tmp_path, monkeypatch):
    out = _overwrite_setup(make_npz_tree, tmp_path)
    monkeypatch.setattr(commit, "exchange", _real_exchange_then(_crash))
    with pytest.raises(ExportError, match=r"failed at .*simulated crash \(errno EIO\)"):
        export_npz(
            tmp_path / "new", out, source="s", overwrite=True, progress=False, convention="mujoco"
        )
    assert not _temps(out)
    monkeypatch.undo()
    _check_reads(out, OLD)
    export_npz(
        tmp_path / "new", out, source="s", overwrite=True, progress=False, convention="mujoco"
    )
    _check_reads(out, NEW)


def test_disk_full_leaves_no_temp_dir_and_no_write_after_cleanup(
    make_npz_tree, tmp_path, monkeypatch
):
    q = revealing(0, 60000, 9)  # 60000 x 9 float64: 9 chunks of 7281 rows
    big = dict(length=60000, qpos=q, qvel=q[:, :8], action=q[:, :2])
    make_npz_tree(tmp_path / "npz", {"m": [big, 3000, 3000, 3000, 3000]})
    out = tmp_path / "s.zarr"
    real, calls = direct_write.write_new, []

    def write_new(path, data):
        if "/c/" in str(path):
            calls.append(path)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            time.sleep(0.05)  # the other chunk writes are still in flight when one fails
        return real(path, data)

    monkeypatch.setattr(direct_write, "write_new", write_new)
    with pytest.raises(ExportError, match=r"No space left on device \(errno ENOSPC\)"):
        export_npz(tmp_path / "npz", out, source="s", progress=False, convention="mujoco")
    n = len(calls)
    time.sleep(0.5)
    assert len(calls) == n and not _temps(out) and not out.exists()


@pytest.mark.parametrize(
    "held, new, what",
    [
        (
            {"s": ["aslip_walk"]},
            ("s", "ASLIP_WALK"),
            "motion of .*'ASLIP_WALK' clashes with 'aslip_walk'",
        ),
        ({"cassie": ["m"]}, ("CASSIE", "m"), "source of .*'CASSIE' clashes with 'cassie'"),
    ],
)
def test_names_differing_in_case_are_refused(make_npz_tree, tmp_path, held, new, what):
    out = tmp_path / "s.zarr"
    for source, motions in held.items():
        make_npz_tree(tmp_path / "a", {m: [3] for m in motions})
        export_npz(tmp_path / "a", out, source=source, progress=False, convention="mujoco")
    make_npz_tree(tmp_path / "b", {new[1]: [4]})
    listing = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    for overwrite in (False, True):
        with pytest.raises(ExportError, match=what):
            export_npz(
                tmp_path / "b",
                out,
                source=new[0],
                overwrite=overwrite,
                progress=False,
                convention="mujoco",
            )
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == listing
    assert [t.length for t in TrajectoryStore(out).trajectories] == [3]


def test_reserved_and_case_duplicate_names_are_refused_up_front(make_npz_tree, tmp_path):
    make_npz_tree(tmp_path / "npz", {"m": [3]})
    out = tmp_path / "s.zarr"
    for source in ("zarr.json", "ZARR.JSON"):
        with pytest.raises(ExportError, match=rf"source name '{source}' is reserved by the Zarr"):
            export_npz(tmp_path / "npz", out, source=source, progress=False, convention="mujoco")
    make_npz_tree(tmp_path / "k", {"m": [dict(length=3, **{"zarr.json": np.zeros(3)})]})
    with pytest.raises(ExportError, match=r"traj_0.npz: array key name 'zarr.json' is reserved"):
        export_npz(tmp_path / "k", out, source="s", progress=False, convention="mujoco")
    make_npz_tree(tmp_path / "c", {"m": [dict(length=3, QPOS=np.zeros((3, 9)))]})
    with pytest.raises(
        ExportError, match=r"traj_0.npz: key 'QPOS': and 'qpos' differ only in case"
    ):
        export_npz(tmp_path / "c", out, source="s", progress=False, convention="mujoco")
    make_npz_tree(tmp_path / "d", {"walk": [3], "WALK": [3]})
    with pytest.raises(ExportError, match=r"duplicate motion names \['WALK', 'walk'\]"):
        export_npz(tmp_path / "d", out, source="s", progress=False, convention="mujoco")
    assert not out.exists()
