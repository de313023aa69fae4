"""TrajectoryStore (trajopt_loader.store.reader) on the real Cassie store and synthetic stores."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import zarr
from conftest import CASSIE_TRAJOPT, revealing

from trajopt_loader.errors import (
    MissingKeyError,
    StoreFormatError,
    StoreNotFoundError,
    WindowIndexError,
)
from trajopt_loader.store import TrajectoryStore, export_npz

AGILITY = [np.load(CASSIE_TRAJOPT / "agility_reference" / f"traj_{i}.npz") for i in range(3)]
ASLIP = [np.load(CASSIE_TRAJOPT / "aslip_walk" / f"traj_{i}.npz") for i in range(21)]
FILES = AGILITY + ASLIP  # global order: agility_reference before aslip_walk (one export: sorted)


def test_listing_and_global_order(cassie_store):
    store = TrajectoryStore(cassie_store)
    assert store.path == str(cassie_store)
    assert store.sources == ["cassie"]
    assert store.motions("cassie") == ["agility_reference", "aslip_walk"]
    assert store.motions() == ["cassie/agility_reference", "cassie/aslip_walk"]
    assert len(store.trajectories) == 24
    assert [t.traj_id for t in store.trajectories] == list(range(24))
    assert store.trajectories[5].path == "cassie/aslip_walk/traj2"
    assert store.trajectories[5].source_file == "traj_2.npz"
    assert store.lengths.dtype == np.int32
    assert store.lengths.tolist() == [len(f["qpos"]) for f in FILES]
    assert store.keys == ("motor_vel", "qpos", "time")
    assert store.trajectories[0].keys["qvel"] == ((32,), "float64")
    assert store.trajectories[0].dt == float(AGILITY[0]["dt"])
    assert store.select(motions=["agility_reference"]).tolist() == [0, 1, 2]
    assert store.select(motions=["cassie/aslip_walk"]).tolist() == list(range(3, 24))
    assert store.select(sources=["cassie"]).dtype == np.int32 and len(store.select()) == 24
    with pytest.raises(MissingKeyError, match=r"motion 'run' is not in"):
        store.select(motions=["run"])
    with pytest.raises(MissingKeyError, match=r"source 'digit' is not in"):
        store.convention("digit")


def test_read_equals_npz_exactly(cassie_store):
    store = TrajectoryStore(cassie_store)
    for i, f in enumerate(FILES):
        for key in store.trajectories[i].keys:
            assert np.array_equal(store.read(i, key), f[key]), (i, key)
    assert np.array_equal(
        store.read("cassie/agility_reference/traj0", "qvel", 100, 105), AGILITY[0]["qvel"][100:105]
    )


def test_read_wrap_and_range_errors(cassie_store):
    store = TrajectoryStore(cassie_store)
    q = AGILITY[2]["qpos"]  # T = 28
    assert np.array_equal(store.read(2, "qpos", 25, 31, wrap=True), q[[25, 26, 27, 0, 1, 2]])
    assert np.array_equal(store.read(2, "qpos", -2, 1, wrap=True), q[[26, 27, 0]])
    assert np.array_equal(store.read(2, "qpos", 0, 60, wrap=True), q[np.arange(60) % 28])
    with pytest.raises(WindowIndexError, match=r"rows \[25, 31\) are outside \[0, 28\)"):
        store.read(2, "qpos", 25, 31)
    with pytest.raises(MissingKeyError, match=r"cassie/aslip_walk/traj0 has no 'qvel'"):
        store.read(3, "qvel")
    store.warm(["qpos"])  # reads now come from the host cache
    assert np.array_equal(store.read(2, "qpos", 25, 31, wrap=True), q[[25, 26, 27, 0, 1, 2]])
    assert np.array_equal(store.read(7, "qpos", 3, 9), ASLIP[4]["qpos"][3:9])


@pytest.mark.parametrize("cache_bytes", [2**31, 64 * 1024, 0])
def test_gather_matches_numpy_oracle_with_wrap(cassie_store, cache_bytes):
    store = TrajectoryStore(cassie_store, cache_bytes=cache_bytes)
    rng = np.random.default_rng(cache_bytes)
    traj_ids = rng.integers(0, 24, 64).astype(np.int32)
    start = rng.integers(0, 2000, 64)
    lengths = store.lengths[traj_ids]
    steps = (start[:, None] + np.arange(40)[None, :]) % lengths[:, None]  # wrap-around windows
    got = store.gather("qpos", traj_ids, steps)
    want = np.stack([FILES[t]["qpos"][s] for t, s in zip(traj_ids, steps, strict=True)])
    assert got.shape == (64, 40, 35) and got.dtype == np.float64
    assert np.array_equal(got, want)
    info = store.cache_info()
    assert info["budget"] == cache_bytes and info["bytes_used"] <= cache_bytes
    agility = rng.integers(0, 3, 8)
    steps = rng.integers(0, 28, (8, 5))
    assert np.array_equal(
        store.gather("qvel", agility, steps),
        np.stack([AGILITY[t]["qvel"][s] for t, s in zip(agility, steps, strict=True)]),
    )


@pytest.mark.parametrize("cache_bytes", [2**31, 64 * 1024])
def test_cache_dtype_gathers_floats_in_that_dtype_and_read_stays_exact(cassie_store, cache_bytes):
    store = TrajectoryStore(cassie_store, cache_bytes=cache_bytes, cache_dtype="float32")
    traj_ids = np.array([0, 5, 2, 23], np.int32)
    steps = np.array([[0, 1, 2], [3, 4, 5], [27, 0, 1], [30, 29, 28]])
    got = store.gather("qpos", traj_ids, steps)
    want = np.stack([FILES[t]["qpos"][s] for t, s in zip(traj_ids, steps, strict=True)]).astype(
        np.float32
    )
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert store.read(5, "qpos").dtype == np.float64  # reads keep the stored dtype, bit-exact
    assert np.array_equal(store.read(5, "qpos"), FILES[5]["qpos"])
    if cache_bytes == 2**31:  # whole-key cache held in float32: half the float64 bytes
        assert store.cache_info()["bytes_used"] == int(store.lengths.sum()) * 35 * 4
    clone = pickle.loads(pickle.dumps(store))
    assert (
        clone.cache_dtype == "float32" and clone.gather("qpos", traj_ids, steps).dtype == np.float32
    )


def test_gather_errors(cassie_store):
    store = TrajectoryStore(cassie_store)
    with pytest.raises(
        WindowIndexError,
        match=r"env row 1 \(traj_id 2, cassie/agility_reference/"
        r"traj2\): step 28 at window position 0",
    ):
        store.gather("qpos", [0, 2], [[0, 1], [28, 29]])
    with pytest.raises(
        MissingKeyError,
        match=r"env row 0: trajectory cassie/aslip_walk/traj0 "
        r"has no 'qvel'",
    ):
        store.gather("qvel", [3], [[0]])


def test_pickle_drops_cache_and_reopens(cassie_store):
    store = TrajectoryStore(cassie_store, cache_bytes=10**6)
    store.warm(["qpos"])
    blob = pickle.dumps(store)
    assert len(blob) < 200_000  # index only, no decoded arrays
    clone = pickle.loads(blob)
    assert clone.cache_bytes == 10**6 and clone._cache is None and clone._root is None
    assert clone.trajectories == store.trajectories and clone.keys == store.keys
    steps = np.array([[27, 0, 1]])
    assert np.array_equal(clone.gather("qpos", [2], steps), AGILITY[2]["qpos"][steps])
    assert clone.cache_info()["misses"] > 0


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_open_errors(tmp_path, make_npz_tree):
    with pytest.raises(StoreNotFoundError, match=r"no store at .*missing.zarr"):
        TrajectoryStore(tmp_path / "missing.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreNotFoundError):
        TrajectoryStore(tmp_path / "empty")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreFormatError, match=r"has no 'trajopt_loader' index"):
        TrajectoryStore(tmp_path / "plain.zarr")
    make_npz_tree(tmp_path / "npz", {"m": [3]})
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="a", use_consolidated=False)
    index = dict(g.attrs["trajopt_loader"])
    g.attrs["trajopt_loader"] = {**index, "format_version": 99}
    zarr.consolidate_metadata(str(tmp_path / "s.zarr"))
    with pytest.raises(StoreFormatError, match=r"format_version 99; this version reads 1, 2"):
        TrajectoryStore(tmp_path / "s.zarr")


def test_store_of_synthetic_tree_info(tmp_path, make_npz_tree):
    make_npz_tree(tmp_path / "npz", {"b": [3, 4], "a": [5]})
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    store = TrajectoryStore(f"file://{tmp_path / 's.zarr'}")
    assert [t.path for t in store.trajectories] == ["s/a/traj0", "s/b/traj0", "s/b/traj1"]
    assert np.array_equal(store.read(2, "qpos"), revealing(1, 4, 9))
    assert store.info("s/b/traj1").traj_id == 2
    assert repr(store).endswith("sources=['s'], trajectories=3)")


def _gather_in_worker(store, traj_ids, steps):
    return store.gather("qpos", traj_ids, steps), store.cache_info()["misses"]


def test_spawned_worker_reads_same_bytes(cassie_store):
    import multiprocessing

    store = TrajectoryStore(cassie_store)
    traj_ids, steps = np.array([0, 2, 20]), np.array([[1681, 0], [27, 3], [30, 5]])
    parent = store.gather("qpos", traj_ids, steps)  # parent reads first, then the worker
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        child, misses = pool.apply(_gather_in_worker, (store, traj_ids, steps))
    assert child.tobytes() == parent.tobytes() and misses > 0  # reopened and decoded in the worker


@pytest.mark.parametrize("cache_bytes", [2**31, 0])
def test_mixed_dtypes_gather_common_dtype_read_stored_dtype(tmp_path, make_npz_tree, cache_bytes):
    q32 = revealing(1, 6, 9).astype(np.float32)
    make_npz_tree(tmp_path / "npz", {"walk": [5, {"length": 6, "qpos": q32}]})
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    store = TrajectoryStore(tmp_path / "s.zarr", cache_bytes=cache_bytes)
    assert store.trajectories[1].keys["qpos"] == ((9,), "float32")
    assert store.check_uniform("qpos") == ((9,), np.dtype(np.float64))
    assert store.check_uniform("qpos", [1]) == ((9,), np.dtype(np.float64))  # key-wide dtype
    got = store.gather("qpos", [1, 0], [[5, 0], [4, 4]])
    assert got.dtype == np.float64
    assert np.array_equal(
        got, np.stack([q32[[5, 0]].astype(np.float64), revealing(0, 5, 9)[[4, 4]]])
    )
    store.warm(["qpos"])
    assert store.cache_info()["whole_keys"] == (["qpos"] if cache_bytes else [])
    r = store.read(1, "qpos", 2, 4)  # read keeps the stored dtype, whatever the cache holds
    assert r.dtype == np.float32 and np.array_equal(r, q32[2:4])
    assert store.read(0, "qpos").dtype == np.float64


def test_dts_are_the_recorded_time_steps_per_traj_id(cassie_store):
    store = TrajectoryStore(cassie_store)
    assert store.dts.dtype == np.float64 and store.dts.shape == (24,)
    assert store.dts.tolist() == [float(f["dt"]) for f in FILES]  # bit-exact: the files' dt
    assert store.dts.tolist() == [t.dt for t in store.trajectories]
    np.testing.assert_array_equal(
        store.dts[[2, 23]], [float(AGILITY[2]["dt"]), float(ASLIP[20]["dt"])]
    )
    assert pickle.loads(pickle.dumps(store)).dts.tolist() == store.dts.tolist()
