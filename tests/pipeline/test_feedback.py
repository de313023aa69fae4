"""Closed-loop streams: reports drive the starts deterministically (lag, waits, timeouts), the
statistics travel with every kind of checkpoint and restore bit-exactly, static weights."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from trajopt_loader.configs import load_config
from trajopt_loader.errors import CheckpointError, ConfigError
from trajopt_loader.pipeline import device_iterator, make_dataset
from trajopt_loader.pipeline.checkpoint import (
    load_state,
    restore_with_manager,
    save_state,
    save_with_manager,
)
from trajopt_loader.pipeline.feedback import FeedbackTimeoutError
from trajopt_loader.pipeline.process_state import restore_process_state, save_process_state
from trajopt_loader.store import TrajectoryStore, export_npz

E, W, LAG = 16, 4, 4
LENGTHS = [40, 60, 50]  # dt 0.01 s: bins of 0.1 s = 10 steps


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from conftest import _make_npz_tree

    tmp = tmp_path_factory.mktemp("adaptive")
    _make_npz_tree(tmp / "npz", {"walk": LENGTHS[:2], "run": LENGTHS[2:]})
    export_npz(tmp / "npz", tmp / "s.zarr", source="toy", convention="mujoco", progress=False)
    return TrajectoryStore(tmp / "s.zarr")


def config_of(store, **overrides):
    base = {
        "zarr_path": str(store.path),
        "num_envs": E,
        "window_size": W,
        "schedule": "random",
        "cyclic": False,
        "keys": ("qpos",),
        "adaptive.enabled": True,
        "adaptive.lag": LAG,
        "adaptive.bin_s": 0.1,
        "adaptive.ema_rate": 0.5,
        "adaptive.report_timeout_s": 5.0,
    }
    return load_config("default", {**base, **overrides})


def hard(batch, store):
    """The consumer's deterministic failures: traj ``walk/traj1`` steps 20..29 fail at once."""
    traj = np.asarray(batch["traj_id"])
    step = np.asarray(batch["start"])
    target = store.select(motions=("walk",))[1]
    return (traj == target) & (step >= 20) & (step < 30), np.zeros(traj.shape, np.int64)


def run(it, store, n, report=hard):
    out = []
    for _ in range(n):
        batch = next(it)
        out.append({k: np.asarray(v) for k, v in batch.items()})
        it.report_failures(*report(batch, store))
    return out


def same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_same_reports_give_identical_batches_and_the_sampler_concentrates(store):
    config = config_of(store)
    a = run(iter(make_dataset(config, store, 0, 1)), store, 30)
    b = run(iter(make_dataset(config, store, 0, 1)), store, 30)
    same(a, b)
    hits = [hard(x, store)[0].mean() for x in a]
    # uniform: 10 of the 150 starts are hard (6.7%); after the reports feed back: most of them
    assert np.mean(hits[:LAG]) < 0.3 and np.mean(hits[-10:]) > 0.6, hits
    c = run(
        iter(make_dataset(config, store, 0, 1)),
        store,
        30,
        report=lambda b, s: (np.zeros(E, bool), np.zeros(E, np.int64)),
    )
    same(a[:LAG], c[:LAG])  # batches 0..lag-1 use no report at all
    assert any((x["start"] != y["start"]).any() for x, y in zip(a[LAG:], c[LAG:], strict=True))


def test_batch_k_uses_only_reports_up_to_k_minus_lag(store):
    config = config_of(store)
    j = 5  # change only the report of batch j: batches <= j + lag - 1 stay, later ones change
    calls = itertools.count()

    def flip(b, s):  # the j-th report (counting from 0) flips to "all failed at step 1"
        return (np.ones(E, bool), np.full(E, 1)) if next(calls) == j else hard(b, s)

    a = run(iter(make_dataset(config, store, 0, 1)), store, 20)
    b = run(iter(make_dataset(config, store, 0, 1)), store, 20, report=flip)
    same(a[: j + LAG], b[: j + LAG])
    assert (a[j + LAG]["start"] != b[j + LAG]["start"]).any()


def test_statistics_follow_the_update_rule(store):
    config = config_of(store)
    ds = make_dataset(config, store, 0, 1)
    it = iter(ds)
    batch = next(it)
    target = store.select(motions=("walk",))[1]
    failed = np.asarray(batch["traj_id"]) == target  # fail at window step 2: step start + 2
    it.report_failures(failed, np.full(E, 2))
    steps = (np.asarray(batch["start"])[failed] + 2) % 60  # end_policy wrap, length 60
    # bins of 10 steps in id order: run (50 steps: bins 0-4), walk/traj0 (40: 5-8), walk/traj1
    assert list(store.lengths) == [50, 40, 60] and target == 2
    want = np.zeros(15)
    np.add.at(want, 9 + steps // 10, 0.5)  # rate 0.5 x count of failures in the bin
    np.testing.assert_array_equal(ds.feedback.statistics(), want)
    assert failed.any()


def test_missing_report_waits_then_fails_naming_the_batch(store):
    config = config_of(store, **{"adaptive.report_timeout_s": 0.3, "read_threads": 0})
    it = iter(make_dataset(config, store, 0, 1))
    got = [next(it) for _ in range(LAG)]  # batches 0..lag-1 need no report
    with pytest.raises(
        FeedbackTimeoutError,
        match=rf"batch {LAG} draws from the failure reports "
        r"of batches 0..0 .* report of batch 0 did not arrive within "
        r"adaptive.report_timeout_s=0.3 s",
    ):
        next(it)
    assert it.get_state()["next_index"] == LAG  # failed, nothing skipped
    it.report_failures(*hard(got[0], store), batch_index=0)
    it.set_state(it.get_state())  # retry once the report is in
    assert next(it)["traj_id"].shape == (E,)


def test_bad_reports_are_refused(store):
    it = iter(make_dataset(config_of(store), store, 0, 1))
    next(it)
    with pytest.raises(ConfigError, match=r"only batches handed out \(0..0\)"):
        it.report_failures(np.zeros(E, bool), np.zeros(E), batch_index=1)
    with pytest.raises(ConfigError, match=r"window step 4, outside \[0, 4\)"):
        it.report_failures(np.ones(E, bool), np.full(E, 4))
    it.report_failures(np.zeros(E, bool), np.zeros(E))
    with pytest.raises(ConfigError, match=r"batch 0 was already reported"):
        it.report_failures(np.zeros(E, bool), np.zeros(E))


def test_json_restore_mid_run_continues_identically_including_statistics(store, tmp_path):
    config = config_of(store)
    ds = make_dataset(config, store, 0, 1)
    it = iter(ds)
    run(it, store, 11)
    save_state(tmp_path / "s.json", it.get_state())
    stats = ds.feedback.statistics()
    rest = run(it, store, 9)
    fresh_ds = make_dataset(config, store, 0, 1)
    fresh = iter(fresh_ds)
    fresh.set_state(load_state(tmp_path / "s.json"))
    assert fresh_ds.feedback.statistics().tobytes() == stats.tobytes()  # bit-exact
    same(run(fresh, store, 9), rest)
    assert fresh_ds.feedback.statistics().tobytes() == ds.feedback.statistics().tobytes()
    assert fresh.get_state() == it.get_state()


def test_device_iterator_per_process_and_orbax_restores(store, tmp_path):
    import orbax.checkpoint as ocp

    config = config_of(store)
    with (
        device_iterator(make_dataset(config, store, 0, 1)) as it,
        ocp.CheckpointManager(tmp_path / "orbax") as mngr,
    ):
        run(it, store, 7)
        save_process_state(tmp_path / "proc", it, config, process_index=0, process_count=1)
        save_with_manager(mngr, 7, it)
        mngr.wait_until_finished()
        rest = run(it, store, 8)
        final = it.get_state()
    with device_iterator(make_dataset(config, store, 0, 1)) as fresh:
        restore_process_state(tmp_path / "proc", fresh, config, process_index=0, process_count=1)
        same(run(fresh, store, 8), rest)
        assert fresh.get_state() == final
    with (
        device_iterator(make_dataset(config, store, 0, 1)) as fresh,
        ocp.CheckpointManager(tmp_path / "orbax") as mngr,
    ):
        restore_with_manager(mngr, fresh)
        same(run(fresh, store, 8), rest)


def test_state_of_another_adaptive_config_or_without_statistics_is_refused(store):
    it = iter(make_dataset(config_of(store), store, 0, 1))
    run(it, store, 3)
    state = it.get_state()
    other = iter(make_dataset(config_of(store, **{"adaptive.ema_rate": 0.25}), store, 0, 1))
    with pytest.raises(CheckpointError, match=r"adaptive: saved .*'ema_rate': 0.5"):
        other.set_state(state)
    plain = iter(make_dataset(config_of(store, **{"adaptive.enabled": False}), store, 0, 1))
    with pytest.raises(CheckpointError, match=r"adaptive: saved \{.*\}, config False"):
        plain.set_state(state)
    fresh = iter(make_dataset(config_of(store), store, 0, 1))
    with pytest.raises(CheckpointError, match=r"no 'feedback' statistics"):
        fresh.set_state({k: v for k, v in state.items() if k != "feedback"})


def test_motion_weights_scale_the_draws(store):
    config = config_of(
        store, **{"adaptive.enabled": False, "motion_weights": {"run": 3.0}, "num_envs": 512}
    )
    batches = list(itertools.islice(iter(make_dataset(config, store, 0, 1)), 4))
    run_id = store.select(motions=("run",))[0]
    share = np.mean([np.mean(b["traj_id"] == run_id) for b in batches])
    # uniform over valid starts x weight: 3 * 50 / (40 + 60 + 3 * 50) = 0.6; 2048 draws: sd 0.011
    assert abs(share - 0.6) < 0.045, share
    with pytest.raises(ConfigError, match=r"motion_weights names 'jump'"):
        make_dataset(config_of(store, motion_weights={"jump": 2.0}), store, 0, 1)


def test_unknown_dt_needs_bins_in_steps(tmp_path):
    from conftest import _make_npz_tree

    _make_npz_tree(tmp_path / "npz", {"walk": [20, 30]}, dt=None)
    with pytest.warns(UserWarning, match=r"their dt is recorded as unknown"):
        export_npz(
            tmp_path / "npz",
            tmp_path / "s.zarr",
            source="toy",
            convention="mujoco",
            progress=False,
            dt="unknown",
        )
    nan_store = TrajectoryStore(tmp_path / "s.zarr")
    with pytest.raises(ConfigError, match=r"2 of 2 have an unknown dt .*adaptive.bin_steps=N"):
        make_dataset(config_of(nan_store), nan_store, 0, 1)
    ds = make_dataset(config_of(nan_store, **{"adaptive.bin_steps": 7}), nan_store, 0, 1)
    np.testing.assert_array_equal(ds.feedback.layout.width, [7, 7, 6, 7, 7, 7, 7, 2])


def seq_config(store, **overrides):
    return config_of(store, **{"schedule": "sequential", "episode_length": 3 * W, **overrides})


def test_sequential_episodes_start_where_their_trajectory_fails(store, tmp_path):
    config = seq_config(store)
    a = run(iter(make_dataset(config, store, 0, 1)), store, 45)
    same(a, run(iter(make_dataset(config, store, 0, 1)), store, 45))
    target = store.select(motions=("walk",))[1]
    for k, b in enumerate(a):  # envs keep their trajectory; an episode marches by W from s0
        np.testing.assert_array_equal(b["traj_id"], a[0]["traj_id"])
        np.testing.assert_array_equal(b["episode_start"], np.full(E, k % 3 == 0))
        s0 = a[k - k % 3]["start"]
        np.testing.assert_array_equal(b["start"], (s0 + (k % 3) * W) % store.lengths[b["traj_id"]])
        np.testing.assert_array_equal(b["episode_first_step"], s0)
    on_target = a[0]["traj_id"] == target
    first = np.array([b["start"][on_target] for b in a[::3]])  # episode first steps
    hard_share = ((first >= 20) & (first < 30)).mean(axis=1)
    assert hard_share[:2].mean() < 0.5 and hard_share[-5:].mean() > 0.7, hard_share
    it = iter(make_dataset(config, store, 0, 1))
    run(it, store, 20)  # mid-episode (20 % 3 == 2)
    save_state(tmp_path / "seq.json", it.get_state())
    fresh = iter(make_dataset(config, store, 0, 1))
    fresh.set_state(load_state(tmp_path / "seq.json"))
    same(run(fresh, store, 25), a[20:])


def test_sequential_adaptive_needs_bounded_wrapping_episodes(store):
    with pytest.raises(ConfigError, match=r"needs bounded episodes .* episode_length=0"):
        seq_config(store, episode_length=0)
    with pytest.raises(ConfigError, match=r"motion_weights=.* needs schedule='random'"):
        seq_config(store, **{"adaptive.enabled": False, "motion_weights": {"run": 2.0}})


def test_feedback_state_round_trips_bit_exactly_and_refuses_tampering():
    from trajopt_loader.pipeline.feedback_state import pack_state, parse_state

    base = np.array([0.1, 1 / 3, 5e-324, 0.0])  # not exact in decimal; a subnormal
    reports = {7: (np.array([1]), np.array([2])), 9: (np.array([0, 3]), np.array([1, 4]))}
    state = pack_state(4, 8, 7, base, {7: reports[7]}, {9: reports[9]})
    assert state["counts"] == [[7, [1], [2]]] and state["pending"] == [[9, [0, 3], [1, 4]]]
    base_index, got, folded = parse_state(state, 4)
    assert base_index == 7 and got.tobytes() == base.tobytes()
    assert sorted(folded) == [7, 9]
    with pytest.raises(CheckpointError, match=r"with 4 bins; this stream has version 1 with 5"):
        parse_state(state, 5)
    with pytest.raises(CheckpointError, match=r"counts of batches \[\], expected 7..7"):
        parse_state({**state, "counts": []}, 4)
    with pytest.raises(CheckpointError, match=r"malformed"):
        parse_state({**state, "base": "not base64!"}, 4)


def test_device_iterator_restores_and_closes_while_its_threads_wait_for_reports(store):
    import time

    config = config_of(store, **{"adaptive.report_timeout_s": 60.0})
    it = device_iterator(make_dataset(config, store, 0, 1))
    got = [next(it) for _ in range(LAG)]  # unreported: the read-ahead threads now wait
    state = it.get_state()
    time.sleep(0.3)
    t = time.monotonic()
    it.set_state(state)  # stops the waiting threads: does not sit out the 60 s timeout
    for k, b in enumerate(got):
        it.report_failures(*hard(b, store), batch_index=k)
    nxt = next(it)
    it.close()
    assert time.monotonic() - t < 30
    ref = iter(make_dataset(config, store, 0, 1))
    run(ref, store, LAG)
    np.testing.assert_array_equal(np.asarray(nxt["start"]), next(ref)["start"])


def test_the_open_loop_stream_command_refuses_adaptive_configs(store):
    from trajopt_loader.commands.stream import run_stream

    with pytest.raises(ConfigError, match=r"open-loop consumer that reports no failures"):
        run_stream(config_of(store), 2, progress=False)
