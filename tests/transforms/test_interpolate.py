"""Windows at a control rate (``config.control_dt``): values against MuJoCo's own interpolation on
the configuration manifold, exact stored frames, and window / valid / wrap semantics in control
steps against hand-computed expectations."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trajopt_loader import load_config, make_dataset
from trajopt_loader.errors import ConfigError
from trajopt_loader.interpolation import grid_lengths, lerp, slerp
from trajopt_loader.kinematics.model import quaternion_qpos_addresses
from trajopt_loader.store import TrajectoryStore, export_npz

DTS = (0.01, 0.033)  # stored time steps of the two trajectories
LENGTHS = (9, 5)


def _model_xml(path) -> str:
    """MJCF of a free base, a ball-jointed arm on it and a hinge on the arm (nq 12, nv 10)."""
    spec = mujoco.MjSpec()
    base = spec.worldbody.add_body(name="base")
    base.add_freejoint(name="root")
    base.add_geom(size=[0.1, 0, 0])
    arm = base.add_body(name="arm", pos=[0, 0, 0.3])
    arm.add_joint(name="shoulder", type=mujoco.mjtJoint.mjJNT_BALL)
    arm.add_geom(size=[0.05, 0, 0])
    hand = arm.add_body(name="hand", pos=[0, 0, 0.3])
    hand.add_joint(name="elbow", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 1, 0])
    hand.add_geom(size=[0.05, 0, 0])
    path.write_text(spec.to_xml())
    return str(path)


@pytest.fixture(scope="module")
def three_joints(tmp_path_factory):
    """(model path, store path, stored qpos / qvel / action per trajectory): two trajectories of
    random states (unit quaternions) at dt 0.01 s (9 frames) and 0.033 s (5 frames)."""
    tmp = tmp_path_factory.mktemp("interp")
    xml = _model_xml(tmp / "three.xml")
    rng = np.random.default_rng(7)
    stored = []
    for i, (n, dt) in enumerate(zip(LENGTHS, DTS, strict=True)):
        qpos = rng.normal(size=(n, 12))
        # successive rotations up to ~100 deg apart, some pairs in opposite hemispheres
        for col in (3, 7):
            quat = Rotation.random(n, random_state=rng).as_quat(scalar_first=True)
            quat[1::2] *= -1
            qpos[:, col : col + 4] = quat
        arrays = {
            "qpos": qpos,
            "qvel": rng.normal(size=(n, 10)),
            "action": rng.normal(size=(n, 3)),
            "dt": np.float64(dt),
        }
        (tmp / "npz" / "move").mkdir(parents=True, exist_ok=True)
        np.savez(tmp / "npz" / "move" / f"traj_{i}.npz", **arrays)
        stored.append(arrays)
    store = tmp / "three.zarr"
    export_npz(tmp / "npz", store, source="s", convention="mujoco", progress=False)
    return xml, store, stored


def _stream(xml, store, **overrides):
    config = load_config(
        "default",
        {
            "num_envs": 2,
            "window_size": 6,
            "num_batches": 8,
            "dtype": "float64",
            "cyclic": False,
            "assignment": "explicit",
            "traj_ids": (0, 1),
            "references.model_path": xml,
            **overrides,
        },
    )
    return list(make_dataset(config, TrajectoryStore(store), 0, 1))


def _oracle(model, arrays, dt, control_dt, step):
    """qpos by mj_integratePos(q_i, alpha * mj_differentiatePos(q_i, q_i+1)); other keys by
    np.interp over the stored times."""
    t = step * control_dt
    n = arrays["qpos"].shape[0]
    times = np.arange(n) * dt
    i = min(int(np.floor(t / dt + 1e-9)), n - 1)
    alpha = t / dt - i
    q = arrays["qpos"][i].copy()
    if i < n - 1 and alpha > 1e-9:
        v = np.zeros(model.nv)
        mujoco.mj_differentiatePos(model, v, dt, arrays["qpos"][i], arrays["qpos"][i + 1])
        mujoco.mj_integratePos(model, q, v, alpha * dt)
    out = {"qpos": q}
    for key in ("qvel", "action"):
        x = arrays[key]
        out[key] = np.array([np.interp(t, times, x[:, c]) for c in range(x.shape[1])])
    return out


def test_free_ball_hinge_match_mujoco_and_quaternions_stay_unit(three_joints):
    xml, store, stored = three_joints
    model = mujoco.MjModel.from_xml_path(xml)
    assert quaternion_qpos_addresses(model) == (3, 7)
    control_dt = 0.004  # 2.5 and 8.25 control steps per stored frame: mostly between frames
    checked = 0
    for batch in _stream(xml, store, control_dt=control_dt, end_policy="clamp"):
        for e in range(2):
            traj = int(batch["traj_id"][e])
            for w in range(6):
                want = _oracle(model, stored[traj], DTS[traj], control_dt, batch["step"][e, w])
                for key, value in want.items():
                    np.testing.assert_allclose(batch[key][e, w], value, atol=1e-12, rtol=0)
                checked += 1
        norms = np.linalg.norm(batch["qpos"][..., [[3, 4, 5, 6], [7, 8, 9, 10]]], axis=-1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-12)
    assert checked == 8 * 2 * 6


def test_stored_frames_are_read_bit_for_bit(three_joints):
    xml, store, stored = three_joints
    # control_dt = 3 dt of trajectory 0: control step j is stored frame 3j (0, 3, 6)
    for batch in _stream(xml, store, control_dt=0.03, traj_ids=(0, 0), num_batches=2):
        frames = np.minimum(batch["step"] * 3, 8)
        for key in ("qpos", "qvel", "action"):
            np.testing.assert_array_equal(batch[key], stored[0][key][frames])
    # a rate between frames still hits them where j * control_dt is a multiple of dt
    batch = _stream(
        xml,
        store,
        control_dt=0.0025,
        traj_ids=(0, 0),
        num_batches=1,
        end_policy="clamp",
        window_size=16,
    )[0]
    on_frame = batch["step"][0] % 4 == 0
    np.testing.assert_array_equal(
        batch["qpos"][0][on_frame], stored[0]["qpos"][batch["step"][0][on_frame] // 4]
    )


def test_interpolation_helpers_on_their_own():
    rng = np.random.default_rng(1)
    q0, q1 = Rotation.random(50, random_state=rng), Rotation.random(50, random_state=rng)
    alpha = rng.random(50)
    got = slerp(q0.as_quat(), -q1.as_quat(), alpha)  # xyzw and the far hemisphere: same rotation
    want = q0 * Rotation.from_rotvec((q0.inv() * q1).as_rotvec() * alpha[:, None])
    np.testing.assert_allclose(Rotation.from_quat(got).as_matrix(), want.as_matrix(), atol=1e-12)
    assert (np.einsum("ij,ij->i", got, q0.as_quat()) > 0).all()  # continues from q0
    for step in (1e-4, 1e-2, 1.0):  # float32 math: within float32 resolution of float64's
        near = (q0 * Rotation.from_rotvec(rng.normal(size=(50, 3)) * step)).as_quat()
        f32 = slerp(q0.as_quat().astype(np.float32), near.astype(np.float32), alpha)
        assert f32.dtype == np.float32
        np.testing.assert_allclose(f32, slerp(q0.as_quat(), near, alpha), atol=5e-7)
    a = np.array([[[-0.0, np.inf]]], np.float32)
    np.testing.assert_array_equal(lerp(a, a + 1, np.zeros((1, 1))), a)  # exact: -0.0, inf kept
    np.testing.assert_array_equal(
        lerp(np.float32([[[1.0]]]), np.float32([[[3.0]]]), np.full((1, 1), 0.25)), [[[1.5]]]
    )
    # T = 9 at 0.01 s is 0.08 s: 0.004 s steps give 21 samples; 0.033 s x 4 = 0.132 s: 34
    np.testing.assert_array_equal(grid_lengths([9, 5, 1], [0.01, 0.033, 0.5], 0.004), [21, 34, 1])


def test_windows_valid_and_wrap_count_control_steps(three_joints):
    xml, store, _ = three_joints
    # control_dt 0.004: trajectory 0 has L = 21 control steps, trajectory 1 has L = 34.
    clamp = _stream(
        xml,
        store,
        control_dt=0.004,
        end_policy="clamp",
        allow_wrap=False,
        window_size=8,
        traj_ids=(0, 1),
        num_batches=4,
    )
    # env 0 on traj 0: chunks start 0, 8, 16 (the third reaches step 20 = L - 1), then traj 1
    assert [int(b["start"][0]) for b in clamp] == [0, 8, 16, 0]
    assert [int(b["traj_id"][0]) for b in clamp] == [0, 0, 0, 1]
    np.testing.assert_array_equal(clamp[2]["step"][0], [16, 17, 18, 19, 20, 20, 20, 20])
    np.testing.assert_array_equal(clamp[2]["valid"][0], [1, 1, 1, 1, 1, 0, 0, 0])
    assert clamp[3]["episode_start"][0]
    # env 1 on traj 1 (L = 34): starts 0, 8, 16, 24; the last window 24..31 is all valid
    assert [int(b["start"][1]) for b in clamp] == [0, 8, 16, 24]
    assert clamp[3]["valid"][1].all()

    wrap = _stream(
        xml,
        store,
        control_dt=0.004,
        end_policy="wrap",
        window_size=8,
        traj_ids=(0, 1),
        num_batches=4,
        cyclic=True,
    )
    # env 0 keeps traj 0 (L = 21): chunk 2 reads 16..20 then wraps to 0..2, loop 0 -> 1
    np.testing.assert_array_equal(wrap[2]["step"][0], [16, 17, 18, 19, 20, 0, 1, 2])
    np.testing.assert_array_equal(wrap[2]["loop"][0], [0, 0, 0, 0, 0, 1, 1, 1])
    assert wrap[2]["valid"].all()
    assert int(wrap[3]["start"][0]) == 3 and int(wrap[3]["episode_loop"][0]) == 1  # 24 mod 21
    # the continued loop is the stored loop moved by Delta (joints as recorded): the hinge
    # (qpos[11]) of step 0 of loop 1 is stored frame 0's
    np.testing.assert_array_equal(wrap[2]["qpos"][0, 5, 11], wrap[0]["qpos"][0, 0, 11])


def test_control_dt_needs_to_know_the_quaternions(three_joints):
    xml, store, _ = three_joints
    with pytest.raises(ConfigError, match=r"references.model_path=ROBOT.xml .*references.robot"):
        _stream(xml, store, control_dt=0.02, **{"references.model_path": None})
    with pytest.raises(
        ConfigError, match=r"references.robot='cassie' has nq=35, but qpos rows .* have 12 entries"
    ):
        _stream(
            xml,
            store,
            control_dt=0.02,
            **{"references.model_path": None, "references.robot": "cassie"},
        )
    batch = _stream(
        xml,
        store,
        control_dt=0.02,
        num_batches=1,
        **{"keys": ("qvel", "action"), "references.model_path": None},
    )
    assert batch[0]["qvel"].shape == (2, 6, 10)  # no qpos: nothing to slerp, nothing needed


def test_control_rate_tables_equal_per_batch_interpolation(three_joints, monkeypatch):
    from trajopt_loader.errors import WindowIndexError
    from trajopt_loader.transforms import InterpolateKeys, interpolate

    monkeypatch.setattr(interpolate, "_TABLE_BLOCK", 7)  # tables built in several blocks

    xml, store_path, _ = three_joints
    store = TrajectoryStore(store_path, cache_dtype="float32")
    common = dict(
        keys=("qpos", "qvel", "action"),
        dtype="float32",
        traj_ids=[0, 1],
        control_dt=0.004,
        quaternions=(3, 7),
    )
    tables = InterpolateKeys(store, **common, table_bytes=2**20)
    per_batch = InterpolateKeys(store, **common)  # no table budget: every batch interpolates
    too_small = InterpolateKeys(store, **common, table_bytes=100)
    element = {
        "traj_id": np.array([0, 1, 1], np.int32),
        "step": np.array([[0, 7, 20], [33, 1, 17], [5, 5, 6]], np.int32),
    }
    want = per_batch.map(element)
    quat = np.zeros(12, bool)
    quat[3:11] = True
    for transform in (tables, too_small):
        got = transform.map(element)
        for key in common["keys"]:
            assert got[key].dtype == np.float32
        np.testing.assert_array_equal(got["qvel"], want["qvel"])  # lerp: the same bits
        np.testing.assert_array_equal(got["action"], want["action"])
        np.testing.assert_array_equal(got["qpos"][..., ~quat], want["qpos"][..., ~quat])
        # slerp's float32 sin / arccos may round differently for other array lengths (SIMD)
        np.testing.assert_allclose(got["qpos"][..., quat], want["qpos"][..., quat], atol=3e-7)
    offsets, arrays = tables.tables()
    assert arrays["qpos"].shape == (21 + 34, 12) and offsets[1] == 21
    assert too_small.tables() is False and per_batch.tables() is False
    with pytest.raises(WindowIndexError, match=r"env row 0 \(traj_id 0\): control steps \[21\]"):
        tables.map({"traj_id": np.array([0], np.int32), "step": np.array([[21]], np.int32)})
