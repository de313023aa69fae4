"""Whole keys decoded straight into the cache's rows equal zarr's read; damage still fails loud."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from trajopt_loader.errors import DataIntegrityError
from trajopt_loader.store import TrajectoryStore, export_npz


@pytest.fixture
def store_path(make_npz_tree, tmp_path):
    make_npz_tree(tmp_path / "npz", {"a": [7, 30, 1], "b": [5, 8000]})  # 8000 rows: 2 chunks
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    return tmp_path / "s.zarr"


def test_in_place_decode_equals_zarrs_rows(store_path):
    store = TrajectoryStore(store_path)
    ids = np.arange(len(store.trajectories))
    flat = {i: np.full((int(store.lengths[i]), 9), np.nan) for i in ids}
    got = dict(store.read_whole("qpos", ids, dest=flat.get))
    root = zarr.open_group(str(store_path), mode="r")
    for i in ids:
        info = store.trajectories[int(i)]
        want = root[f"{info.path}/qpos"][...]
        in_place = info.length < 8000  # one chunk: decoded into flat[i]; two: returned
        assert (got[i] is None) == in_place, (info.path, info.length)
        np.testing.assert_array_equal(flat[i] if in_place else got[i], want)
    store.warm(("qpos",))  # the cache fills through the same path
    for i in ids:
        want = root[f"{store.trajectories[int(i)].path}/qpos"][...]
        np.testing.assert_array_equal(store.read(int(i), "qpos"), want)


def test_in_place_decode_of_a_damaged_chunk_raises_naming_it(store_path):
    chunk = store_path / "s" / "a" / "traj1" / "qpos" / "c" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[40] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    store = TrajectoryStore(store_path)
    with pytest.raises(DataIntegrityError, match=r"s/a/traj1.*'qpos'"):
        store.warm(("qpos",))
