"""make_dataset end to end: batch spec, oracle values, determinism, short trajectories,
resume, int32 indices, sharding."""

from __future__ import annotations

import itertools
import types

import numpy as np
import pytest

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ConfigError, IndexOverflowError, ShardingError
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.pipeline.stages import make_schedule
from trajopt_loader.pipeline.time_step import DT_TOLERANCE
from trajopt_loader.store import TrajectoryStore, export_npz

NQ, NV, NU = 9, 8, 2


def _revealing(i, rows, cols, base=0.0):  # the values of conftest's make_npz_tree
    return base + 100.0 * i + np.asarray(rows, np.float64)[..., None] + np.arange(cols) / 100.0


@pytest.fixture(scope="module", params=[4, 7], ids=lambda w: f"W{w}")
def synth(request, tmp_path_factory):
    """Store of one motion with lengths 1, 3, W-1, W, W+1, 10W (file i = traj i)."""
    from conftest import _make_npz_tree

    W = request.param
    lengths = sorted({1, 3, W - 1, W, W + 1, 10 * W})
    root = _make_npz_tree(tmp_path_factory.mktemp("npz"), {"walk": lengths}, nq=NQ, nv=NV, nu=NU)
    out = tmp_path_factory.mktemp("store") / "synth.zarr"
    export_npz(root, out, source="synth", convention="mujoco", progress=False)
    return W, lengths, TrajectoryStore(out)


def _config(**overrides):
    # The revealing synthetic values have no unit base quaternion at qpos[3:7]: raw data only
    # (cyclic continuation is tested on real data in test_cycles.py).
    return load_config("default", {"num_envs": 6, "window_size": 4, "cyclic": False, **overrides})


def _take(ds, n):
    return list(itertools.islice(iter(ds), n))


@pytest.mark.parametrize(
    "schedule, stride, allow_wrap, end_policy",
    [
        ("sequential", None, True, "wrap"),
        ("sequential", None, False, "clamp"),
        ("sequential", 3, False, "wrap"),
        ("sequential", 1, True, "clamp"),
        ("random", None, True, "wrap"),
        ("random", None, True, "clamp"),
    ],
)
def test_batches_equal_plain_numpy_oracle(synth, schedule, stride, allow_wrap, end_policy):
    W, lengths, store = synth
    config = _config(
        window_size=W,
        stride=stride,
        schedule=schedule,
        allow_wrap=allow_wrap,
        end_policy=end_policy,
        seed=7,
    )
    sched = make_schedule(config, store.lengths, store.select())
    for k, batch in enumerate(_take(make_dataset(config, store, 0, 1), 12)):
        element = sched[k]
        for f in (
            "env_id",
            "traj_id",
            "start",
            "episode_start",
            "episode_first_step",
            "episode_loop",
        ):
            np.testing.assert_array_equal(batch[f], element[f])
        for e, (i, s) in enumerate(zip(batch["traj_id"], batch["start"], strict=True)):
            L = lengths[i]
            t = s + np.arange(W)
            want_step = t % L if end_policy == "wrap" else np.minimum(t, L - 1)
            np.testing.assert_array_equal(batch["step"][e], want_step)
            wraps = t // L if end_policy == "wrap" else 0
            np.testing.assert_array_equal(batch["loop"][e], element["episode_loop"][e] + wraps)
            np.testing.assert_array_equal(batch["valid"][e], (t < L) | (end_policy == "wrap"))
            for key, cols, base in (("qpos", NQ, 0.0), ("qvel", NV, -1e4), ("action", NU, 1e4)):
                want = _revealing(i, want_step, cols, base).astype(np.float32)
                np.testing.assert_array_equal(batch[key][e], want)


def test_exact_batch_spec_on_real_cassie_store(cassie_store, shared_data):
    # agility_reference traj0 and traj1 (ids 0, 1; 2 kHz): traj2 runs at 29 Hz, not mixed in.
    config = load_config(
        "cassie",
        {
            "num_envs": 6,
            "window_size": 16,
            "keys": ("qpos", "qvel", "action"),
            "assignment": "explicit",
            "traj_ids": (0, 1),
            "zarr_path": str(cassie_store),
        },
    )
    batch = next(iter(make_dataset(config)))  # opens config.zarr_path; cassie.py enables references
    refs = {k: ((6, 16, 10), np.float32) for k in ("ref_motor_joint_pos", "ref_motor_joint_vel")}
    refs |= {
        k: ((6, 16, 3), np.float32)
        for k in (
            "ref_base_local_pos",
            "ref_base_local_trans",
            "ref_base_local_ori",
            "ref_base_robot_lin_vel",
            "ref_base_robot_ang_vel",
        )
    }
    refs["ref_len"] = ((6,), np.int32)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == refs | {
        "qpos": ((6, 16, 35), np.float32),
        "qvel": ((6, 16, 32), np.float32),
        "action": ((6, 16, 10), np.float32),
        "step": ((6, 16), np.int32),
        "loop": ((6, 16), np.int32),
        "valid": ((6, 16), np.bool_),
        "env_id": ((6,), np.int32),
        "traj_id": ((6,), np.int32),
        "start": ((6,), np.int32),
        "episode_start": ((6,), np.bool_),
        "episode_first_step": ((6,), np.int32),
        "episode_loop": ((6,), np.int32),
    }
    with np.load(shared_data / "cassie" / "trajopt" / "agility_reference" / "traj_1.npz") as f:
        np.testing.assert_array_equal(batch["qvel"][1], f["qvel"][:16].astype(np.float32))


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert a[k].dtype == b[k].dtype


@pytest.mark.parametrize("schedule", ["sequential", "random"])
def test_same_config_and_seed_same_stream(synth, schedule):
    _, _, store = synth
    config = _config(
        schedule=schedule,
        assignment="random" if schedule == "sequential" else "round_robin",
        allow_wrap=False,
        seed=3,
        read_threads=2,
    )
    for a, b in zip(
        _take(make_dataset(config, store, 0, 1), 8),
        _take(make_dataset(config, store, 0, 1), 8),
        strict=True,
    ):
        _same(a, b)
    other = _take(
        make_dataset(
            _config(
                schedule=schedule,
                seed=4,
                assignment="random" if schedule == "sequential" else "round_robin",
                allow_wrap=False,
            ),
            store,
            0,
            1,
        ),
        8,
    )
    assert any(
        not np.array_equal(x["start"], y["start"]) or not np.array_equal(x["traj_id"], y["traj_id"])
        for x, y in zip(other, _take(make_dataset(config, store, 0, 1), 8), strict=True)
    )


@pytest.mark.parametrize("read_threads, host_prefetch", [(0, 0), (1, 2), (2, 3)])
def test_restore_state_into_fresh_pipeline_is_bit_identical(synth, read_threads, host_prefetch):
    # resume: iterate 5, save, iterate 3; restore into a freshly built pipeline -> the same 3
    # batches.
    _, _, store = synth
    config = _config(
        allow_wrap=False,
        assignment="random",
        read_threads=read_threads,
        host_prefetch=host_prefetch,
        schedule="sequential",
        seed=11,
    )
    it = iter(make_dataset(config, store, 0, 1))
    for _ in range(5):
        next(it)
    state = it.get_state()
    seen = [next(it) for _ in range(3)]
    fresh = iter(make_dataset(config, TrajectoryStore(store.path), 0, 1))
    fresh.set_state(state)
    for a in seen:
        _same(a, next(fresh))
    assert f"num_threads={read_threads}" in str(fresh)  # grain buffers bounded by the config


def test_short_trajectory_is_padded_with_valid_false_never_dropped(synth):
    # a short trajectory: length 3, window 4, no wrap -> clamp-pad, valid=False, and it is still
    # scheduled.
    W, lengths, store = synth
    short = lengths.index(3)
    config = _config(window_size=4, allow_wrap=False, end_policy="clamp")
    batches = _take(make_dataset(config, store, 0, 1), 30)
    hits = [(b, e) for b in batches for e in np.flatnonzero(b["traj_id"] == short)]
    assert hits and {int(t) for b in batches for t in b["traj_id"]} == set(range(len(lengths)))
    b, e = hits[0]
    assert b["step"][e].tolist() == [0, 1, 2, 2]
    assert b["valid"][e].tolist() == [True, True, True, False]
    np.testing.assert_array_equal(b["qpos"][e], _revealing(short, [0, 1, 2, 2], NQ).astype("f4"))


def test_process_shards_union_equals_single_process(synth):
    _, _, store = synth
    config = _config(assignment="random", allow_wrap=False, seed=5)
    whole = _take(make_dataset(config, store, 0, 1), 4)
    parts = [_take(make_dataset(config, store, p, 3), 4) for p in range(3)]
    for k in range(4):
        for key in whole[k]:
            np.testing.assert_array_equal(np.concatenate([p[k][key] for p in parts]), whole[k][key])
    with pytest.raises(ShardingError, match="num_envs=6 is not divisible by process_count=4"):
        make_dataset(config, store, 0, 4)
    assert len(next(iter(make_dataset(config, store)))["env_id"]) == 6  # jax: 1 process


def test_int32_steps_and_overlong_lengths(synth):
    # 64-bit indices: steps stay trajectory-local int32; a length >= 2**31 is refused, never
    # truncated.
    _, _, store = synth
    batch = next(iter(make_dataset(_config(), store, 0, 1)))
    assert batch["step"].dtype == np.int32 and batch["start"].dtype == np.int32
    huge = types.SimpleNamespace(
        path="huge",
        lengths=np.array([5, 2**31], np.int64),
        keys=("qpos",),
        dts=np.ones(2),
        select=lambda sources=(), motions=(): np.array([0, 1], np.int32),
    )
    with pytest.raises(IndexOverflowError, match="length 2147483648"):
        make_dataset(_config(), huge, 0, 1)


def test_finite_stream_and_config_errors(synth):
    _, _, store = synth
    assert len(list(make_dataset(_config(num_batches=3), store, 0, 1))) == 3
    with pytest.raises(ConfigError, match="zarr_path"):
        make_dataset(_config())
    with pytest.raises(ConfigError, match="references.robot=None"):
        make_dataset(_config(**{"references.enabled": True}), store, 0, 1)
    with pytest.raises(ConfigError, match=r"traj_ids contains 99, .*\(selected ids: 0\.\.[0-9]+; "):
        make_dataset(_config(assignment="explicit", traj_ids=(0, 99)), store, 0, 1)
    explicit = next(
        iter(make_dataset(_config(assignment="explicit", traj_ids=(2, 1)), store, 0, 1))
    )
    assert explicit["traj_id"].tolist() == [2, 1, 2, 1, 2, 1]


@pytest.fixture(scope="module")
def rates(tmp_path_factory):
    """Store of one export: r/fast traj0, traj1 (ids 0, 1; dt 0.01 s), r/near traj0 (id 2;
    0.0104 s, 4% slower), r/slow traj0 (id 3; 0.1 s); 8 steps each."""
    from conftest import _make_npz_tree

    root = tmp_path_factory.mktemp("rates")
    for motion, dt, n in (("fast", 0.01, 2), ("near", 0.0104, 1), ("slow", 0.1, 1)):
        _make_npz_tree(root / "npz", {motion: [8] * n}, dt=dt)
    export_npz(root / "npz", root / "r.zarr", source="r", progress=False, convention="mujoco")
    return TrajectoryStore(root / "r.zarr")


def test_trajectories_of_different_dt_are_refused_naming_motions_rates_and_fixes(rates):
    assert DT_TOLERANCE == 0.05 and rates.dts.tolist() == [0.01, 0.01, 0.0104, 0.1]
    with pytest.raises(ConfigError) as info:
        make_dataset(_config(), rates, 0, 1)
    assert str(info.value) == (
        f"the 4 trajectories selected in {rates.path!r} (sources=(), motions=()) have time "
        "steps from 0.01 s to 0.1 s (x10; at most x1.05 is streamed together): a window of 4 "
        "steps would span 0.04 s in some envs and 0.4 s in others.\n"
        "  r/fast: 2 trajectories at dt 0.01 s\n"
        "  r/near: traj0 at dt 0.0104 s\n"
        "  r/slow: traj0 at dt 0.1 s\n"
        f"Fix one of: resample at export to one rate (`trajopt-loader export ROOT {rates.path} "
        "--source r --motion slow --model MODEL.xml --resample-dt 0.01 --overwrite`); play "
        "trajectories of one rate (--config.motions=\"('r/fast', 'r/near')\"); sample all of "
        "them at one control rate, interpolated (--config.control_dt=SECONDS); or stream them "
        "mixed on purpose with --config.allow_mixed_dt=True and read each env's rate as "
        "store.dts[batch['traj_id']]."
    )
    with pytest.raises(
        ConfigError,
        match=r"the 2 trajectories selected .* motions=\(\), "
        r"traj_ids=\(0, 3, 0\)\) have time steps from 0.01 s to 0.1 s .*\n  r/fast: "
        r"traj0 at dt 0.01 s\n  r/slow: traj0 at dt 0.1 s\n.*"
        r"play trajectories of one rate \(--config.traj_ids=\"\(0, 0\)\"\)",
    ):
        make_dataset(_config(assignment="explicit", traj_ids=(0, 3, 0)), rates, 0, 1)


def test_one_rate_within_tolerance_streams_and_mixing_on_purpose_is_allowed(rates):
    within = next(iter(make_dataset(_config(motions=("fast", "r/near")), rates, 0, 1)))
    assert within["traj_id"].tolist() == [0, 1, 2, 0, 1, 2]  # 0.0104 / 0.01: 4% <= 5%
    explicit = next(
        iter(make_dataset(_config(assignment="explicit", traj_ids=(2, 0)), rates, 0, 1))
    )
    assert explicit["traj_id"].tolist() == [2, 0, 2, 0, 2, 0]
    mixed = make_dataset(_config(allow_mixed_dt=True), rates, 0, 1)
    batch = next(iter(mixed))
    assert batch["traj_id"].tolist() == [0, 1, 2, 3, 0, 1]
    assert rates.dts[batch["traj_id"]].tolist() == [0.01, 0.01, 0.0104, 0.1, 0.01, 0.01]
    with pytest.raises(ConfigError, match="r/near: traj0 at dt 0.0104 s\n  r/slow: traj0"):
        make_dataset(_config(motions=("near", "slow")), rates, 0, 1)


def test_cassie_agility_reference_mixes_2khz_and_29hz_and_is_refused(cassie_store):
    config = load_config(
        "cassie", {"num_envs": 6, "motions": ("agility_reference",), "zarr_path": str(cassie_store)}
    )
    with pytest.raises(
        ConfigError,
        match=r"the 3 trajectories selected .* have time steps from "
        r"0.0005 s to 0.03439 s \(x68.8; at most x1.05 is streamed together\): a "
        r"window of 32 steps would span 0.016 s in some envs and 1.101 s in "
        r"others.\n  cassie/agility_reference: traj0, traj1 at dt 0.0005 s; traj2 "
        r"at dt 0.03439 s\n.*\(--config.assignment=explicit --config.traj_ids="
        r"\"\(0, 1\)\"\)",
    ):
        make_dataset(config)
    aslip = make_dataset(
        load_config(
            "cassie",
            {
                "num_envs": 6,
                "motions": ("aslip_walk",),
                "keys": ("qpos",),
                "references.enabled": False,
                "zarr_path": str(cassie_store),
            },
        )
    )
    assert aslip.stream["store"]["trajectories"] == 21  # 0.02462-0.0254 s: 3.2% spread, one rate


def test_id_ranges_for_messages():
    from trajopt_loader.pipeline.stages import _id_ranges

    assert _id_ranges(np.array([8, 0, 1, 2, 5, 7])) == "0..2, 5, 7..8"
    assert _id_ranges(np.array([], np.int32)) == "none"
    assert _id_ranges(np.array([3])) == "3"


def test_store_opened_from_config_caches_floats_in_the_batch_dtype(cassie_store):
    config = load_config(
        "cassie",
        {
            "num_envs": 4,
            "window_size": 8,
            "zarr_path": str(cassie_store),
            "motions": ("aslip_walk",),
            "references.enabled": False,
            "cyclic": False,
            "keys": ("qpos",),
        },
    )
    ds = make_dataset(config)
    batch = next(iter(ds))
    assert batch["qpos"].dtype == np.float32
    # Same values as gathering the stored float64 rows and casting each batch.
    raw = make_dataset(config, TrajectoryStore(str(cassie_store)), 0, 1)
    np.testing.assert_array_equal(next(iter(raw))["qpos"], batch["qpos"])


def test_bounded_episodes_restart_the_cyclic_continuation(cassie_store):
    """aslip_walk traj0 has 32 steps: W = S = 16 and episode_length = 48 give 3 chunks per
    episode (loops 0, 0, 1: the third window is continued by one cycle), then a restart at
    step 0 whose windows repeat the first episode's bit for bit."""
    store = TrajectoryStore(cassie_store)
    tid = store.info("cassie/aslip_walk/traj0").traj_id
    config = load_config(
        "cassie",
        {
            "num_envs": 2,
            "window_size": 16,
            "keys": ("qpos",),
            "assignment": "explicit",
            "traj_ids": (tid,),
            "references.enabled": False,
            "episode_length": 48,
            "dtype": "float64",
        },
    )
    batches = list(itertools.islice(iter(make_dataset(config, store, 0, 1)), 7))
    assert [b["episode_start"].tolist() for b in batches] == [
        [True] * 2,
        [False] * 2,
        [False] * 2,
    ] * 2 + [[True] * 2]
    assert [int(b["start"][0]) for b in batches] == [0, 16, 0, 0, 16, 0, 0]
    assert [int(b["episode_loop"][0]) for b in batches] == [0, 0, 1, 0, 0, 1, 0]
    raw = store.read(tid, "qpos")
    np.testing.assert_array_equal(batches[0]["qpos"][0], raw[:16])
    assert batches[2]["qpos"][0, 0, 0] > raw[-1, 0]  # the second loop continues forward
    for k in range(3):
        np.testing.assert_array_equal(batches[3 + k]["qpos"], batches[k]["qpos"])
