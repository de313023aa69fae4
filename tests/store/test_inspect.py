"""Store inspection (trajopt_loader.store.inspect): frozen recordings, qvel vs qpos / dt."""

from __future__ import annotations

import numpy as np
import pytest
from test_velocity import _free_base_motion

from trajopt_loader.store import TrajectoryStore, export_npz
from trajopt_loader.store.inspect import distinct_rows, inspect_store, model_joint_addresses


def test_distinct_rows_flag_frozen_recordings():
    a = np.zeros((10, 3))
    assert distinct_rows(a) == 1
    a[4, 1] = 1.0
    assert distinct_rows(a) == 2
    assert distinct_rows(np.arange(5.0)) == 5 and distinct_rows(np.zeros((0, 2))) == 0


def test_frozen_and_velocity_flags_in_store_report(tmp_path, make_npz_tree):
    qpos, qvel = _free_base_motion(n=40)
    frozen = np.tile(qpos[:1], (40, 1))
    few = qpos[np.arange(40) // 20 * 20]  # two distinct rows out of 40
    make_npz_tree(
        tmp_path / "npz",
        {
            "m": [
                {"length": 40, "qpos": qpos, "qvel": qvel},
                {"length": 40, "qpos": frozen, "qvel": np.zeros_like(qvel)},
                {"length": 40, "qpos": qpos, "qvel": 2.0 * qvel},
                {"length": 40, "qpos": few, "qvel": qvel},
            ]
        },
        nq=10,
        nv=9,
    )
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    report = inspect_store(TrajectoryStore(tmp_path / "s.zarr"))
    t0, t1, t2, t3 = report.trajectories
    assert t0.flags == [] and t0.distinct_rows["qpos"] == 40
    assert t0.velocity.scale == pytest.approx(1.0, abs=1e-12)
    assert t1.distinct_rows == {"qpos": 1, "qvel": 1, "action": 40}
    assert t1.flags == ["qpos frozen: 1 distinct row of 40", "qvel frozen: 1 distinct row of 40"]
    assert t2.velocity.scale == pytest.approx(2.0, rel=1e-12)
    assert t2.flags == ["velocity: qvel ~= 2 x dq/dt; is dt off by a factor 2?"]
    assert t3.flags[0] == "qpos nearly frozen: 2 distinct rows of 40"
    text = str(report)
    assert "flags: " in text and "s/m/traj1: qpos frozen: 1 distinct row of 40" in text
    stats = report.keys["action"]  # action[t, k] = 1e4 + 100 i + t + k / 100, i < 4, t < 40
    assert stats.min == 1e4 and stats.max == 1e4 + 300 + 39 + 0.01
    assert stats.mean == pytest.approx(1e4 + 150 + 19.5 + 0.005)


def test_cassie_store_report(cassie_store, shared_data):
    store = TrajectoryStore(cassie_store)
    report = inspect_store(store)
    assert sorted({p for p, _ in report.flags}) == [
        "cassie/agility_reference/traj1",
        "cassie/agility_reference/traj2",
    ]
    assert ("cassie/agility_reference/traj1", "qvel frozen: 1 distinct row of 1682") in report.flags
    # nq - nv = 3 (ball joints in the legs): without the model the qvel check is skipped
    assert report.trajectories[0].velocity is None and "pass --model" in report.notes[0]
    nq, nv, qadr, dadr = model_joint_addresses(shared_data / "cassie" / "cassie.xml")
    assert (nq, nv, len(qadr)) == (35, 32, 23) and qadr[3] == 7 and dadr[3] == 6
    assert (qadr[6], dadr[6]) == (14, 12)  # left-knee, after the left achilles-rod ball joint
    report = inspect_store(store, model_path=shared_data / "cassie" / "cassie.xml")
    v0, v1 = report.trajectories[0].velocity, report.trajectories[1].velocity
    assert v0.correlation > 0.999 and v0.scale == pytest.approx(1.0, abs=1e-3) and not v0.flagged
    assert v1.scale == 0.0 and v1.reason == "qvel is zero while qpos moves"
    text = str(report)
    assert "agility_reference/  3 trajectories, length 28..1682" in text
    assert "aslip_walk/  21 trajectories, length 31..32" in text
    assert "convention mujoco (quat wxyz" in text
