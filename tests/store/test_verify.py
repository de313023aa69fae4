"""``verify_store`` / ``trajopt-loader verify``: every chunk read and checked against the index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import zarr
from conftest import REPO

from trajopt_loader.errors import StoreFormatError
from trajopt_loader.store import TrajectoryStore
from trajopt_loader.store.verify import verify_store

TRAJ = "cassie/agility_reference/traj{}"


@pytest.fixture
def cassie_copy(cassie_store, tmp_path) -> Path:
    shutil.copytree(cassie_store, tmp_path / "cassie.zarr")
    return tmp_path / "cassie.zarr"


def _chunk(store: Path, traj: int, key: str) -> Path:
    return store / TRAJ.format(traj) / key / "c" / "0" / "0"


def test_sound_store_verifies_ok(cassie_store):
    report = verify_store(cassie_store)
    n_arrays = sum(len(t.keys) for t in TrajectoryStore(cassie_store).trajectories)
    assert report.ok and report.format_version == 2
    assert (report.trajectories, report.arrays, report.chunks) == (24, n_arrays, n_arrays)
    assert report.lines() == [
        f"OK: {cassie_store}: 24 trajectories, {n_arrays} arrays, {n_arrays} "
        "chunks read (CRC-32C of every chunk checked); every array matches "
        "the index."
    ]


def test_every_fault_is_one_line(cassie_copy):
    _chunk(cassie_copy, 0, "qpos").unlink()  # missing
    a, b = _chunk(cassie_copy, 1, "qvel"), _chunk(cassie_copy, 0, "qvel")
    a.write_bytes(b.read_bytes())  # swapped in
    c = _chunk(cassie_copy, 2, "action")
    data = bytearray(c.read_bytes())
    data[len(data) // 2] ^= 0x10
    c.write_bytes(bytes(data))  # flipped bit
    shutil.copytree(cassie_copy / "cassie" / "agility_reference", cassie_copy / "cassie" / "lost")
    report = verify_store(cassie_copy)
    assert not report.ok and len(report.problems) == 4, report.problems
    lines = report.lines()
    assert f"trajectory {TRAJ.format(0)} (traj_id 0), key 'qpos', chunk 0" in lines[0]
    assert "is missing" in lines[0]
    assert f"trajectory {TRAJ.format(1)} (traj_id 1), key 'qvel', chunk 0" in lines[1]
    assert "fails its checksum" in lines[1]
    assert f"trajectory {TRAJ.format(2)} (traj_id 2), key 'action', chunk 0" in lines[2]
    assert "cannot be decoded" in lines[2]
    assert "motion cassie/lost is on disk but not in the index" in lines[3]
    assert all(x.startswith("PROBLEM: ") and "\n" not in x for x in lines[:4])
    assert lines[4].startswith(f"FAILED: {cassie_copy}: 4 problem(s)")


def test_array_shape_against_the_index(cassie_copy):
    g = zarr.open_group(str(cassie_copy / TRAJ.format(0)), mode="a")
    g.create_array("qvel", shape=(3, 4), dtype="float32", overwrite=True)[...] = 0
    zarr.consolidate_metadata(str(cassie_copy))
    (problem,) = verify_store(cassie_copy).problems
    assert f"trajectory {TRAJ.format(0)} key 'qvel' is stored as (3, 4) float32" in problem


def test_malformed_index_raises(cassie_copy):
    path = cassie_copy / "zarr.json"
    path.write_text(path.read_text().replace('"dt": ', '"dt": -', 1))
    with pytest.raises(StoreFormatError, match=r"index field 'sources/.*/dt' is -"):
        verify_store(cassie_copy)


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", "verify", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_cli_exit_codes(cassie_copy, tmp_path):
    ok = _cli(cassie_copy)
    assert ok.returncode == 0 and ok.stdout.startswith(f"OK: {cassie_copy}: 24 trajectories")
    _chunk(cassie_copy, 1, "qpos").unlink()
    bad = _cli(cassie_copy)
    out = bad.stdout.splitlines()
    assert bad.returncode == 1 and len(out) == 2
    assert "traj1 (traj_id 1), key 'qpos', chunk 0" in out[0]
    assert out[1].startswith("FAILED: ")
    none = _cli(tmp_path / "nope.zarr")
    assert none.returncode == 1 and none.stderr.startswith("trajopt-loader verify: error: no store")


def test_dot_chunk_keys_verify_and_name_the_missing_file(make_npz_tree, tmp_path):
    """A store exported with ``chunk_key_separator="."``: verify reads its ``c.0.0`` files and
    names one that is gone by its key."""
    from trajopt_loader.store import export_npz

    make_npz_tree(tmp_path / "npz", {"walk": [5, 9]})
    out = tmp_path / "s.zarr"
    export_npz(
        tmp_path / "npz",
        out,
        source="s",
        progress=False,
        convention="mujoco",
        chunk_key_separator=".",
    )
    chunk_files = sorted(p.relative_to(out).as_posix() for p in out.rglob("c.*"))
    assert "s/walk/traj1/qvel/c.0.0" in chunk_files
    assert not [p for p in out.rglob("c") if p.is_dir()]  # no c/ directories
    assert verify_store(out).ok and verify_store(out).chunks == len(chunk_files)
    (out / "s/walk/traj1/qvel/c.0.0").unlink()
    report = verify_store(out)
    assert not report.ok and len(report.problems) == 1
    line = report.lines()[0]
    assert "trajectory s/walk/traj1 (traj_id 1), key 'qvel', chunk 0" in line
    assert "s/walk/traj1/qvel/c.0.0" in line and "is missing" in line, line
