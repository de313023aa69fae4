"""Trajectory files written directly equal, byte for byte, what zarr writes for the same data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from trajopt_loader.store import TrajectoryStore, direct_write, export_npz, layout
from trajopt_loader.store.export_write import write_traj
from trajopt_loader.store.validate import LoadedTrajectory


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _traj(length: int, seed: int) -> LoadedTrajectory:
    rng = np.random.default_rng(seed)
    arrays = {
        "qpos": rng.standard_normal((length, 9)),  # float64; 8000 rows: 2 chunks, last padded
        "qvel": rng.standard_normal((length, 8)).astype(np.float32),
        "body_quat": rng.standard_normal((length, 3, 4)).astype(np.float32),  # [T, nb, 4]
        "contact": rng.integers(0, 2, (length, 2)).astype(np.int32),
        "phase": np.zeros((length, 1)),  # all fill value: still every chunk written
        "time": np.arange(length, dtype=np.float64),  # [T]: chunk keys c/{c}
    }
    return LoadedTrajectory(
        source_file=f"t{seed}.npz",
        arrays=arrays,
        length=length,
        dt=0.01 if seed else float("nan"),
        rows_in_file=length,
        scalars={"speed": 1.5},
        padded={"action": 1} if seed else {},
    )


@pytest.mark.parametrize("sep", layout.CHUNK_KEY_SEPARATORS)
@pytest.mark.parametrize("length", [1, 7, 8000])
def test_direct_files_equal_zarrs_and_zarr_reads_them(tmp_path, length, sep, monkeypatch):
    t = _traj(length, seed=length % 3)
    direct = zarr.open_group(str(tmp_path / "d" / "m"), mode="w")
    assert direct_write.local_dir(direct) == tmp_path / "d" / "m"
    entry, nodes, nbytes = write_traj(direct, "traj0", t, sep)
    with monkeypatch.context() as m:  # the same call through zarr's array writes
        m.setattr(direct_write, "local_dir", lambda group: None)
        z = zarr.open_group(str(tmp_path / "z" / "m"), mode="w")
        assert write_traj(z, "traj0", t, sep) == (entry, None, None)
    want, got = _files(tmp_path / "z"), _files(tmp_path / "d")
    # the node metadata returned is what zarr reads back from the files
    assert nbytes == sum(len(v) for k, v in got.items() if k.startswith("m/traj0"))
    assert {k: json.loads(got[f"m/{k}/zarr.json"]) for k in nodes if k != "traj0"} == {
        k: v for k, v in nodes.items() if k != "traj0"
    }
    assert json.loads(got["m/traj0/zarr.json"])["attributes"] == nodes["traj0"]["attributes"]
    n_chunks = sum(-(-length // entry["keys"][k]["chunk_rows"]) for k in t.arrays)
    assert sorted(got) == sorted(want) and len(want) == 2 + len(t.arrays) + n_chunks
    assert [k for k in want if got[k] != want[k]] == []
    # the chunk files are where zarr's chunk key encoding puts them, named by layout.chunk_key
    g = zarr.open_group(str(tmp_path / "d" / "m" / "traj0"), mode="r")
    for key, a in t.arrays.items():
        assert g[key].metadata.chunk_key_encoding.separator == sep
        keys = [layout.chunk_key(c, a.ndim - 1, sep) for c in range(g[key].cdata_shape[0])]
        assert keys == [
            g[key].metadata.encode_chunk_key((c,) + (0,) * (a.ndim - 1))
            for c in range(g[key].cdata_shape[0])
        ]
        assert all(f"m/traj0/{key}/{k}" in got for k in keys)
        assert entry["keys"][key].get("chunk_key_separator", "/") == sep
    dirs = [p for p in (tmp_path / "d" / "m" / "traj0").rglob("*") if p.is_dir()]
    if sep == ".":  # no directory below an array's
        assert sorted(p.name for p in dirs) == sorted(t.arrays)
    assert dict(g.attrs) == zarr.open_group(str(tmp_path / "z" / "m" / "traj0")).attrs.asdict()
    for key, a in t.arrays.items():
        np.testing.assert_array_equal(g[key][...], a)
        assert g[key].dtype == a.dtype


@pytest.mark.parametrize("sep", layout.CHUNK_KEY_SEPARATORS)
def test_exported_store_opens_consolidated_and_reads_the_rows(make_npz_tree, tmp_path, sep):
    make_npz_tree(tmp_path / "npz", {"a": [7, 30], "b": [5, 8000]})
    export_npz(
        tmp_path / "npz",
        tmp_path / "s.zarr",
        source="s",
        progress=False,
        convention="mujoco",
        chunk_key_separator=sep,
    )
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="r", use_consolidated=True)
    store = TrajectoryStore(tmp_path / "s.zarr")
    assert len(store.trajectories) == 4 and root.attrs[layout.INDEX_KEY]["format_version"] >= 2
    for info in store.trajectories:
        npz = np.load(tmp_path / "npz" / info.motion / info.source_file)
        for key in info.keys:
            np.testing.assert_array_equal(root[f"{info.path}/{key}"][...], npz[key][: info.length])
            np.testing.assert_array_equal(store.read(info.path, key), npz[key][: info.length])
