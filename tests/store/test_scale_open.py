"""Bulk first touch and concurrent export on a store of many small clips.

The bulk first touch (``store.bulk_read``: chunk files read together and decoded outside zarr)
must return the bytes the checked zarr read returns, and fall back to it (so to its named
``DataIntegrityError``) for a damaged or missing chunk. The concurrent export must write the
same files as a one-at-a-time export.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import revealing

from trajopt_loader.errors import DataIntegrityError
from trajopt_loader.store import TrajectoryStore, bulk_read, export_npz, parallel_io

LENGTHS = {
    "a": [7, 30, 1],
    "b": [12] * 20,
    "c": [5, 8000],
}  # 8000 rows of qpos 9 (float64): 2 chunks


@pytest.fixture(scope="module", params=["/", "."], ids=["slash", "dot"])
def many(tmp_path_factory, request) -> Path:
    """Exported with both chunk key separators (``layout.chunk_key``)."""
    from conftest import _make_npz_tree

    tmp = tmp_path_factory.mktemp("many")
    _make_npz_tree(tmp / "npz", LENGTHS, nq=9, nv=8, nu=2)
    export_npz(
        tmp / "npz",
        tmp / "s.zarr",
        source="s",
        progress=False,
        convention="mujoco",
        chunk_key_separator=request.param,
    )
    return tmp


def _sep(store_path: Path) -> str:
    return TrajectoryStore(store_path).trajectories[0].chunk_key_separator.get("qpos", "/")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.parametrize("threads", [1, 3])
def test_bulk_first_touch_equals_the_checked_zarr_read(many, monkeypatch, threads):
    monkeypatch.setattr(bulk_read, "LOCAL_DECODE_THREADS", threads)  # in line, or a pool
    store = TrajectoryStore(many / "s.zarr", cache_dtype=None)
    store.warm(("qpos", "qvel", "action"))
    assert store.cache_info()["whole_keys"] == ["action", "qpos", "qvel"]
    oracle = TrajectoryStore(many / "s.zarr", cache_bytes=0)
    assert max(len(t.crc32c["qpos"]) for t in store.trajectories) == 2
    fast = dict(
        bulk_read.read_whole(
            str(many / "s.zarr"),
            store.trajectories,
            "qpos",
            lambda i: pytest.fail(f"traj {i} fell back to zarr"),
        )
    )
    assert sorted(fast) == list(range(len(store.trajectories)))  # no fallback on a clean store
    for info in store.trajectories:
        i = int(info.source_file.split("_")[1].split(".")[0])
        for key in ("qpos", "qvel", "action"):
            got = store.read(info.traj_id, key)  # from the whole-key cache
            want = oracle._read_rows(info.traj_id, key, 0, info.length)  # zarr, checked
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (info.path, key)
        np.testing.assert_array_equal(
            store.read(info.traj_id, "qpos"), revealing(i, info.length, 9)
        )


@pytest.mark.parametrize("damage", ["flip", "delete", "truncate"])
def test_bulk_first_touch_falls_back_to_the_named_error(many, tmp_path, damage):
    out = tmp_path / "s.zarr"
    shutil.copytree(many / "s.zarr", out)
    info = TrajectoryStore(out).info("s/c/traj1")
    chunk = out / bulk_read.chunk_keys(info, "qpos")[1]  # qpos/c/1/0 or qpos/c.1.0
    assert (
        chunk.relative_to(out / info.path).as_posix()
        == {"/": "qpos/c/1/0", ".": "qpos/c.1.0"}[_sep(out)]
    )
    raw = chunk.read_bytes()
    if damage == "flip":
        chunk.write_bytes(raw[:20] + bytes([raw[20] ^ 0xFF]) + raw[21:])
    elif damage == "delete":
        chunk.unlink()
    else:
        chunk.write_bytes(raw[:-9])
    store = TrajectoryStore(out)
    with pytest.raises(DataIntegrityError, match=r"s/c/traj1.*'qpos', chunk 1"):
        store.warm(("qpos",))
    store.warm(("qvel",))  # an undamaged key still loads
    np.testing.assert_array_equal(store.read("s/c/traj1", "qvel"), revealing(1, 8000, 8, base=-1e4))


def test_concurrent_export_writes_the_same_files_as_one_at_a_time(many, tmp_path, monkeypatch):
    kw = dict(
        source="s", progress=False, convention="mujoco", chunk_key_separator=_sep(many / "s.zarr")
    )
    monkeypatch.setattr(parallel_io, "EXPORT_THREADS", 3)
    export_npz(many / "npz", tmp_path / "par.zarr", **kw)
    monkeypatch.setattr(parallel_io, "EXPORT_THREADS", 1)
    export_npz(many / "npz", tmp_path / "seq.zarr", **kw)
    par, seq = _files(tmp_path / "par.zarr"), _files(tmp_path / "seq.zarr")
    assert sorted(par) == sorted(seq) and len(par) > 3 * sum(map(len, LENGTHS.values()))
    assert all(par[k] == seq[k] for k in seq), [k for k in seq if par[k] != seq[k]][:3]


def test_export_error_in_a_worker_thread_reaches_the_caller(many, tmp_path):
    from trajopt_loader.errors import ExportError

    npz = tmp_path / "npz"
    shutil.copytree(many / "npz", npz)
    (npz / "b" / "traj_7.npz").write_bytes(b"not a zip")
    with pytest.raises(ExportError, match="traj_7.npz"):
        export_npz(npz, tmp_path / "bad.zarr", source="s", progress=False, convention="mujoco")
    assert not (tmp_path / "bad.zarr" / "s").exists()


def test_ordered_map_keeps_order_and_raises_the_first_error():
    assert list(parallel_io.ordered_map(lambda x: x * x, range(50), 8)) == [
        x * x for x in range(50)
    ]

    def boom(x):
        if x in (7, 30):
            raise ValueError(f"item {x}")
        return x

    with pytest.raises(ValueError, match="item 7"):
        list(parallel_io.ordered_map(boom, range(50), 8))


def test_ordered_map_window_bounds_the_items_started_ahead():
    import threading

    started, lock = [], threading.Lock()

    def fn(x):
        with lock:
            started.append(x)
        return x

    got = []
    for x in parallel_io.ordered_map(fn, range(100), 4, window=8):
        with lock:  # never more than 8 items started past the one yielded
            assert len(started) <= x + 8
        got.append(x)
    assert got == list(range(100)) and sorted(started) == got


def test_cache_share_holds_only_its_trajectories_and_widens_on_demand(many):
    store = TrajectoryStore(many / "s.zarr")
    ids = [0, 3, 4]
    store.cache.share(ids)
    store.warm(("qpos",))
    np.testing.assert_array_equal(store.cache.held("qpos"), ids)
    lengths = store.lengths.astype(np.int64)
    assert store.cache_info()["bytes_used"] == lengths[ids].sum() * 9 * 8
    steps = np.zeros((2, 3), np.int64) + [0, 1, 2]
    got = store.gather("qpos", [4, 5], steps)  # 5 is outside the share: reloaded with it
    np.testing.assert_array_equal(
        got, np.stack([store.read(4, "qpos")[:3], store.read(5, "qpos")[:3]])
    )
    np.testing.assert_array_equal(store.cache.held("qpos"), [0, 3, 4, 5])
    assert store.cache_info()["bytes_used"] == lengths[[0, 3, 4, 5]].sum() * 9 * 8


def test_root_index_read_without_zarr_equals_zarrs_attrs(many, tmp_path):
    import json

    import zarr

    from trajopt_loader.store import layout
    from trajopt_loader.store.root_index import parse_attrs, read_root_index

    out = many / "s.zarr"
    want = zarr.open_group(str(out), mode="r").attrs[layout.INDEX_KEY]
    assert read_root_index(str(out), None, 5.0, 0) == want
    doc = json.loads((out / "zarr.json").read_bytes())
    reordered = {"zarr_format": 3, "node_type": "group", "attributes": doc["attributes"]}
    assert parse_attrs(json.dumps(reordered).encode()) == doc["attributes"]  # whole-JSON path
    assert parse_attrs(b'{"attributes": {"a": [1, 2]}, "zarr_format": 3}') == {"a": [1, 2]}
    for bad in (b"", b"not json", b'{"attributes": [1]}', b'{"zarr_format": 2}', b"\xff\xfe"):
        assert parse_attrs(bad) is None, bad
    assert read_root_index(str(tmp_path / "nothing"), None, 5.0, 0) is None
