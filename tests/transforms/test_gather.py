"""GatherKeys on the real Cassie store, against the source .npz files, directly and inside grain."""

from __future__ import annotations

import grain
import numpy as np
import pytest

from trajopt_loader.errors import MissingKeyError, WindowIndexError
from trajopt_loader.store import TrajectoryStore
from trajopt_loader.transforms import GatherKeys, WindowIndices


@pytest.fixture(scope="module")
def store(cassie_store):
    return TrajectoryStore(cassie_store, cache_bytes=2**28)


def _npz(shared_data, info) -> dict[str, np.ndarray]:
    path = shared_data / "cassie" / "trajopt" / info.motion / info.source_file
    with np.load(path) as f:  # never allow_pickle
        return {k: f[k] for k in f.files}


def _element(store, traj_ids, starts, W, policy):
    element = {
        "env_id": np.arange(len(traj_ids), dtype=np.int32),
        "traj_id": np.asarray(traj_ids, np.int32),
        "start": np.asarray(starts, np.int32),
        "episode_start": np.ones(len(traj_ids), bool),
        "episode_first_step": np.asarray(starts, np.int32),
        "chunk": np.array(0, np.int64),
    }
    return WindowIndices(store.lengths, W, policy).map(element)


@pytest.mark.parametrize("policy", ["wrap", "clamp"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gather_equals_npz_rows_directly_and_in_grain(store, shared_data, policy, dtype):
    ids = store.select(motions=("agility_reference",))  # traj 2 is 28 steps: shorter than W
    traj_ids = np.array([ids[0], ids[2], ids[1], ids[2], ids[0]])
    starts = np.array([0, 27, 1650, 5, 1681])
    W = 40
    element = _element(store, traj_ids, starts, W, policy)
    transform = GatherKeys(store, ("qpos", "qvel", "action"), dtype, traj_ids=ids)
    direct = transform.map(element)
    piped = next(
        iter(
            grain.MapDataset.source([element])
            .map(transform)
            .to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
        )
    )
    assert "chunk" not in direct
    for key, nrow in (("qpos", 35), ("qvel", 32), ("action", 10)):
        want = np.empty((len(traj_ids), W, nrow), dtype)
        for e, t in enumerate(traj_ids):
            rows = _npz(shared_data, store.trajectories[t])[key]
            want[e] = rows[element["step"][e]].astype(dtype)
        for out in (direct, piped):
            assert out[key].dtype == np.dtype(dtype) and out[key].shape == want.shape
            np.testing.assert_array_equal(out[key], want)
    # Row 27 of the 28-step trajectory, then wrapped / clamped.
    expect = [27, 0, 1] if policy == "wrap" else [27, 27, 27]
    assert direct["step"][1, :3].tolist() == expect
    for k in ("env_id", "traj_id", "start", "step", "valid"):
        np.testing.assert_array_equal(piped[k], element[k])


def test_missing_key_names_key_available_keys_and_trajectories(store):
    with pytest.raises(MissingKeyError, match=r"'ee_pos'.*available keys: \['action', .*'qvel'"):
        GatherKeys(store, ("qpos", "ee_pos"), traj_ids=store.select(motions=("agility_reference",)))
    # The ASLIP motion has no qvel: selecting it with qvel fails up front, naming a trajectory.
    with pytest.raises(MissingKeyError, match=r"'qvel'.*cassie/aslip_walk/traj0"):
        GatherKeys(store, ("qpos", "qvel"), traj_ids=store.select())
    with pytest.raises(MissingKeyError, match="Did you mean 'qvel'"):
        GatherKeys(store, ("qvl",), traj_ids=[0])


def test_out_of_range_step_is_an_error_not_zeros(store):
    element = _element(store, [2], [0], 4, "wrap")
    element["step"] = np.array([[0, 1, 2, 28]], np.int32)  # traj 2 has 28 steps
    with pytest.raises(WindowIndexError):
        GatherKeys(store, ("qpos",)).map(element)


def test_transform_pickles_for_worker_processes(store):
    import pickle

    element = _element(store, [0, 2], [3, 20], 8, "wrap")
    transform = GatherKeys(store, ("qpos", "action"), "float32", traj_ids=[0, 2])
    clone = pickle.loads(pickle.dumps(transform))  # the store reopens lazily in the clone
    a, b = transform.map(element), clone.map(element)
    for key in ("qpos", "action"):
        np.testing.assert_array_equal(a[key], b[key])


def test_row_shapes_checked_at_construction_dtypes_may_differ(make_npz_tree, tmp_path):
    from conftest import revealing

    from trajopt_loader.store import export_npz

    # walk: traj0 float64 qpos, traj1 float32 qpos (same (9,) rows); arm: qpos rows (7,).
    make_npz_tree(
        tmp_path / "npz",
        {
            "walk": [5, {"length": 6, "qpos": revealing(1, 6, 9).astype(np.float32)}],
            "arm": [{"length": 4, "qpos": revealing(0, 4, 7)}],
        },
    )
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    store = TrajectoryStore(tmp_path / "s.zarr")
    walk = store.select(motions=("walk",))
    transform = GatherKeys(store, ("qpos",), "float64", traj_ids=walk)
    element = _element(store, [walk[1], walk[0]], [0, 3], 3, "wrap")
    got = transform.map(element)["qpos"]
    np.testing.assert_array_equal(got[0], revealing(1, 6, 9).astype(np.float32)[[0, 1, 2]])
    np.testing.assert_array_equal(got[1], revealing(0, 5, 9)[[3, 4, 0]])
    with pytest.raises(
        MissingKeyError,
        match=r"'qpos' row shapes differ: s/arm/traj0 has rows "
        r"\(7,\) \(float64\), s/walk/traj0 has rows \(9,\)",
    ):
        GatherKeys(store, ("qvel", "qpos"), traj_ids=store.select())
    with pytest.raises(MissingKeyError, match=r"row shapes differ"):
        GatherKeys(store, ("qpos",))  # traj_ids None: every trajectory will be read
