"""A read returns the stored rows or raises DataIntegrityError naming store, trajectory, key, chunk.

Faults are injected into copies of real stores: a deleted chunk file / trajectory directory /
store, flipped bits, chunk files swapped between trajectories. Format-1 stores (no checksums)
stay readable and still refuse a missing chunk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import revealing
from zarr.codecs import BloscCodec

from trajopt_loader.configs import load_config
from trajopt_loader.errors import DataIntegrityError, ExportError
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.store import TrajectoryStore, export_npz, layout

TRAJ0 = "cassie/agility_reference/traj0"


@pytest.fixture
def cassie_copy(cassie_store, tmp_path) -> Path:
    out = tmp_path / "cassie.zarr"
    shutil.copytree(cassie_store, out)
    return out


@pytest.fixture
def long_store(make_npz_tree, tmp_path) -> Path:
    """Two trajectories of 4000 rows.

    qpos (40 float64 columns) is chunks of 1638, 1638, 724 rows.
    """
    make_npz_tree(tmp_path / "npz", {"m": [4000, 4000]}, nq=40)
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    return tmp_path / "s.zarr"


def _chunk(store: Path, path: str, key: str, c: int) -> Path:
    return store / path / key / "c" / str(c) / "0"


def _raises(fn, *patterns: str) -> str:
    with pytest.raises(DataIntegrityError) as e:
        fn()
    for p in patterns:
        assert p in str(e.value), (p, str(e.value))
    return str(e.value)


def test_clean_store_reads_exact_rows_across_chunks(long_store):
    store = TrajectoryStore(long_store, cache_bytes=0)
    assert store.info(1).chunk_rows["qpos"] == 1638 and len(store.info(1).crc32c["qpos"]) == 3
    np.testing.assert_array_equal(
        store.read(1, "qpos", 1600, 3950), revealing(1, 4000, 40)[1600:3950]
    )
    np.testing.assert_array_equal(
        store.gather("qpos", [1, 0], [[1637, 1638], [3999, 0]]),
        np.stack([revealing(1, 4000, 40)[[1637, 1638]], revealing(0, 4000, 40)[[3999, 0]]]),
    )


@pytest.mark.parametrize("cache_bytes", [2**31, 0])
def test_deleted_chunk_file_raises_naming_the_chunk(cassie_copy, cache_bytes):
    _chunk(cassie_copy, TRAJ0, "qpos", 0).unlink()
    store = TrajectoryStore(cassie_copy, cache_bytes=cache_bytes)
    where = [
        str(cassie_copy),
        f"trajectory {TRAJ0} (traj_id 0)",
        "key 'qpos'",
        "chunk 0",
        f"{TRAJ0}/qpos/c/0/0",
        "is missing",
        f"trajopt-loader verify {cassie_copy}",
    ]
    _raises(lambda: store.read(0, "qpos"), *where)
    _raises(lambda: store.gather("qpos", [0], [[0, 1]]), *where)
    np.testing.assert_array_equal(
        store.read(1, "qpos"), TrajectoryStore(cassie_copy).read(1, "qpos")
    )


def test_deleted_trajectory_dir_raises(cassie_copy):
    shutil.rmtree(cassie_copy / "cassie" / "aslip_walk" / "traj3")
    store = TrajectoryStore(cassie_copy)
    tid = store.info("cassie/aslip_walk/traj3").traj_id
    _raises(
        lambda: store.read(tid, "qpos"),
        "trajectory cassie/aslip_walk/traj3",
        "key 'qpos'",
        "chunk 0",
        "is missing",
    )


def test_make_dataset_raises_on_a_missing_chunk_instead_of_zero_windows(cassie_copy):
    _chunk(cassie_copy, TRAJ0, "qpos", 0).unlink()
    config = load_config(
        "default",
        {
            "num_envs": 4,
            "window_size": 4,
            "zarr_path": str(cassie_copy),
            "keys": ("qpos",),
            "motions": ("agility_reference",),
            "allow_mixed_dt": True,
        },
    )
    with pytest.raises(DataIntegrityError, match=f"trajectory {TRAJ0} .*key 'qpos', chunk 0"):
        next(iter(make_dataset(config, process_index=0, process_count=1)))


def test_store_deleted_while_streaming_with_a_small_cache_raises(long_store):
    store = TrajectoryStore(long_store, cache_bytes=2 * 1638 * 40 * 8)  # two qpos chunks
    config = load_config(
        "default",
        {
            "num_envs": 2,
            "window_size": 8,
            "keys": ("qpos",),
            "cyclic": False,
            "schedule": "sequential",
            "stride": 900,
            "episode_length": 0,
        },
    )  # march through all chunks
    it = iter(make_dataset(config, store, 0, 1))
    first = next(it)
    np.testing.assert_array_equal(first["qpos"][0], revealing(0, 4000, 40)[:8].astype(np.float32))
    shutil.rmtree(long_store)
    with pytest.raises(
        DataIntegrityError,
        match=r"trajectory s/m/traj\d .*key 'qpos', chunk \d "
        r".*is missing",
    ):
        for _ in range(20):
            next(it)


def test_flipped_bits_raise_naming_the_chunk(long_store):
    path = _chunk(long_store, "s/m/traj1", "qpos", 1)
    clean = path.read_bytes()
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(clean) * 8, 40, replace=False):  # 40 single-bit flips
        bad = bytearray(clean)
        bad[pos // 8] ^= 1 << (pos % 8)
        path.write_bytes(bytes(bad))
        store = TrajectoryStore(long_store, cache_bytes=0)
        _raises(
            lambda store=store: store.read(1, "qpos", 2000, 2001),
            "trajectory s/m/traj1 (traj_id 1)",
            "key 'qpos', chunk 1 (rows [1638, 3276)",
            "cannot be decoded",
            "checksum",
        )
    path.write_bytes(clean)
    np.testing.assert_array_equal(
        TrajectoryStore(long_store).read(1, "qpos"), revealing(1, 4000, 40)
    )


def test_chunk_swapped_with_another_trajectorys_raises(cassie_copy):
    a, b = _chunk(cassie_copy, TRAJ0, "qvel", 0), _chunk(cassie_copy, TRAJ0[:-1] + "1", "qvel", 0)
    store = TrajectoryStore(cassie_copy)
    assert store.info(0).length == store.info(1).length  # same shape: zarr decodes either
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    _raises(
        lambda: store.read(0, "qvel"),
        f"trajectory {TRAJ0}",
        "key 'qvel', chunk 0",
        "fails its checksum",
    )
    _raises(lambda: TrajectoryStore(cassie_copy).warm(["qvel"]), "fails its checksum")


def test_array_shape_differing_from_the_index_raises(long_store):
    g = zarr.open_group(str(long_store / "s" / "m" / "traj0"), mode="a")
    g.create_array("qpos", shape=(10, 40), dtype="float64", overwrite=True)[...] = 1.0
    zarr.consolidate_metadata(str(long_store))
    _raises(
        lambda: TrajectoryStore(long_store).read(0, "qpos"),
        "trajectory s/m/traj0 key 'qpos' is stored as (10, 40) float64",
        "index says (4000, 40)",
    )


def _as_format_1(store: Path) -> None:
    """Rewrite ``store`` as format_version 1 wrote it: Blosc only, no checksums in the index."""
    root = zarr.open_group(str(store), mode="a", use_consolidated=False)
    index = json.loads(json.dumps(root.attrs[layout.INDEX_KEY]))
    for src, body in index["sources"].items():
        for motion, entries in body["motions"].items():
            for e in entries:
                for key, spec in e["keys"].items():
                    spec.pop("crc32c")
                    g = zarr.open_group(str(store / src / motion / e["name"]), mode="a")
                    data = np.asarray(g[key][...])
                    g.create_array(
                        key,
                        shape=data.shape,
                        dtype=data.dtype,
                        chunks=(spec["chunk_rows"], *data.shape[1:]),
                        compressors=BloscCodec(**layout.BLOSC),
                        overwrite=True,
                    )[...] = data
    index["format_version"] = 1
    root.attrs[layout.INDEX_KEY] = index
    zarr.consolidate_metadata(str(store))


def test_format_1_store_stays_readable_and_refuses_a_missing_chunk(long_store):
    _as_format_1(long_store)
    store = TrajectoryStore(long_store, cache_bytes=0)
    assert store.info(0).crc32c == {}
    np.testing.assert_array_equal(store.read(1, "qpos", 10, 2000), revealing(1, 4000, 40)[10:2000])
    np.testing.assert_array_equal(
        store.gather("action", [0], [[3999]]), revealing(0, 4000, 2, base=1e4)[[3999]][None]
    )
    _chunk(long_store, "s/m/traj0", "qpos", 2).unlink()
    _raises(
        lambda: store.read(0, "qpos", 3990, 4000),
        "trajectory s/m/traj0",
        "key 'qpos'",
        "chunk 2 (rows [3276, 4000)",
        "is missing",
        "format_version 1",
    )


def test_export_into_a_format_1_store_is_refused(long_store, make_npz_tree, tmp_path):
    _as_format_1(long_store)
    make_npz_tree(tmp_path / "more", {"n": [5]})
    with pytest.raises(ExportError, match="format_version 2"):
        export_npz(tmp_path / "more", long_store, source="s", progress=False, convention="mujoco")
    assert TrajectoryStore(long_store).motions("s") == ["m"]


def test_format_1_chunk_blosc_cannot_decode_names_the_chunk(long_store):
    _as_format_1(long_store)
    path = _chunk(long_store, "s/m/traj1", "qvel", 0)
    path.write_bytes(path.read_bytes()[:40])  # truncated: Blosc's own error names no file
    _raises(
        lambda: TrajectoryStore(long_store).read(1, "qvel", 0, 5),
        f"{long_store}: trajectory s/m/traj1 (traj_id 1), key 'qvel', chunk 0",
        "cannot be decoded",
        "trajopt-loader verify",
    )


def test_array_missing_from_a_store_without_consolidated_metadata(long_store):
    meta = json.loads((long_store / "zarr.json").read_text())
    del meta["consolidated_metadata"]  # arrays are then opened from their own zarr.json
    (long_store / "zarr.json").write_text(json.dumps(meta))
    shutil.rmtree(long_store / "s" / "m" / "traj1" / "action")
    store = TrajectoryStore(long_store)
    np.testing.assert_array_equal(store.read(1, "qpos", 0, 3), revealing(1, 4000, 40)[:3])
    _raises(
        lambda: store.gather("action", [0, 1], [[0], [0]]),
        "trajectory s/m/traj1 key 'action': no array in the store",
    )
