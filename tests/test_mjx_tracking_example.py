"""examples/mjx_tracking.py in kinematics-only mode: after RSI the env-side quantities computed
by MuJoCo (MJX and mj_kinematics) equal the references the stream delivered."""

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
