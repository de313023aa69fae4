"""The root zarr.json an export writes is, byte for byte, what zarr.consolidate_metadata writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from trajopt_loader.store import TrajectoryStore, commit, export_npz, layout, root_meta


def _assert_root_is_zarrs(out) -> None:
    """The root zarr.json equals zarr's consolidation of the store (zarr re-reads every node)."""
    ours = (out / "zarr.json").read_bytes()
    commit.consolidate(str(out))  # the oracle: rewrites the root from every node's zarr.json
    theirs = (out / "zarr.json").read_bytes()
    assert ours == theirs
    meta = json.loads(theirs)["consolidated_metadata"]["metadata"]
    on_disk = {  # every node of the store is listed, no node that is gone
        str(p.parent.relative_to(out)) for p in out.rglob("zarr.json") if p.parent != out
    }
    assert set(meta) == on_disk


def _arrays(i: int, n: int) -> dict:
    rng = np.random.default_rng(i)
    return {
        "length": n,
        "contact": rng.integers(0, 2, (n, 2)).astype(np.int32),
        "body_quat": rng.standard_normal((n, 3, 4)).astype(np.float32),  # [T, nb, 4]
        "phase": np.linspace(0, 1, n),  # [T]: chunk keys c/{c}
    }


def test_root_equals_zarrs_consolidation_through_appends_sources_and_overwrite(
    make_npz_tree, tmp_path
):
    out = tmp_path / "s.zarr"
    make_npz_tree(tmp_path / "a", {"walk": [5, _arrays(1, 8000)], "Run": [3]})
    make_npz_tree(tmp_path / "b", {"jump": [4, 6]})
    make_npz_tree(tmp_path / "c", {"walk": [7]})  # replaces walk's 2 trajectories by 1
    kw = dict(progress=False, convention="mujoco")
    export_npz(tmp_path / "a", out, source="s", **kw)
    _assert_root_is_zarrs(out)
    export_npz(tmp_path / "b", out, source="s", **kw)  # a second motion of the source
    _assert_root_is_zarrs(out)
    export_npz(tmp_path / "a", out, source="other", **kw)  # a second source
    _assert_root_is_zarrs(out)
    export_npz(tmp_path / "c", out, source="s", overwrite=True, **kw)
    _assert_root_is_zarrs(out)
    assert not (out / "s" / "walk" / "traj1").exists()
    store = TrajectoryStore(out)
    assert [t.path for t in store.trajectories] == [
        "s/Run/traj0",
        "s/walk/traj0",
        "s/jump/traj0",
        "s/jump/traj1",
        "other/Run/traj0",
        "other/walk/traj0",
        "other/walk/traj1",
    ]
    np.testing.assert_array_equal(
        zarr.open_group(str(out), mode="r")["other/walk/traj1/body_quat"][...],
        _arrays(1, 8000)["body_quat"],
    )


def test_a_root_without_consolidated_metadata_is_consolidated_by_zarr(make_npz_tree, tmp_path):
    out = tmp_path / "s.zarr"
    make_npz_tree(tmp_path / "a", {"walk": [5]})
    make_npz_tree(tmp_path / "b", {"jump": [4]})
    export_npz(tmp_path / "a", out, source="s", progress=False, convention="mujoco")
    root = json.loads((out / "zarr.json").read_bytes())
    del root["consolidated_metadata"]
    (out / "zarr.json").write_text(json.dumps(root))
    assert root_meta.flat_metadata(root) is None
    export_npz(tmp_path / "b", out, source="s", progress=False, convention="mujoco")
    _assert_root_is_zarrs(out)
    index = zarr.open_group(str(out), mode="r").attrs[layout.INDEX_KEY]
    assert index["order"] == ["s/walk", "s/jump"]


def test_other_root_attributes_are_kept(make_npz_tree, tmp_path):
    out = tmp_path / "s.zarr"
    make_npz_tree(tmp_path / "a", {"walk": [5]})
    make_npz_tree(tmp_path / "b", {"jump": [4]})
    export_npz(tmp_path / "a", out, source="s", progress=False, convention="mujoco")
    root = json.loads((out / "zarr.json").read_bytes())
    root["attributes"] = {"note": "kept", **root["attributes"], "n": [1.5, None]}
    (out / "zarr.json").write_text(json.dumps(root, indent=2))
    export_npz(tmp_path / "b", out, source="s", progress=False, convention="mujoco")
    _assert_root_is_zarrs(out)
    attrs = zarr.open_group(str(out), mode="r").attrs
    assert attrs["note"] == "kept" and attrs["n"] == [1.5, None]
    assert list(attrs[layout.INDEX_KEY]["sources"]["s"]["motions"]) == ["walk", "jump"]


@pytest.mark.parametrize("indent", [None, 4])
def test_root_equals_zarrs_with_another_json_indent(make_npz_tree, tmp_path, indent):
    out = tmp_path / "s.zarr"
    make_npz_tree(tmp_path / "a", {"walk": [5, 6], "run": [3]})
    make_npz_tree(tmp_path / "b", {"jump": [4]})
    with zarr.config.set({"json_indent": indent}):
        export_npz(tmp_path / "a", out, source="s", progress=False, convention="mujoco")
        export_npz(tmp_path / "b", out, source="s", progress=False, convention="mujoco")
        _assert_root_is_zarrs(out)
    assert TrajectoryStore(out).lengths.tolist() == [3, 5, 6, 4]


def test_root_equals_zarrs_where_orjson_writes_other_tokens(make_npz_tree, tmp_path):
    """A non-ASCII file name: the index and nodes are written by the standard library's encoder
    (``store.zarr_json``), node by node, and still equal zarr's consolidation."""
    out = tmp_path / "s.zarr"
    make_npz_tree(tmp_path / "a", {"walk": [5, 6]})
    (tmp_path / "a" / "walk" / "traj_1.npz").rename(tmp_path / "a" / "walk" / "traj_1_ä.npz")
    export_npz(tmp_path / "a", out, source="s", progress=False, convention="mujoco")
    root = json.loads((out / "zarr.json").read_bytes())
    assert root_meta.zarr_json.fast(root, 2) is None  # the path under test
    _assert_root_is_zarrs(out)
    assert [t.source_file for t in TrajectoryStore(out).trajectories] == [
        "traj_0.npz",
        "traj_1_ä.npz",
    ]
