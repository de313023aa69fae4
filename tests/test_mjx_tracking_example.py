"""examples/mjx_tracking.py in kinematics-only mode: after RSI the env-side quantities computed
by MuJoCo (MJX and mj_kinematics) equal the references the stream delivered, body positions
included; the early terminations reported to the adaptive sampler land in the hand-computed
(trajectory, bin) statistics."""

import importlib.util
from pathlib import Path

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trajopt_loader.pipeline.dataset import make_dataset
from trajopt_loader.pipeline.device import device_iterator
from trajopt_loader.store import TrajectoryStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mjx_tracking.py"


def _example():
    spec = importlib.util.spec_from_file_location("mjx_tracking", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_kinematics_loop_references_match_mujoco_after_rsi(shared_data, tmp_path):
    ex = _example()
    store_path = ex.export_aslip(shared_data, tmp_path / "cassie.zarr")
    store = TrajectoryStore(str(store_path))
    E, W = 3, 5
    config = ex.tracking_config(store_path, E, W, num_batches=2)
    xml = shared_data / "cassie" / "cassie.xml"
    tracker = ex.Tracker(xml, float(np.nanmedian(store.dts)), physics=False)
    carry = tracker.initial_carry(E)
    host = mujoco.MjModel.from_xml_path(str(xml))
    data = mujoco.MjData(host)
    pelvis = host.body("cassie-pelvis").id
    act_q, act_v = tracker.act_q, tracker.act_v
    with device_iterator(make_dataset(config, store, 0, 1)) as it:
        for k, batch in enumerate(it):
            carry, out = tracker.window(carry, batch)
            b = {key: np.asarray(v) for key, v in batch.items()}
            o = {key: np.asarray(v) for key, v in out.items()}
            assert b["qpos"].shape[1] == W + 1  # one look-ahead frame
            assert o["reset"].any(axis=0).tolist() == [k == 0] * E and not o["done"].any()
            if k == 0:  # RSI: the state is the reference (= the episode origin) at t = 0
                np.testing.assert_array_equal(o["reset_qpos"][0], b["qpos"][:, 0])
                np.testing.assert_array_equal(b["origin_qpos"], b["qpos"][:, 0])
            for t in range(W):
                ref = t + 1  # the state reached by step t
                np.testing.assert_allclose(
                    o["base_pos"][t], b["ref_base_local_pos"][:, ref], atol=1e-5
                )
                np.testing.assert_array_equal(o["motor_pos"][t], b["ref_motor_joint_pos"][:, ref])
                rpy = Rotation.from_quat(o["base_quat"][t], scalar_first=True).as_euler("ZYX")
                np.testing.assert_allclose(rpy[:, ::-1], b["ref_base_local_ori"][:, ref], atol=1e-4)
                # PD bookkeeping: torques towards the next reference, divided by the gear
                torque = (
                    ex.KP * (b["ref_motor_joint_pos"][:, ref] - b["qpos"][:, t][:, act_q])
                    - ex.KD * b["qvel"][:, t][:, act_v]
                )
                want = np.clip(torque / host.actuator_gear[:, 0], *host.actuator_ctrlrange.T)
                np.testing.assert_allclose(o["ctrl"][t], want, rtol=1e-5, atol=1e-5)
                for e in range(E):  # MuJoCo itself (float64) agrees with MJX's bodies
                    data.qpos[:] = b["qpos"][e, ref]
                    mujoco.mj_kinematics(host, data)
                    np.testing.assert_allclose(o["base_pos"][t, e], data.xpos[pelvis], atol=1e-5)
            np.testing.assert_allclose(o["reward"], 1.0, atol=1e-4)  # a perfect tracker


@pytest.mark.slow
def test_body_term_is_exact_after_rsi(shared_data, tmp_path):
    """With exported body states: MJX ``xpos`` of the stored bodies equals ``ref_body_pos`` after
    RSI and every kinematic step, the body term is at its maximum 1, and MuJoCo agrees."""
    from trajopt_loader.transforms.references_bodies import store_body_names

    ex = _example()
    store_path = ex.export_aslip(shared_data, tmp_path / "cassie.zarr", bodies=True)
    store = TrajectoryStore(str(store_path))
    E, W = 2, 3
    config = ex.tracking_config(store_path, E, W, num_batches=1, bodies=True)
    xml = shared_data / "cassie" / "cassie.xml"
    names = store_body_names(store)
    tracker = ex.Tracker(xml, float(np.nanmedian(store.dts)), body_names=names)
    host = mujoco.MjModel.from_xml_path(str(xml))
    data = mujoco.MjData(host)
    ids = [host.body(n).id for n in names]
    assert len(names) == host.nbody - 1  # "all": every body but the world
    with device_iterator(make_dataset(config, store, 0, 1)) as it:
        batch = next(it)
        _, out = tracker.window(tracker.initial_carry(E), batch)
        b = {key: np.asarray(v) for key, v in batch.items()}
        o = {key: np.asarray(v) for key, v in out.items()}
    assert o["reset"][0].all() and o["body_pos"].shape == (W, E, len(names), 3)
    for t in range(W):
        np.testing.assert_allclose(o["body_pos"][t], b["ref_body_pos"][:, t + 1], atol=2e-5)
        for e in range(E):  # MuJoCo (float64) on the same state
            data.qpos[:] = b["qpos"][e, t + 1]
            mujoco.mj_kinematics(host, data)
            np.testing.assert_allclose(b["ref_body_pos"][e, t + 1], data.xpos[ids], atol=2e-5)
    np.testing.assert_allclose(o["body_term"], 1.0, atol=1e-6)
    np.testing.assert_allclose(o["reward"], 1.0, atol=1e-4)


@pytest.mark.slow
def test_adaptive_reports_fold_into_the_failing_bins(shared_data, tmp_path):
    """The lagging kinematic tracker (state one step behind) terminates where the reference
    base moves more than ``terminate_m`` per step; the first such window step per env is
    reported, and the statistics hold ``ema_rate * (1 - ema_rate)**age`` times the failures of
    each (trajectory, bin) computed by hand from the batches."""
    ex = _example()
    store_path = ex.export_aslip(shared_data, tmp_path / "cassie.zarr")
    store = TrajectoryStore(str(store_path))
    E, W, n, thr = 8, 8, 3, 0.02
    config = ex.tracking_config(store_path, E, W, num_batches=n, seed=3, adaptive=True)
    tracker = ex.Tracker(
        shared_data / "cassie" / "cassie.xml",
        float(np.nanmedian(store.dts)),
        lagging=True,
        terminate_m=thr,
    )
    carry = tracker.initial_carry(E)
    ds = make_dataset(config, store, 0, 1)
    expected: dict[tuple[int, int], float] = {}
    outcomes = set()  # both failing and surviving envs occur
    rate = config.adaptive.ema_rate
    with device_iterator(ds) as it:
        for _ in range(n):
            batch = next(it)
            carry, out = tracker.window(carry, batch)
            failed, fail_step = ex.first_failures(out["done"])
            it.report_failures(failed, fail_step)
            b = {key: np.asarray(v) for key, v in batch.items()}
            # by hand: the state after step t is the reference at t, compared with t + 1
            moved = np.linalg.norm(np.diff(b["ref_base_local_pos"], axis=1), axis=-1)
            done = b["valid"][:, 1:] & (moved > thr)  # [E, W]
            np.testing.assert_array_equal(failed, done.any(axis=1))
            outcomes.update(failed.tolist())
            np.testing.assert_array_equal(fail_step[failed], done.argmax(axis=1)[failed])
            for key in expected:
                expected[key] *= 1.0 - rate
            for e in np.flatnonzero(failed):
                step = int(b["step"][e, fail_step[e]])
                cell = (int(b["traj_id"][e]), step // ex.ADAPTIVE_BIN_STEPS)
                expected[cell] = expected.get(cell, 0.0) + rate
        assert outcomes == {True, False} and ds.feedback.folded == n  # every report accepted
    stats = ds.feedback.statistics()
    layout = ds.feedback.layout
    eligible = np.unique(store.select(motions=("aslip_walk",)))
    got = {
        (int(eligible[layout.owner[i]]), int(layout.first[i]) // ex.ADAPTIVE_BIN_STEPS): stats[i]
        for i in np.flatnonzero(stats)
    }
    assert got.keys() == expected.keys()
    for cell, value in expected.items():
        np.testing.assert_allclose(got[cell], value, rtol=1e-12)
