"""End to end on real Cassie data: export with derived qvel → stream with references → jit."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from conftest import SHARED_DATA

from trajopt_loader import TrajectoryStore, device_iterator, export_npz, load_config, make_dataset
from trajopt_loader.kinematics import make_export_preprocess

DATA = SHARED_DATA
CASSIE_XML = DATA / "cassie" / "cassie.xml"


def test_aslip_walk_exports_with_derived_qvel_and_streams_with_references(tmp_path):
    out = tmp_path / "cassie.zarr"
    preprocess = make_export_preprocess(str(CASSIE_XML), convention="mujoco", derive_qvel=True)
    export_npz(
        DATA / "cassie" / "trajopt",
        out,
        source="cassie",
        motion="aslip_walk",
        convention="mujoco",
        preprocess=preprocess,
        progress=False,
    )
    store = TrajectoryStore(str(out))
    assert len(store.trajectories) == 21 and "qvel" in store.keys
    info = store.trajectories[7]
    assert info.source_file == "traj_7.npz" and info.derived["qvel"].startswith(
        "mj_differentiatePos"
    )
    # Oracle independent of the export code: for the hinge joints the motors drive, the derived
    # velocity at the joint's dof address is the central difference of qpos at its qpos address.
    with np.load(DATA / "cassie" / "trajopt" / "aslip_walk" / "traj_7.npz") as f:
        qpos, dt = f["qpos"], float(f["dt"])
    model = mujoco.MjModel.from_xml_path(str(CASSIE_XML))
    joints = model.actuator_trnid[:, 0]
    assert (model.jnt_type[joints] == mujoco.mjtJoint.mjJNT_HINGE).all()
    qadr, dadr = model.jnt_qposadr[joints], model.jnt_dofadr[joints]
    assert (qadr != dadr).all()  # reading velocities at qpos addresses would be wrong
    qvel = store.read(7, "qvel")
    central = (qpos[2:, qadr] - qpos[:-2, qadr]) / (2 * dt)
    np.testing.assert_allclose(qvel[1:-1, dadr], central, rtol=1e-9, atol=1e-9)

    config = load_config(
        "cassie", {"zarr_path": str(out), "num_envs": 8, "window_size": 16, "num_batches": 3}
    )
    assert config.references.enabled and config.references.robot == "cassie"
    host = list(make_dataset(config, store, 0, 1))
    assert {k: v.shape for k, v in host[0].items() if k.startswith("ref_")} == {
        "ref_motor_joint_pos": (8, 16, 10),
        "ref_motor_joint_vel": (8, 16, 10),
        "ref_base_local_pos": (8, 16, 3),
        "ref_base_local_trans": (8, 16, 3),
        "ref_base_local_ori": (8, 16, 3),
        "ref_base_robot_lin_vel": (8, 16, 3),
        "ref_base_robot_ang_vel": (8, 16, 3),
        "ref_len": (8,),
    }
    # Motor joint references are qpos / qvel at the addresses MuJoCo gives for the motors' joints.
    b = host[0]
    np.testing.assert_array_equal(b["ref_motor_joint_pos"], b["qpos"][..., qadr])
    np.testing.assert_array_equal(b["ref_motor_joint_vel"], b["qvel"][..., dadr])

    @jax.jit
    def consume(batch):
        return jnp.sum(batch["ref_motor_joint_pos"] * batch["valid"][..., None])

    with device_iterator(make_dataset(config, store, 0, 1)) as it:
        got = [float(consume(batch)) for batch in it]
    want = [
        float((h["ref_motor_joint_pos"].astype(np.float64) * h["valid"][..., None]).sum())
        for h in host
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5)
