"""Tests of trajopt_loader.kinematics.fk: MJX site positions against mj_kinematics on the original
(unmodified) models, conventions, chunking, and the EndEffectorPositions grain transform
(computed end-effector positions, never zeros).

MJX compiles once per (model object, sites, chunk shape): the tests reuse one model object per
robot and 64-frame batches, so each robot compiles once per module."""

from __future__ import annotations

import pickle

import mujoco
import numpy as np
import pytest
from conftest import SHARED_DATA
from scipy.spatial.transform import Rotation

from trajopt_loader import kinematics as fk
from trajopt_loader.conventions import MUJOCO, PINOCCHIO
from trajopt_loader.errors import ConfigError, MissingKeyError, ModelError
from trajopt_loader.transforms.end_effectors import EndEffectorPositions

DATA = SHARED_DATA
DIGIT_XML = DATA / "digit_v3" / "digit-v3.xml"
CASSIE_XML = DATA / "cassie" / "cassie.xml"
TRAJOPT = DATA / "cassie" / "trajopt"
DIGIT_SITES = ("left-hand", "right-hand", "left-foot-mid", "right-foot-mid")
ATOL = 2e-5  # m: float32 MJX vs float64 MuJoCo along ~20-link chains of ~1 m extent


@pytest.fixture(scope="module")
def digit():
    return fk.load_kinematics_model(str(DIGIT_XML)), mujoco.MjModel.from_xml_path(str(DIGIT_XML))


@pytest.fixture(scope="module")
def cassie_full():
    """The original model (solver PGS, meshes, contacts): MJX itself rejects it."""
    return mujoco.MjModel.from_xml_path(str(CASSIE_XML))


def random_qpos(model, n, rng):
    """[n, nq]: random base pose, ball joints uniform on SO(3), limited hinges/slides in range."""
    q = np.tile(model.qpos0, (n, 1))
    for j in range(model.njnt):
        a, kind = model.jnt_qposadr[j], model.jnt_type[j]
        if kind == mujoco.mjtJoint.mjJNT_FREE:
            q[:, a : a + 3] = rng.uniform(-1, 1, (n, 3))
            q[:, a + 3 : a + 7] = Rotation.random(n, random_state=rng).as_quat(scalar_first=True)
        elif kind == mujoco.mjtJoint.mjJNT_BALL:
            q[:, a : a + 4] = Rotation.random(n, random_state=rng).as_quat(scalar_first=True)
        else:
            lo, hi = model.jnt_range[j] if model.jnt_limited[j] else (-1.0, 1.0)
            q[:, a] = rng.uniform(lo, hi, n)
    return q


def oracle(model, qpos, names):
    """site_xpos by mj_kinematics on ``model`` itself, qpos [n, nq] MuJoCo convention."""
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, s) for s in names]
    data, out = mujoco.MjData(model), []
    for row in qpos:
        data.qpos[:] = row
        mujoco.mj_kinematics(model, data)
        out.append(data.site_xpos[ids].copy())
    return np.stack(out)


def test_site_ids_unknown_lists_available(digit):
    np.testing.assert_array_equal(fk.site_ids(digit[0], ["right-hand", "left-hand"]), [4, 2])
    with pytest.raises(MissingKeyError, match=r"'left-toe'.*available sites.*'left-foot-mid'"):
        fk.site_ids(digit[0], ["left-hand", "left-toe"])
    with pytest.raises(MissingKeyError):
        fk.site_ids(digit[0], [])


@pytest.mark.slow
def test_digit_mjx_matches_mujoco_random_states(digit):
    model, full = digit
    assert fk.has_floating_base(model)  # 3 world slides + ball: MuJoCo's free-joint layout
    qpos = random_qpos(full, 64, np.random.default_rng(0))
    expected = oracle(full, qpos, DIGIT_SITES)
    got = fk.site_positions(model, qpos, DIGIT_SITES, MUJOCO)
    assert got.shape == (64, 4, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=ATOL)
    np.testing.assert_allclose(
        fk.site_positions_mujoco(model, qpos, DIGIT_SITES, MUJOCO), expected, atol=1e-12
    )
    pin = qpos.copy()
    pin[:, 3:7] = qpos[:, [4, 5, 6, 3]]  # Pinocchio stores the base quaternion xyzw
    np.testing.assert_allclose(
        fk.site_positions(model, pin.reshape(4, 16, -1), DIGIT_SITES, PINOCCHIO),
        expected.reshape(4, 16, 4, 3),
        atol=ATOL,
    )
    np.testing.assert_allclose(
        fk.site_positions_mujoco(model, pin, DIGIT_SITES, " Pinocchio"), expected, atol=1e-12
    )  # a convention by name
    with pytest.raises(ModelError, match="nq=61"):
        fk.site_positions(model, qpos[:, :35], DIGIT_SITES, MUJOCO)


@pytest.mark.slow
def test_cassie_pgs_model_real_states(cassie_full):
    from mujoco import mjx

    with pytest.raises(NotImplementedError, match="PGS"):
        mjx.put_model(cassie_full)
    aslip = np.load(TRAJOPT / "aslip_walk" / "traj_19.npz")["qpos"]  # 31 rows, walking 1.9 m/s
    agility = np.load(TRAJOPT / "agility_reference" / "traj_0.npz")["qpos"]
    rows = np.linspace(0, len(agility) - 1, 64 - len(aslip)).astype(int)
    qpos = np.concatenate([aslip, agility[rows]])  # 64 real states
    got = fk.site_positions(cassie_full, qpos, ["imu"], MUJOCO)
    np.testing.assert_allclose(got, oracle(cassie_full, qpos, ["imu"]), atol=ATOL)
    assert np.ptp(got[:31, 0, 0]) > 0.3  # the walk moves the imu forward: not a constant


@pytest.fixture(scope="module")
def chain_xml(tmp_path_factory):
    """MJCF path of a small free-base chain (hinge, ball, hinge) with sites s0, s1, s2."""
    spec = mujoco.MjSpec()
    body = spec.worldbody.add_body(name="base")
    body.add_freejoint()
    body.add_geom(size=[0.1, 0, 0])
    for k in range(3):
        body = body.add_body(name=f"l{k}", pos=[0.3, 0, 0])
        body.add_joint(
            type=mujoco.mjtJoint.mjJNT_BALL if k == 1 else mujoco.mjtJoint.mjJNT_HINGE,
            axis=[0, 0, 1],
        )
        body.add_geom(size=[0.05, 0, 0])
        body.add_site(name=f"s{k}", pos=[0.1, 0.05, 0])
    path = tmp_path_factory.mktemp("chain") / "chain.xml"
    path.write_text(spec.to_xml())
    return path


@pytest.mark.slow
def test_chunking_pads_and_matches(chain_xml):
    model = fk.load_kinematics_model(str(chain_xml))
    qpos = random_qpos(model, 20, np.random.default_rng(1))
    expected = oracle(model, qpos, ["s2", "s0"])
    got = fk.site_positions(model, qpos, ["s2", "s0"], MUJOCO, chunk_size=7)  # 7 + 7 + 6 (padded)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert fk.site_positions(model, qpos[:0], ["s0"], MUJOCO).shape == (0, 1, 3)


@pytest.mark.slow
def test_end_effector_positions_computed_never_zeros(cassie_full):
    qpos = np.load(TRAJOPT / "aslip_walk" / "traj_10.npz")["qpos"].reshape(2, 16, -1)
    qpos = np.concatenate([qpos, qpos[:, ::-1]]).astype(np.float32)  # [E=4, W=16, 35]
    batch = {"qpos": qpos, "traj_id": np.array([3, 3, 7, 7], np.int32)}
    transform = EndEffectorPositions(cassie_full, ["imu"], MUJOCO)
    out = transform.map(batch)
    assert out["ee_pos"].shape == (4, 16, 1, 3) and out["ee_pos"].dtype == np.float32
    expected = oracle(cassie_full, qpos.reshape(64, -1).astype(np.float64), ["imu"])
    np.testing.assert_allclose(out["ee_pos"].reshape(64, 1, 3), expected, atol=ATOL)
    assert np.abs(out["ee_pos"][..., 2]).min() > 0.5  # the imu is ~1 m up: never silent zeros
    assert out["qpos"] is qpos and "ee_pos" not in batch

    host = EndEffectorPositions(cassie_full, ["imu"], MUJOCO, backend="mujoco").map(batch)
    np.testing.assert_allclose(host["ee_pos"], out["ee_pos"], atol=ATOL)
    with pytest.raises(ConfigError, match="backend='warp'"):
        EndEffectorPositions(cassie_full, ["imu"], MUJOCO, backend="warp")

    # Data that carries ee_pos passes through untouched, even without a model.
    recorded = {**batch, "ee_pos": np.full((4, 16, 1, 3), 7.0, np.float32)}
    assert transform.map(recorded) is recorded
    assert EndEffectorPositions(None, ["imu"], MUJOCO).map(recorded) is recorded
    with pytest.raises(MissingKeyError, match="no 'ee_pos'.*no model"):
        EndEffectorPositions(None, ["imu"], MUJOCO).map(batch)
    with pytest.raises(MissingKeyError, match="needs 'qpos'"):
        transform.map({"traj_id": batch["traj_id"]})

    # Per-trajectory conventions: trajectory 7 stored Pinocchio-style (xyzw).
    mixed = qpos.copy()
    mixed[2:, :, 3:7] = qpos[2:, :, [4, 5, 6, 3]]
    per_traj = EndEffectorPositions(cassie_full, ["imu"], lambda i: PINOCCHIO if i == 7 else MUJOCO)
    np.testing.assert_allclose(
        per_traj.map({**batch, "qpos": mixed})["ee_pos"], out["ee_pos"], atol=1e-6
    )


@pytest.mark.slow
def test_end_effector_positions_from_path_pickles(chain_xml):
    transform = EndEffectorPositions(str(chain_xml), ["s2", "s0"], MUJOCO)
    clone = pickle.loads(pickle.dumps(transform))
    assert clone._model is None and clone.model_path == str(chain_xml)
    model = mujoco.MjModel.from_xml_path(str(chain_xml))
    qpos = random_qpos(model, 7, np.random.default_rng(2)).reshape(1, 7, -1)  # chunk shape as above
    out = clone.map({"qpos": qpos})
    np.testing.assert_allclose(out["ee_pos"][0], oracle(model, qpos[0], ["s2", "s0"]), atol=1e-5)
    assert out["ee_pos"].dtype == np.float64  # follows qpos
    bad = EndEffectorPositions(str(chain_xml), ["left-hand"], MUJOCO)
    with pytest.raises(MissingKeyError, match="available sites.*s0"):
        bad.map({"qpos": qpos})
