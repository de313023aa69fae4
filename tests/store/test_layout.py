"""Store layout helpers (trajopt_loader.store.layout): natural order, chunk sizes, index parsing."""

from __future__ import annotations

import json

import pytest

from trajopt_loader.errors import ExportError
from trajopt_loader.store.layout import (
    CHUNK_BYTES,
    check_node_name,
    chunk_rows,
    infos_from_index,
    is_url,
    local_path,
    motion_order,
    natural_key,
)


def test_natural_order():
    names = [f"traj_{i}.npz" for i in range(12)]
    assert sorted(names, key=natural_key) == names
    assert sorted(names)[:4] == ["traj_0.npz", "traj_1.npz", "traj_10.npz", "traj_11.npz"]
    assert sorted(["b2", "a10", "a2", "A3"], key=natural_key) == ["a2", "A3", "a10", "b2"]


def test_chunk_rows_whole_rows_about_512_kib():
    assert CHUNK_BYTES == 512 * 1024
    assert chunk_rows((35,), "float64", 10**6) == 524288 // 280 == 1872
    assert chunk_rows((35,), "float64", 1682) == 1682  # a whole Cassie trajectory is one chunk
    assert chunk_rows((), "float32", 10**6) == 131072
    assert chunk_rows((1000, 1000), "float64", 50) == 1  # huge rows: one row per chunk
    assert chunk_rows((3,), "float64", 0) == 1


@pytest.mark.parametrize("name", ["a/b", ".hidden", "__x", "", "a b"])
def test_bad_node_names(name):
    with pytest.raises(ExportError, match="motion name .* is not valid"):
        check_node_name(name, "motion", ExportError)


def test_infos_from_index_global_order_is_index_order():
    def entry(name, n):
        return {
            "name": name,
            "length": n,
            "dt": 0.01,
            "source_file": f"{name}.npz",
            "keys": {"qpos": {"shape": [7], "dtype": "float32", "chunk_rows": 5}},
        }

    index = {
        "format_version": 1,
        "sources": {
            "z": {"convention": {}, "motions": {"m": [entry("traj0", 3)]}},
            "a": {
                "convention": {},
                "motions": {
                    "walk": [entry("traj0", 4), entry("traj1", 5)],
                    "run": [entry("traj0", 6)],
                },
            },
        },
    }
    infos = infos_from_index(index)  # no "order" (older stores): nesting order, never sorted
    assert [(i.traj_id, i.path, i.length) for i in infos] == [
        (0, "z/m/traj0", 3),
        (1, "a/walk/traj0", 4),
        (2, "a/walk/traj1", 5),
        (3, "a/run/traj0", 6),
    ]
    assert infos_from_index(json.loads(json.dumps(index))) == infos  # JSON keeps object order
    assert infos[1].keys == {"qpos": ((7,), "float32")} and infos[1].chunk_rows == {"qpos": 5}
    # "order" (written by export) wins; unlisted motions follow in nesting order, unknown skipped
    index["order"] = ["a/run", "gone/m", "z/m"]
    assert motion_order(index) == [("a", "run"), ("z", "m"), ("a", "walk")]
    assert [(i.traj_id, i.path) for i in infos_from_index(index)] == [
        (0, "a/run/traj0"),
        (1, "z/m/traj0"),
        (2, "a/walk/traj0"),
        (3, "a/walk/traj1"),
    ]


def test_urls():
    assert is_url("s3://bucket/x.zarr") and is_url("https://h/x.zarr")
    assert not is_url("/tmp/x.zarr") and not is_url("file:///tmp/x.zarr")
    assert local_path("file:///tmp/x.zarr") == "/tmp/x.zarr"
