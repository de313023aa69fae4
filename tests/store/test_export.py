"""Export of .npz trees to Zarr (trajopt_loader.store.export): file order, ragged keys, atomicity on
bad values, append/overwrite."""

from __future__ import annotations

import json
import os

import google_crc32c
import numpy as np
import pytest
import zarr
from conftest import revealing

from trajopt_loader.conventions import MUJOCO, PINOCCHIO, Convention
from trajopt_loader.errors import ExportError
from trajopt_loader.store import TrajectoryStore, direct_write, export_npz


def _listing(path):
    """Every file under path with its bytes (to prove nothing changed)."""
    if not path.exists():
        return None
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def _tree(make_npz_tree, tmp_path, spec, **kw):
    return make_npz_tree(tmp_path / "npz", spec, **kw)


def test_natural_order_twelve_files(make_npz_tree, tmp_path):
    root = _tree(make_npz_tree, tmp_path, {"walk": [5 + i for i in range(12)]})
    s = export_npz(root, tmp_path / "s.zarr", source="sim", progress=False, convention="mujoco")
    assert s.motions == {"walk": 12} and s.trajectories == 12 and s.frames == sum(range(5, 17))
    store = TrajectoryStore(tmp_path / "s.zarr")
    assert [t.name for t in store.trajectories] == [f"traj{i}" for i in range(12)]
    assert [t.source_file for t in store.trajectories] == [f"traj_{i}.npz" for i in range(12)]
    assert store.trajectories[2].name == "traj2" and store.trajectories[2].length == 7
    # traj2 holds file traj_2.npz: qpos[t, j] = 100 * 2 + t + j / 100
    assert np.array_equal(store.read(2, "qpos"), revealing(2, 7, 9))
    assert np.array_equal(store.read("sim/walk/traj10", "qpos"), revealing(10, 15, 9))
    attrs = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["sim/walk/traj10"].attrs
    assert attrs["source_file"] == "traj_10.npz" and attrs["length"] == 15


def test_round_trip_is_exact(make_npz_tree, tmp_path):
    rng = np.random.default_rng(0)
    items = [
        {
            "length": n,
            "qpos": rng.standard_normal((n, 9)),
            "qvel": rng.standard_normal((n, 8)).astype(np.float32),
            "action": rng.standard_normal((n, 2)),
            "flags": rng.integers(0, 3, (n, 4), np.int16),
        }
        for n in (1, 3, 2000)
    ]
    root = _tree(make_npz_tree, tmp_path, {"m": items})
    export_npz(root, tmp_path / "s.zarr", source="src", progress=False, convention="mujoco")
    store = TrajectoryStore(tmp_path / "s.zarr")
    for i, item in enumerate(items):
        for key in ("qpos", "qvel", "action", "flags"):
            got = store.read(i, key)
            assert got.dtype == item[key].dtype and np.array_equal(got, item[key])
    assert store.trajectories[2].keys["qvel"] == ((8,), "float32")


def test_ragged_action_padded_and_reported(make_npz_tree, tmp_path):
    root = _tree(
        make_npz_tree, tmp_path, {"m": [{"length": 50, "action": revealing(0, 49, 2, 1e4)}]}
    )
    s = export_npz(root, tmp_path / "s.zarr", source="src", progress=False, convention="mujoco")
    assert s.padded == {"m/traj_0.npz": {"action": 1}}
    assert "padded (last row repeated): 1" in str(s)
    store = TrajectoryStore(tmp_path / "s.zarr")
    action = store.read(0, "action")
    assert action.shape == (50, 2) and action[49, 0] == 10048.0 and action[49, 1] == 10048.01
    assert store.trajectories[0].padded == {"action": 1}


def test_cassie_both_motions(shared_data, tmp_path):
    out = tmp_path / "x.zarr"
    with pytest.raises(ExportError, match=r"aslip_walk/traj_0.npz: key 'qvel': is missing"):
        export_npz(
            shared_data / "cassie/trajopt",
            out,
            source="cassie",
            progress=False,
            convention="mujoco",
        )
    assert not out.exists()
    s = export_npz(
        shared_data / "cassie/trajopt",
        out,
        source="cassie",
        convention="mujoco",
        allow_missing=("qvel",),
        progress=False,
    )
    assert s.motions == {"agility_reference": 3, "aslip_walk": 21}
    assert s.frames == 1682 + 1682 + 28 + 14 * 32 + 7 * 31
    store = TrajectoryStore(out)
    aslip = store.select(motions=["aslip_walk"])
    assert [store.trajectories[i].source_file for i in aslip] == [
        f"traj_{i}.npz" for i in range(21)
    ]
    assert [store.trajectories[i].scalars["speed"] for i in aslip] == pytest.approx(
        [0.1 * i for i in range(21)]
    )
    assert store.convention("cassie") == MUJOCO


def test_append_motion_and_source_and_overwrite(make_npz_tree, tmp_path):
    root = _tree(make_npz_tree, tmp_path, {"walk": [4, 5], "run": [6]})
    out = tmp_path / "s.zarr"
    export_npz(root, out, source="a", motion="walk", progress=False, convention="mujoco")
    export_npz(root, out, source="a", motion="run", progress=False, convention="mujoco")
    export_npz(root, out, source="b", motion="walk", convention="pinocchio", progress=False)
    store = TrajectoryStore(out)
    assert store.motions() == ["a/run", "a/walk", "b/walk"]  # name listing: sorted
    # ids: appended motions and sources come after the existing ones (ids never renumber)
    assert [t.path for t in store.trajectories] == [
        "a/walk/traj0",
        "a/walk/traj1",
        "a/run/traj0",
        "b/walk/traj0",
        "b/walk/traj1",
    ]
    assert store.convention("b") == PINOCCHIO and store.convention("a") == MUJOCO
    before = _listing(out)
    with pytest.raises(ExportError, match=r"already exist in .*/a; pass overwrite=True"):
        export_npz(root, out, source="a", motion="walk", progress=False, convention="mujoco")
    with pytest.raises(ExportError, match=r"source 'b' in .* has convention"):
        export_npz(root, out, source="b", motion="run", convention="mujoco", progress=False)
    assert _listing(out) == before
    make_npz_tree(tmp_path / "npz2", {"walk": [3]})
    s = export_npz(
        tmp_path / "npz2",
        out,
        source="a",
        motion="walk",
        overwrite=True,
        progress=False,
        convention="mujoco",
    )
    assert s.replaced == ["walk"] and "(replaced)" in str(s)
    store = TrajectoryStore(out)  # the replaced motion keeps its place (first)
    assert [t.path for t in store.trajectories] == [
        "a/walk/traj0",
        "a/run/traj0",
        "b/walk/traj0",
        "b/walk/traj1",
    ]
    assert store.lengths.tolist() == [3, 6, 4, 5]
    assert not (out / "a" / "walk" / "traj1").exists()
    assert np.array_equal(store.read(0, "qpos"), revealing(0, 3, 9))
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_ids_stable_when_motions_and_sources_are_appended(make_npz_tree, tmp_path):
    root = _tree(make_npz_tree, tmp_path, {"walk": [4, 5], "run": [6], "aaa": [7, 8], "hop": [9]})
    out = tmp_path / "s.zarr"
    export_npz(root, out, source="s", motion=["walk", "run"], progress=False, convention="mujoco")
    fresh = [(t.traj_id, t.path, t.length) for t in TrajectoryStore(out).trajectories]
    assert fresh == [(0, "s/run/traj0", 6), (1, "s/walk/traj0", 4), (2, "s/walk/traj1", 5)]
    export_npz(
        root, out, source="a", motion="walk", progress=False, convention="mujoco"
    )  # a source sorting first
    export_npz(
        root, out, source="s", motion=["hop", "aaa"], progress=False, convention="mujoco"
    )  # after source a's
    store = TrajectoryStore(out)
    assert [(t.traj_id, t.path, t.length) for t in store.trajectories][:3] == fresh
    assert [t.path for t in store.trajectories][3:] == [
        "a/walk/traj0",
        "a/walk/traj1",
        "s/aaa/traj0",
        "s/aaa/traj1",
        "s/hop/traj0",
    ]
    assert zarr.open_group(str(out), mode="r").attrs["trajopt_loader"]["order"] == [
        "s/run",
        "s/walk",
        "a/walk",
        "s/aaa",
        "s/hop",
    ]
    for t in store.trajectories:  # every id reads its own file's data
        i = int(t.name[4:])
        assert np.array_equal(store.read(t.traj_id, "qpos"), revealing(i, t.length, 9)), t.path
    assert store.select(motions=["walk"]).tolist() == [1, 2, 3, 4]
    assert store.select(sources=["s"]).tolist() == [0, 1, 2, 5, 6, 7]
    assert store.sources == ["a", "s"] and store.motions("s") == ["aaa", "hop", "run", "walk"]
    export_npz(
        root,
        out,
        source="s",
        motion=["run", "walk"],
        overwrite=True,
        progress=False,
        convention="mujoco",
    )
    assert TrajectoryStore(out).trajectories == store.trajectories  # replaced in place
    # a fresh export of everything lists motions by name
    export_npz(root, tmp_path / "f.zarr", source="s", progress=False, convention="mujoco")
    paths = [t.path for t in TrajectoryStore(tmp_path / "f.zarr").trajectories]
    assert paths == [
        "s/aaa/traj0",
        "s/aaa/traj1",
        "s/hop/traj0",
        "s/run/traj0",
        "s/walk/traj0",
        "s/walk/traj1",
    ]


def test_custom_convention_recorded(make_npz_tree, tmp_path):
    root = _tree(make_npz_tree, tmp_path, {"m": [3]})
    conv = Convention("xyzw", "world", "body")
    export_npz(root, tmp_path / "s.zarr", source="s", convention=conv, progress=False)
    assert TrajectoryStore(tmp_path / "s.zarr").convention("s") == conv


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            {"qvel": np.full((10, 8), np.nan)},
            r"m/traj_1.npz: key 'qvel': has a non-finite value nan "
            r"at row 0, column \(0,\)",
        ),
        (
            {"qpos": np.zeros((0, 9)), "qvel": np.zeros((0, 8)), "action": np.zeros((0, 2))},
            r"m/traj_1.npz: key 'qpos': has 0 rows",
        ),
        (
            {"weird": np.array([b"x"] * 10, dtype=object)},
            r"m/traj_1.npz: key 'weird': needs pickle",
        ),
    ],
)
def test_failed_export_writes_nothing(make_npz_tree, tmp_path, bad, match):
    root = _tree(make_npz_tree, tmp_path, {"m": [10, dict(length=10, **bad), 10]})
    out = tmp_path / "s.zarr"
    with pytest.raises(ExportError, match=match):
        export_npz(root, out, source="s", progress=False, convention="mujoco")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["npz"]
    make_npz_tree(tmp_path / "ok", {"good": [4]})
    export_npz(tmp_path / "ok", out, source="s", progress=False, convention="mujoco")
    before = _listing(out)
    with pytest.raises(ExportError, match=match):
        export_npz(root, out, source="s", progress=False, convention="mujoco")
    assert _listing(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["npz", "ok", "s.zarr"]


def test_failure_while_writing_leaves_store_unchanged(make_npz_tree, tmp_path):
    root = _tree(make_npz_tree, tmp_path, {"m": [4, 5, 6]})
    out = tmp_path / "s.zarr"
    export_npz(root, out, source="s", motion="m", progress=False, convention="mujoco")
    before = _listing(out)

    def preprocess(arrays, dt, source_file):
        if source_file == "traj_2.npz":
            raise RuntimeError("preprocess failed")
        return arrays, dt, {}

    with pytest.raises(RuntimeError, match="preprocess failed"):
        export_npz(
            root,
            out,
            source="s",
            motion="m",
            overwrite=True,
            preprocess=preprocess,
            progress=False,
            convention="mujoco",
        )
    assert _listing(out) == before
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_preprocess_output_recorded(make_npz_tree, tmp_path):
    root = _tree(make_npz_tree, tmp_path, {"m": [{"length": 4, "qvel": None}]})

    def preprocess(arrays, dt, source_file):
        qvel = np.diff(arrays["qpos"][:, 1:], axis=0, append=arrays["qpos"][-1:, 1:]) / dt
        return {**arrays, "qvel": qvel}, dt, {"qvel": "finite differences"}

    export_npz(
        root,
        tmp_path / "s.zarr",
        source="s",
        allow_missing=("qvel",),
        preprocess=preprocess,
        progress=False,
        convention="mujoco",
    )
    store = TrajectoryStore(tmp_path / "s.zarr")
    assert store.trajectories[0].derived == {"qvel": "finite differences"}
    assert np.allclose(store.read(0, "qvel")[:3], 100.0)  # qpos rises by 1 per 0.01 s

    # A preprocess that derives qvel needs no allow_missing; one that does not is refused after it
    # ran, naming the file, and nothing is written.
    export_npz(
        root,
        tmp_path / "t.zarr",
        source="s",
        preprocess=preprocess,
        progress=False,
        convention="mujoco",
    )
    assert TrajectoryStore(tmp_path / "t.zarr").trajectories[0].derived == {
        "qvel": "finite differences"
    }
    with pytest.raises(ExportError, match=r"m/traj_0.npz: key 'qvel' is missing after preprocess"):
        export_npz(
            root,
            tmp_path / "u.zarr",
            source="s",
            progress=False,
            preprocess=lambda arrays, dt, f: (arrays, dt, {}),
            convention="mujoco",
        )
    assert _listing(tmp_path / "u.zarr") in (None, {})


def test_motion_from_root_itself_and_max_trajs(make_npz_tree, tmp_path):
    root = make_npz_tree(tmp_path / "flat", {"": [3, 4, 5]})
    s = export_npz(
        root,
        tmp_path / "s.zarr",
        source="s",
        motion="hop",
        max_trajs_per_motion=2,
        progress=False,
        convention="mujoco",
    )
    assert s.motions == {"hop": 2}
    assert TrajectoryStore(tmp_path / "s.zarr").lengths.tolist() == [3, 4]
    with pytest.raises(ExportError, match=r"holds 3 .npz files directly: pass motion=NAME"):
        export_npz(root, tmp_path / "t.zarr", source="s", progress=False, convention="mujoco")


def test_option_errors(make_npz_tree, tmp_path):
    root = _tree(make_npz_tree, tmp_path, {"m": [3]})
    with pytest.raises(ExportError, match=r"duplicate motion names \['m'\]"):
        export_npz(
            root,
            tmp_path / "s.zarr",
            source="s",
            motion=["m", "m"],
            progress=False,
            convention="mujoco",
        )
    with pytest.raises(ExportError, match=r"source name 'a/b' is not valid"):
        export_npz(root, tmp_path / "s.zarr", source="a/b", progress=False, convention="mujoco")
    with pytest.raises(ExportError, match=r"max_trajs_per_motion=0 must be >= 1"):
        export_npz(
            root,
            tmp_path / "s.zarr",
            source="s",
            max_trajs_per_motion=0,
            progress=False,
            convention="mujoco",
        )
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(ExportError, match=r"exists and is not a Zarr v3 store"):
        export_npz(root, tmp_path / "junk", source="s", progress=False, convention="mujoco")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w").attrs["x"] = 1
    with pytest.raises(ExportError, match=r"not a trajopt-loader store"):
        export_npz(root, tmp_path / "other.zarr", source="s", progress=False, convention="mujoco")


def test_index_chunks_codec_and_consolidated_metadata(make_npz_tree, tmp_path):
    root = _tree(make_npz_tree, tmp_path, {"m": [{"length": 5000, "qpos": np.zeros((5000, 40))}]})
    export_npz(root, tmp_path / "s.zarr", source="s", progress=False, convention="mujoco")
    meta = json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())
    index = meta["attributes"]["trajopt_loader"]
    entry = index["sources"]["s"]["motions"]["m"][0]
    assert index["format_version"] == 2 and index["sources"]["s"]["convention"]["name"] == "mujoco"
    crcs = [google_crc32c.value(bytes(n * 40 * 8)) for n in (1638, 1638, 1638, 86)]  # 5000 rows
    assert entry["keys"]["qpos"] == {
        "shape": [40],
        "dtype": "float64",
        "chunk_rows": 1638,
        "crc32c": crcs,
    }
    assert entry["keys"]["action"]["chunk_rows"] == 5000  # 16-byte rows: whole trajectory
    assert "s/m/traj0/qpos" in meta["consolidated_metadata"]["metadata"]
    arr = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["s/m/traj0/qpos"]
    assert arr.chunks == (1638, 40) and type(arr.compressors[0]).__name__ == "BloscCodec"
    assert type(arr.compressors[1]).__name__ == "Crc32cCodec"
    assert (
        len(os.listdir(tmp_path / "s.zarr" / "s" / "m" / "traj0" / "qpos" / "c")) == 4
    )  # zeros too
    os.remove(tmp_path / "s.zarr" / "s" / "m" / "zarr.json")  # listing-free open via the index
    assert TrajectoryStore(tmp_path / "s.zarr").read(0, "qpos").shape == (5000, 40)


def test_summary_text(make_npz_tree, tmp_path):
    root = _tree(make_npz_tree, tmp_path, {"m": [{"length": 6, "extra": np.zeros((2, 2))}]})
    s = export_npz(root, tmp_path / "s.zarr", source="s", progress=False, convention="mujoco")
    text = str(s)
    assert text.splitlines()[0].startswith("exported 1 trajectories, 6 frames")
    assert "  s/m: 1 trajectories" in text
    assert "skipped arrays: 1\n    m/traj_0.npz: extra (2, 2) skipped (qpos has 6 rows)" in text
    assert s.bytes == 6 * (9 + 8 + 2) * 8


def test_failed_commit_rolls_back(make_npz_tree, tmp_path, monkeypatch):
    root = _tree(make_npz_tree, tmp_path, {"m": [4, 5]})
    out = tmp_path / "s.zarr"
    export_npz(root, out, source="s", progress=False, convention="mujoco")
    before = _listing(out)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(direct_write, "put", fail)  # the root zarr.json write: the commit point
    with pytest.raises(ExportError, match="new.zarr.*disk full"):
        export_npz(root, tmp_path / "new.zarr", source="s", progress=False, convention="mujoco")
    assert not (tmp_path / "new.zarr").exists()
    make_npz_tree(tmp_path / "npz2", {"m": [7]})
    with pytest.raises(ExportError, match="disk full"):
        export_npz(
            tmp_path / "npz2", out, source="s", overwrite=True, progress=False, convention="mujoco"
        )
    assert _listing(out) == before
    monkeypatch.undo()
    assert TrajectoryStore(out).lengths.tolist() == [4, 5]
    assert np.array_equal(TrajectoryStore(out).read(1, "qpos"), revealing(1, 5, 9))


def test_convention_is_required_never_guessed(make_npz_tree, tmp_path):
    make_npz_tree(tmp_path / "npz", {"walk": [5]})
    with pytest.raises(ExportError, match=r"convention=\.\.\.\) is required and never guessed"):
        export_npz(tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False)
    assert not (tmp_path / "s.zarr").exists()  # nothing written


def test_remote_export_with_a_bad_file_writes_nothing(make_npz_tree, tmp_path):
    """Remote stores are written in place: every file is checked before the first write."""
    import fsspec

    make_npz_tree(tmp_path / "npz", {"a": [4], "b": [5, {"length": 6, "qvel": None}]})
    out = "memory://trajopt-loader-export-test/s.zarr"
    with pytest.raises(ExportError, match=r"b/traj_1.npz: key 'qvel': is missing"):
        export_npz(
            tmp_path / "npz",
            out,
            source="s",
            progress=False,
            convention="mujoco",
            single_writer=True,
        )
    assert not fsspec.filesystem("memory").exists("/trajopt-loader-export-test/s.zarr")
