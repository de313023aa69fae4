"""Tests of trajopt_loader.pipeline.checkpoint: JSON state files, Orbax manager, bit-identical
resume with batches in the prefetch buffers."""

from __future__ import annotations

import itertools
import json

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import SHARED_DATA

from trajopt_loader.errors import CheckpointError, CheckpointNotFoundError
from trajopt_loader.pipeline.checkpoint import (
    load_state,
    restore_with_manager,
    save_state,
    save_with_manager,
)
from trajopt_loader.pipeline.device import device_iterator
from trajopt_loader.store import TrajectoryStore, export_npz

DATA = SHARED_DATA
ASLIP = DATA / "cassie" / "trajopt" / "aslip_walk"
QPOS = np.stack(
    [np.load(ASLIP / f"traj_{i}.npz")["qpos"] for i in range(4)]
)  # [4 traj, 32, 35] float64
E, W, N = 3, 8, 16


def make_batch(k: int) -> dict[str, np.ndarray]:
    """Batch k: env e reads trajectory (k + e) % 4 at steps [(k * W) % 32, + W) — real aslip
    windows."""
    traj = (k + np.arange(E)) % len(QPOS)
    steps = (k * W + np.arange(W)) % QPOS.shape[1]
    return {"qpos": QPOS[traj][:, steps], "traj_id": traj.astype(np.int32), "chunk": np.int64(k)}


def pipeline(**kw):
    ds = grain.MapDataset.range(N).map(make_batch).to_iter_dataset(grain.ReadOptions(num_threads=0))
    return device_iterator(ds, **kw)


def host(batch) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in batch.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # bit-exact


def test_resume_from_state_file_is_bit_identical(tmp_path):
    with pipeline() as it:
        for _ in range(5):
            next(it)
        path = save_state(tmp_path / "ckpt" / "data.json", it.get_state())
        after = [host(next(it)) for _ in range(3)]
    assert [int(b["chunk"]) for b in after] == [5, 6, 7]
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.json"]  # no temp file left

    with pipeline() as fresh:
        fresh.set_state(load_state(path))
        for want in after:
            assert_same(host(next(fresh)), want)
    np.testing.assert_array_equal(after[0]["qpos"], make_batch(5)["qpos"].astype(np.float32))


def test_save_after_consuming_batch_n_resumes_at_n_plus_1(tmp_path):
    with pipeline(host_buffer=3, device_buffer=2) as it:
        for n in range(6):
            consumed = host(next(it))  # the training step consumed batch n ...
            save_state(tmp_path / f"{n}.json", it.get_state())  # ... then the state is saved
        assert int(consumed["chunk"]) == 5
    for n in (0, 3, 5):
        with pipeline(host_buffer=3, device_buffer=2) as fresh:
            fresh.set_state(load_state(tmp_path / f"{n}.json"))
            assert_same(host(next(fresh)), host(jax.device_put(make_batch(n + 1))))


def test_orbax_manager_saves_params_and_iterator_then_restores_fresh_pipeline(tmp_path):
    params = {"w": np.arange(6.0).reshape(2, 3), "b": np.full((3,), 0.5, np.float32)}
    seen = {}
    with pipeline() as it, ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        for step in range(1, 8):
            batch = host(next(it))
            seen[step] = batch
            if step in (3, 5):
                assert save_with_manager(mngr, step, it, params=ocp.args.StandardSave(params))
        mngr.wait_until_finished()
        expected = [host(next(it)) for _ in range(3)]  # batches after step 7
        assert sorted(mngr.all_steps()) == [3, 5]
    state_file = tmp_path / "ckpt" / "5" / "data_iterator" / "process_0-of-1.json"
    assert json.loads(state_file.read_text()) == {"next_index": 5}
    assert load_state(state_file) == {"next_index": 5}  # grain's own file format is readable too

    target = {"w": np.zeros((2, 3)), "b": np.zeros((3,), np.float32)}
    with pipeline() as fresh, ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        restored = restore_with_manager(mngr, fresh, params=ocp.args.StandardRestore(target))
        np.testing.assert_array_equal(restored["params"]["w"], params["w"])
        got = [host(next(fresh)) for _ in range(5)]
    for a, b in zip(got, [seen[6], seen[7]] + expected, strict=True):
        assert_same(a, b)

    with pipeline() as fresh, ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        restore_with_manager(mngr, fresh, step=3, params=ocp.args.StandardRestore(target))
        assert_same(host(next(fresh)), seen[4])
        with pytest.raises(CheckpointNotFoundError, match=r"step 4 .*steps present: \[3, 5\]"):
            restore_with_manager(mngr, fresh, step=4)


def test_save_state_is_atomic_and_validates(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    save_state(path, {"next_index": 3})
    assert load_state(path) == {"next_index": 3}
    assert json.loads(path.read_text())["format"] == "trajopt_loader.iterator_state"

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_state(path, {"next_index": 9})
    monkeypatch.undo()
    assert load_state(path) == {"next_index": 3}  # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # temp file removed

    with pytest.raises(CheckpointError, match=r"state\['rng'\] = array"):
        save_state(path, {"next_index": 1, "rng": np.zeros(2)})
    with pytest.raises(CheckpointError, match="must be a dict"):
        save_state(path, [1, 2])


def test_load_state_errors_name_the_file(tmp_path):
    with pytest.raises(
        CheckpointNotFoundError, match="no iterator state file at .*missing.json"
    ) as info:
        load_state(tmp_path / "missing.json")
    assert isinstance(info.value, FileNotFoundError)
    bad = tmp_path / "bad.json"
    bad.write_text('{"next_ind')
    with pytest.raises(CheckpointError, match="bad.json is not valid JSON"):
        load_state(bad)
    bad.write_text(
        json.dumps({"format": "trajopt_loader.iterator_state", "version": 99, "state": {}})
    )
    with pytest.raises(CheckpointError, match="version 99"):
        load_state(bad)


@pytest.mark.parametrize("schedule", ["sequential", "random"])
def test_resume_through_make_dataset_and_prefetching_device_iterator(
    cassie_store, tmp_path, schedule
):
    """The real pipeline: 5 batches, save, 3 more; a freshly built pipeline restored from the file
    yields those 3 bit-identically, even though more batches sat in the prefetch buffers."""
    from trajopt_loader.configs import load_config
    from trajopt_loader.pipeline import make_dataset

    # agility_reference traj0 and traj1 (2 kHz; traj2 runs at 29 Hz and is not mixed in).
    config = load_config(
        "cassie",
        {
            "zarr_path": str(cassie_store),
            "assignment": "explicit",
            "traj_ids": (0, 1),
            "num_envs": 6,
            "window_size": 10,
            "schedule": schedule,
            "seed": 3,
        },
    )
    with device_iterator(make_dataset(config), host_buffer=3, device_buffer=2) as it:
        seen = [host(next(it)) for _ in range(5)]
        save_state(tmp_path / "data.json", it.get_state())
        after = [host(next(it)) for _ in range(3)]
    with device_iterator(make_dataset(config), host_buffer=3, device_buffer=2) as fresh:
        fresh.set_state(load_state(tmp_path / "data.json"))
        for want in after:
            assert_same(host(next(fresh)), want)
    host_batches = list(
        itertools.islice(iter(make_dataset(config)), 8)
    )  # oracle: no device, no prefetch
    for got, want in zip(seen + after, host_batches, strict=True):
        assert_same(got, {k: np.asarray(v) for k, v in want.items()})


@pytest.mark.parametrize(
    "content",
    [
        {"next_idx": 3},  # bare (as grain writes), misspelled
        {"format": "trajopt_loader.iterator_state", "version": 1, "state": {"next_index": -2}},
        {
            "format": "trajopt_loader.iterator_state",
            "version": 1,
            "state": {"next_index": 2, "x": 1},
        },
    ],
)
def test_load_and_save_refuse_malformed_states_naming_the_file(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    with pytest.raises(
        CheckpointError,
        match=r"iterator state file .*bad.json is not an iterator "
        r"state of a trajopt-loader stream: it holds \{.*\}; expected \{\"next_index\""
        r": k \(int >= 0\), \"stream\": .* Fix: pass the file written by save_state",
    ):
        load_state(bad)
    state = content.get("state", content)
    with pytest.raises(
        CheckpointError,
        match=r"iterator state to save to .*new.json is not an "
        r"iterator state",
    ):
        save_state(tmp_path / "new.json", state)
    assert not (tmp_path / "new.json").exists()


def _walk_store(root, make_npz_tree, lengths):
    make_npz_tree(root / f"npz{lengths}", {"walk": lengths})
    export_npz(
        root / f"npz{lengths}",
        root / "s.zarr",
        source="s",
        overwrite=True,
        progress=False,
        convention="mujoco",
    )
    return TrajectoryStore(root / "s.zarr")


def test_orbax_checkpoint_carries_the_fingerprint_and_refuses_changed_data(tmp_path, make_npz_tree):
    from trajopt_loader.configs import load_config
    from trajopt_loader.pipeline import make_dataset

    config = load_config(
        "default",
        {
            "zarr_path": str(tmp_path / "s.zarr"),
            "num_envs": 2,
            "window_size": 4,
            "keys": ("qpos",),
            "cyclic": False,
        },
    )
    store = _walk_store(tmp_path, make_npz_tree, [20, 12])
    ds = make_dataset(config, store, 0, 1)
    with device_iterator(ds) as it, ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        for _ in range(3):
            next(it)
        save_with_manager(mngr, 3, it)
        mngr.wait_until_finished()
        after = host(next(it))
    state_file = tmp_path / "ckpt" / "3" / "data_iterator" / "process_0-of-1.json"
    assert json.loads(state_file.read_text()) == {"next_index": 3, "stream": ds.stream}
    with (
        device_iterator(make_dataset(config, store, 0, 1)) as fresh,
        ocp.CheckpointManager(tmp_path / "ckpt") as mngr,
    ):
        restore_with_manager(mngr, fresh)
        assert_same(host(next(fresh)), after)
    changed = _walk_store(tmp_path, make_npz_tree, [20, 13])
    with (
        device_iterator(make_dataset(config, changed, 0, 1)) as fresh,
        ocp.CheckpointManager(tmp_path / "ckpt") as mngr,
    ):
        with pytest.raises(
            CheckpointError,
            match=r"store index changed: 2 played trajectories → 2, "
            r"first difference at position 1",
        ):
            restore_with_manager(mngr, fresh)
        assert int(host(next(fresh))["start"][0]) == 0  # still at the start
