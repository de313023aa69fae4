"""Stream fingerprints (trajopt_loader.pipeline.fingerprint): exact records, and set_state refusing
a state saved for another config or other store data, before the pipeline moves."""

from __future__ import annotations

import collections
import hashlib
import itertools
import json

import grain
import numpy as np
import pytest
from conftest import revealing

from trajopt_loader.configs import load_config
from trajopt_loader.errors import CheckpointError
from trajopt_loader.pipeline import device_iterator, make_dataset
from trajopt_loader.pipeline.fingerprint import STREAM_FIELDS, describe_stream, stream_fields
from trajopt_loader.pipeline.state_check import config_differences
from trajopt_loader.pipeline.stream_iterators import StreamDataset
from trajopt_loader.store import TrajectoryStore, export_npz


@pytest.fixture
def walk(tmp_path, make_npz_tree):
    """Store ``s.zarr``: source ``s``, motion ``walk`` = traj0 (20 steps), traj1 (12), dt 0.01 s."""
    make_npz_tree(tmp_path / "npz", {"walk": [20, 12]})
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    return tmp_path


def config_of(root, **overrides):
    # cyclic off: the revealing values have no unit quaternion at qpos[3:7].
    return load_config(
        "default",
        {
            "zarr_path": str(root / "s.zarr"),
            "num_envs": 2,
            "window_size": 4,
            "keys": ("qpos",),
            "cyclic": False,
            **overrides,
        },
    )


def stream_of(config, store):
    return iter(make_dataset(config, store, 0, 1))


def take(it, n):
    return [b["qpos"].copy() for b in itertools.islice(it, n)]


def test_record_is_exact_and_rides_in_every_state(walk):
    config, store = config_of(walk), TrajectoryStore(walk / "s.zarr")
    ds = make_dataset(config, store, 0, 1)
    assert isinstance(ds, StreamDataset)
    # resolved: stride None -> W; seed unused by a round-robin sequential schedule; no selection
    # spelling (sources / motions), the played trajectories are the index.
    body = {
        "config": {
            "num_envs": 2,
            "window_size": 4,
            "stride": 4,
            "schedule": "sequential",
            "assignment": "round_robin",
            "traj_ids": None,
            "allow_wrap": True,
            "end_policy": "wrap",
            "keys": ["qpos"],
            "dtype": "float32",
            "seed": None,
            "cyclic": False,
            "episode_length": 1024,
            "motion_weights": [],
            "adaptive": False,
            "control_dt": "stored",
        },
        "store": {
            "trajectories": 2,
            "keys": {"qpos": "(9,) float64"},
            "index": "0 s/walk/traj0 20 0.01 traj_0.npz\n1 s/walk/traj1 12 0.01 traj_1.npz",
        },
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    assert ds.stream == {"version": 1, "fingerprint": digest.hexdigest()[:16], **body}
    # every field, in order; the look-ahead / random-start / origin fields only when set
    assert list(ds.stream["config"]) == [
        f
        for f in STREAM_FIELDS
        if f not in ("future_steps", "random_start", "episode_origin_keys", "working_set")
    ]
    it = iter(ds)
    assert it.get_state() == {"next_index": 0, "stream": ds.stream}
    take(it, 3)
    assert it.get_state() == {"next_index": 3, "stream": ds.stream}
    assert json.loads(json.dumps(it.get_state())) == it.get_state()  # plain JSON
    other = describe_stream(config_of(walk, assignment="random", seed=1), store, [1, 0, 1])
    assert other["store"] == ds.stream["store"] and other["fingerprint"] != ds.stream["fingerprint"]
    assert (other["config"]["assignment"], other["config"]["seed"]) == ("random", 1)


def test_stream_fields_resolve_equivalent_spellings():
    base = {
        "num_envs": 2,
        "window_size": 4,
        "schedule": "sequential",
        "assignment": "explicit",
        "allow_wrap": False,
        "end_policy": "clamp",
        "dtype": "float32",
        "seed": 5,
        "cyclic": True,
    }
    assert stream_fields(
        {**base, "stride": None, "traj_ids": (0, 1), "keys": ("qvel", "qpos")}
    ) == {
        **base,
        "stride": 4,
        "assignment": "round_robin",
        "traj_ids": None,
        "seed": None,
        "keys": ["qpos", "qvel"],
    }
    assert stream_fields({**base, "stride": 2, "traj_ids": (1, 0, 1), "keys": ()})["traj_ids"] == [
        1,
        0,
        1,
    ]  # the played order (duplicates included) is the stream's
    rand = stream_fields(
        {
            **base,
            "schedule": "random",
            "assignment": "random",
            "stride": 3,
            "traj_ids": (),
            "keys": ("qpos",),
        }
    )
    assert (rand["stride"], rand["allow_wrap"], rand["assignment"], rand["seed"]) == (
        None,
        None,
        None,
        5,
    )  # what a random schedule does not use, and the seed it does


def test_restore_into_a_fresh_pipeline_of_the_same_stream_is_bit_identical(walk):
    config, store = config_of(walk), TrajectoryStore(walk / "s.zarr")
    it = stream_of(config, store)
    take(it, 3)
    state = json.loads(json.dumps(it.get_state()))  # as read back from a file
    want = take(it, 4)
    fresh = stream_of(config, TrajectoryStore(walk / "s.zarr"))
    fresh.set_state(state)
    for a, b in zip(take(fresh, 4), want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_overwritten_motion_is_refused_and_the_iterator_stays_put(walk, make_npz_tree):
    config = config_of(walk)
    it = stream_of(config, TrajectoryStore(walk / "s.zarr"))
    take(it, 3)
    state = it.get_state()
    make_npz_tree(walk / "npz2", {"walk": [20, 15]})
    export_npz(
        walk / "npz2",
        walk / "s.zarr",
        source="s",
        overwrite=True,
        progress=False,
        convention="mujoco",
    )
    fresh = stream_of(config, TrajectoryStore(walk / "s.zarr"))
    with pytest.raises(CheckpointError) as info:
        fresh.set_state(state)
    assert str(info.value) == (
        "iterator state belongs to another stream than this pipeline (store index changed: 2 "
        "played trajectories → 2, first difference at position 1: saved traj_id 1 = "
        "s/walk/traj1 (12 steps, dt 0.01 s, from 'traj_1.npz'), now traj_id 1 = s/walk/traj1 "
        "(15 steps, dt 0.01 s, from 'traj_1.npz')): restoring it would read other data at the "
        "saved position. Fix: rebuild the pipeline with the saved config values and the store as "
        "it was when saved; or start this stream from scratch (do not restore); or, if the "
        "trajectories played are known to be unchanged, restore the bare position unchecked: "
        "it.set_state({'next_index': 3})."
    )
    assert fresh.get_state()["next_index"] == 0
    np.testing.assert_array_equal(
        next(fresh)["qpos"][1], revealing(1, 4, 9).astype(np.float32)
    )  # batch 0: not moved


def test_appended_motion_refuses_streams_that_play_it_only(walk, make_npz_tree):
    saved = {}
    for motions in ((), ("walk",)):
        it = stream_of(config_of(walk, motions=motions), TrajectoryStore(walk / "s.zarr"))
        take(it, 3)
        saved[motions] = (it.get_state(), take(it, 3))
    make_npz_tree(walk / "npz2", {"aaa": [7]})
    export_npz(walk / "npz2", walk / "s.zarr", source="s", progress=False, convention="mujoco")
    store = TrajectoryStore(walk / "s.zarr")
    assert [t.path for t in store.trajectories] == ["s/walk/traj0", "s/walk/traj1", "s/aaa/traj0"]
    everything = stream_of(config_of(walk), store)
    with pytest.raises(
        CheckpointError,
        match=r"store index changed: 2 played trajectories → 3; "
        r"newly played: traj_id 2 = s/aaa/traj0 \(7 steps, dt 0.01 s, from "
        r"'traj_0.npz'\)",
    ):
        everything.set_state(saved[()][0])
    walk_only = stream_of(config_of(walk, motions=("walk",)), store)
    walk_only.set_state(saved[("walk",)][0])  # ids of 'walk' are unchanged: same stream
    for a, b in zip(take(walk_only, 3), saved[("walk",)][1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"window_size": 5}, "window_size: saved 4, config 5; stride: saved 4, config 5"),
        ({"stride": 2}, "stride: saved 4, config 2"),
        ({"seed": 9, "keys": ("qpos", "qvel")}, "keys: saved ['qpos'], config ['qpos', 'qvel']"),
        (
            {"assignment": "explicit", "traj_ids": (1, 0)},
            "traj_ids: saved (each played trajectory once, in id order), config [1, 0]",
        ),
        ({"schedule": "random", "stride": 2}, "schedule: saved 'sequential', config 'random'"),
        (
            {"assignment": "explicit", "traj_ids": (1,)},
            "store index changed: 2 played trajectories → "
            "1, first difference at position 0: saved traj_id 0 = s/walk/traj0 "
            "(20 steps, dt 0.01 s, from 'traj_0.npz'), now traj_id 1 = s/walk/traj1 "
            "(12 steps, dt 0.01 s, from 'traj_1.npz')",
        ),
    ],
)
def test_other_streams_are_refused_naming_what_differs(walk, change, message):
    store = TrajectoryStore(walk / "s.zarr")
    it = stream_of(config_of(walk), store)
    take(it, 2)
    other = stream_of(config_of(walk, **change), store)
    with pytest.raises(CheckpointError) as info:
        other.set_state(it.get_state())
    assert str(info.value).startswith(
        f"iterator state belongs to another stream than this "
        f"pipeline ({message}): restoring it would read other data"
    )
    assert other.get_state()["next_index"] == 0


def test_random_assignment_seeds_are_compared():
    saved = stream_fields(config_of_fields(assignment="random", seed=1))
    assert config_differences(
        saved, stream_fields(config_of_fields(assignment="random", seed=2))
    ) == ["seed: saved 1, config 2"]
    assert config_differences(saved, stream_fields(config_of_fields())) == [
        "assignment: saved 'random', config 'round_robin'"
    ]  # seed: unused now, not compared


def config_of_fields(**overrides):
    return load_config("default", {"num_envs": 2, "window_size": 4, "keys": ("qpos",), **overrides})


@pytest.mark.parametrize(
    "saved_as, restored_as",
    [
        ({"motions": ("walk",)}, {"motions": ("s/walk",)}),
        ({"motions": ("walk",)}, {"sources": ("s",)}),
        ({}, {"motions": ("s/walk",)}),
        ({"stride": None}, {"stride": 4}),
        ({"keys": ("qpos", "qvel")}, {"keys": ("qvel", "qpos")}),
        ({"seed": 0}, {"seed": 9}),  # a round-robin sequential schedule draws nothing
        ({"assignment": "explicit", "traj_ids": (0, 1)}, {"assignment": "round_robin"}),
        (
            {"schedule": "random", "stride": 2, "allow_wrap": False},
            {"schedule": "random", "assignment": "random"},
        ),
    ],
)
def test_equivalent_spellings_of_one_stream_restore_each_other(walk, saved_as, restored_as):
    store = TrajectoryStore(walk / "s.zarr")
    keys = ("qpos", "qvel")
    a = make_dataset(config_of(walk, **{"keys": keys, **saved_as}), store, 0, 1)
    b = make_dataset(config_of(walk, **{"keys": keys, **restored_as}), store, 0, 1)
    assert a.stream == b.stream  # one resolved stream, one fingerprint
    it = iter(a)
    take(it, 3)
    state = json.loads(json.dumps(it.get_state()))
    want = list(itertools.islice(it, 3))
    fresh = iter(b)
    fresh.set_state(state)
    for got, ref in zip(itertools.islice(fresh, 3), want, strict=True):
        assert set(got) == set(ref)
        for key in ref:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


def test_records_written_before_resolution_still_restore(walk):
    store = TrajectoryStore(walk / "s.zarr")
    # streams written before episode_length existed were unbounded (episode_length=0)
    config = config_of(walk, keys=("qvel", "qpos"), motions=("walk",), episode_length=0)
    it = stream_of(config, store)
    take(it, 2)
    state = json.loads(json.dumps(it.get_state()))
    state["stream"]["config"] = {  # as written before: raw spellings, sources / motions listed
        "num_envs": 2,
        "window_size": 4,
        "stride": None,
        "schedule": "sequential",
        "assignment": "round_robin",
        "traj_ids": [],
        "sources": [],
        "motions": ["walk"],
        "allow_wrap": True,
        "end_policy": "wrap",
        "keys": ["qvel", "qpos"],
        "dtype": "float32",
        "seed": 0,
        "cyclic": False,
    }
    want = take(it, 2)
    fresh = stream_of(config_of(walk, keys=("qpos", "qvel"), episode_length=None), store)
    fresh.set_state(state)
    for a, b in zip(take(fresh, 2), want, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match=r"\(episode_length: saved 0, config 1024\)"):
        stream_of(config_of(walk, keys=("qpos", "qvel")), store).set_state(state)
    other = stream_of(
        config_of(walk, keys=("qpos", "qvel"), window_size=5, episode_length=0), store
    )
    with pytest.raises(
        CheckpointError,
        match=r"pipeline \(window_size: saved 4, config 5; "
        r"stride: saved 4, config 5\):",
    ):
        other.set_state(state)


def test_settings_outside_the_stream_do_not_matter(walk):
    store = TrajectoryStore(walk / "s.zarr")
    it = stream_of(config_of(walk, read_threads=2, host_prefetch=3, num_batches=50), store)
    take(it, 2)
    want = take(it, 2)
    other = stream_of(config_of(walk, cache_bytes=10**6, allow_mixed_dt=True), store)
    other.set_state(it.get_state() | {"next_index": 2})
    for a, b in zip(take(other, 2), want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_store_key_dtype_change_is_named(walk, make_npz_tree):
    it = stream_of(config_of(walk), TrajectoryStore(walk / "s.zarr"))
    make_npz_tree(
        walk / "npz2",
        {"walk": [20, {"length": 12, "qpos": revealing(1, 12, 9).astype(np.float32)}]},
    )
    export_npz(
        walk / "npz2",
        walk / "s.zarr",
        source="s",
        overwrite=True,
        progress=False,
        convention="mujoco",
    )
    fresh = stream_of(config_of(walk), TrajectoryStore(walk / "s.zarr"))
    with pytest.raises(
        CheckpointError,
        match=r"\(store key 'qpos': saved \(9,\) float64, now "
        r"\(9,\) float32; \(9,\) float64\):",
    ):
        fresh.set_state(it.get_state())


def test_config_fields_added_since_match_their_default():
    saved = {"num_envs": 8, "window_size": 4, "num_batches": 3}  # an older record, no 'cyclic'
    assert config_differences(saved, {"num_envs": 8, "window_size": 4, "cyclic": True}) == []
    assert config_differences(saved, {"num_envs": 8, "window_size": 4, "cyclic": False}) == [
        "cyclic: saved '(absent)', config False"
    ]
    assert config_differences(saved, {"num_envs": 4, "window_size": 4}) == [
        "num_envs: saved 8, config 4"
    ]  # names outside STREAM_FIELDS (num_batches) are ignored
    assert stream_fields(load_config("default"))["cyclic"] is True


def test_bare_grain_state_restores_unchecked_with_a_warning(walk):
    config, store = config_of(walk), TrajectoryStore(walk / "s.zarr")
    it = stream_of(config, store)
    want = take(it, 5)[3:]
    fresh = stream_of(config, store)
    with pytest.warns(UserWarning, match=r"\{'next_index': 3\} has no stream fingerprint"):
        fresh.set_state({"next_index": 3})
    for a, b in zip(take(fresh, 2), want, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "state",
    [
        {"next_idx": 3},
        {"next_index": -1},
        {"next_index": "3"},
        {"next_index": True},
        {"next_index": 3, "extra": 1},
        {"next_index": 3, "stream": {"fingerprint": 7}},
        [3],
        None,
    ],
)
def test_malformed_states_are_refused_before_the_pipeline_moves(walk, state):
    it = stream_of(config_of(walk), TrajectoryStore(walk / "s.zarr"))
    take(it, 2)
    with pytest.raises(
        CheckpointError,
        match=r"iterator state is not an iterator state of a "
        r"trajopt-loader stream: it holds .*; expected \{\"next_index\": k "
        r"\(int >= 0\), \"stream\"",
    ):
        it.set_state(state)
    assert it.get_state()["next_index"] == 2  # unmoved: batch 2 comes next
    fresh = stream_of(config_of(walk), TrajectoryStore(walk / "s.zarr"))
    np.testing.assert_array_equal(take(it, 1)[0], take(fresh, 3)[2])


def test_position_past_the_end_and_other_versions_are_refused(walk):
    store = TrajectoryStore(walk / "s.zarr")
    it = stream_of(config_of(walk, num_batches=5), store)
    state = it.get_state()
    with pytest.raises(
        CheckpointError,
        match=r"next_index 6, past the end of this stream "
        r"\(num_batches=5\)",
    ):
        it.set_state(state | {"next_index": 6})
    it.set_state(state | {"next_index": 5})
    assert list(it) == []
    old = json.loads(json.dumps(state))
    old["stream"]["version"] = 0
    with pytest.raises(
        CheckpointError, match="fingerprint version: saved 0, this trajopt-loader writes 1"
    ):
        it.set_state(old)


class FailOnce(grain.transforms.Map):
    """Raises on its first call for element ``k`` (a transient fault: the retry succeeds)."""

    def __init__(self, k: int):
        self.k, self.calls, self.raised = k, collections.Counter(), None

    def map(self, batch):
        k = element_of(batch)
        self.calls[k] += 1
        if k == self.k and self.calls[k] == 1:
            self.raised = RuntimeError(f"transient fault on element {k}")
            raise self.raised
        return batch


def element_of(batch) -> int:
    """Element k of the ``walk`` stream (W = stride = 4; env 0 loops over traj0, 20 steps): its
    window starts at ``4k mod 20`` after ``4k // 20`` loops."""
    return (
        int(np.asarray(batch["episode_loop"])[0]) * 20 + int(np.asarray(batch["start"])[0])
    ) // 4


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("read_threads, host_prefetch", [(1, 2), (2, 4), (0, 0)])
def test_after_an_error_the_stream_stays_failed_until_set_state(
    walk, on_device, read_threads, host_prefetch
):
    store = TrajectoryStore(walk / "s.zarr")
    config = config_of(walk, read_threads=read_threads, host_prefetch=host_prefetch)
    fault = FailOnce(3)
    ds = make_dataset(config, store, 0, 1, extra_transforms=[fault])
    it = device_iterator(ds) if on_device else iter(ds)
    assert [element_of(next(it)) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(RuntimeError) as first:
        next(it)
    assert first.value is fault.raised  # the original error, unchanged
    for _ in range(2):  # caught, and the caller goes on: element 3 is not skipped
        with pytest.raises(RuntimeError) as again:
            next(it)
        assert again.value.__cause__ is fault.raised
        assert str(again.value).startswith(
            "RuntimeError: transient fault on element 3 (raised again: this iterator failed on "
            "the batch after the last one handed out and stays failed until set_state(); "
            "get_state() is the position after that last batch, next_index 3."
        )
    assert it.get_state() == {"next_index": 3, "stream": ds.stream}
    saved = json.loads(json.dumps(it.get_state()))
    other = json.loads(json.dumps(saved))
    other["stream"]["config"]["window_size"] = 5
    with pytest.raises(CheckpointError, match="window_size: saved 5, config 4"):
        it.set_state(other)  # refused: still failed, still at 3
    with pytest.raises(RuntimeError, match="raised again"):
        next(it)
    assert it.get_state() == {"next_index": 3, "stream": ds.stream}

    it.set_state(it.get_state())  # rebuilds the pipeline's iterator at 3: the retry succeeds
    assert [element_of(next(it)) for _ in range(3)] == [3, 4, 5]
    assert it.get_state() == {"next_index": 6, "stream": ds.stream}
    assert fault.calls[3] == 2
    if on_device:
        it.close()

    reference = take(stream_of(config, store), 5)
    fresh = stream_of(config, store)  # a new process restoring the state saved after the error
    fresh.set_state(saved)
    for got, want in zip(take(fresh, 2), reference[3:5], strict=True):
        np.testing.assert_array_equal(got, want)


def test_episode_length_is_part_of_the_stream_and_older_states_were_unbounded():
    bounded = stream_fields(config_of_fields(episode_length=64))
    assert bounded["episode_length"] == 64
    # None and 0 are one spelling of "unbounded"
    assert stream_fields(config_of_fields(episode_length=None))["episode_length"] == 0
    assert stream_fields(config_of_fields(episode_length=0))["episode_length"] == 0
    assert config_differences(bounded, stream_fields(config_of_fields(episode_length=32))) == [
        "episode_length: saved 64, config 32"
    ]
    assert (
        config_differences(
            stream_fields(config_of_fields(episode_length=None)),
            stream_fields(config_of_fields(episode_length=0)),
        )
        == []
    )
    # a record written before the field existed streamed unbounded episodes
    older = {
        k: v
        for k, v in stream_fields(config_of_fields(episode_length=0)).items()
        if k != "episode_length"
    }
    assert config_differences(older, stream_fields(config_of_fields(episode_length=0))) == []
    assert config_differences(older, bounded) == ["episode_length: saved 0, config 64"]
    # a random schedule has no episodes to bound: not compared
    rand = stream_fields(config_of_fields(schedule="random", episode_length=64))
    assert rand["episode_length"] is None
    assert config_differences(rand, stream_fields(config_of_fields(schedule="random"))) == []
