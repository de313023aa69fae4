"""ContinueCycles on real Cassie ``aslip_walk`` strides against a hand-built planar oracle.

Oracle (independent of transforms/cycles.py): headings from rotation matrices
(``atan2(R[1,0], R[0,0])``), ``Delta`` built with 2x2 rotation matrices and applied ``c`` times
in a loop; quaternions turned with scipy's ``Rotation`` composition.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ConventionError, MissingKeyError
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.store import TrajectoryStore, export_npz
from trajopt_loader.transforms.cycles import ContinueCycles, cycle_power, yaw_premultiply
from trajopt_loader.transforms.kinematics import make_export_preprocess

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ASLIP = DATA / "cassie" / "trajopt" / "aslip_walk"
LOOPS = 6


def _rot2(a):
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _heading(quat_wxyz):
    m = Rotation.from_quat(np.asarray(quat_wxyz)[..., [1, 2, 3, 0]]).as_matrix()
    return np.arctan2(m[..., 1, 0], m[..., 0, 0])


def _turned(f, turn, heading0, offset):
    """An aslip stride turned progressively by ``turn`` rad over the clip, then placed at heading
    ``heading0`` and ``offset`` (m): a real gait that changes heading once per loop."""
    qpos, n = f["qpos"].copy(), len(f["qpos"])
    ee = np.stack([f["left_foot_pos"], f["right_foot_pos"]], axis=1)
    yaw = heading0 + turn * np.arange(n) / (n - 1)
    rz = Rotation.from_euler("z", yaw[:, None])
    qpos[:, 0:3] = rz.apply(qpos[:, 0:3]) + [*offset, 0.0]
    qpos[:, 3:7] = (rz * Rotation.from_quat(qpos[:, [4, 5, 6, 3]])).as_quat()[:, [3, 0, 1, 2]]
    ee = np.stack([rz.apply(ee[:, k]) for k in range(2)], axis=1) + [*offset, 0.0]
    return qpos, ee


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Source ``mj`` (MuJoCo): traj 0 = the 2.0 m/s stride, traj 1 = the 1.0 m/s stride turning
    0.3 rad per loop; qvel derived with MuJoCo; ee_pos = the recorded feet [T, 2, 3]. Source
    ``pin``: the same rows in the Pinocchio convention (xyzw, body-frame linear velocity)."""
    root = tmp_path_factory.mktemp("aslip")
    (root / "walk").mkdir()
    for i, (name, turn) in enumerate((("traj_20.npz", None), ("traj_10.npz", 0.3))):
        with np.load(ASLIP / name) as f:
            qpos, ee = (f["qpos"], np.stack([f["left_foot_pos"], f["right_foot_pos"]], 1)) \
                if turn is None else _turned(f, turn, 0.5, (1.0, -2.0))
            np.savez(root / "walk" / f"traj_{i}.npz", qpos=qpos, ee_pos=ee, dt=f["dt"])
    out = tmp_path_factory.mktemp("store") / "aslip.zarr"
    export_npz(root, out, source="mj", convention="mujoco", progress=False,
               preprocess=make_export_preprocess(str(DATA / "cassie" / "cassie.xml"),
                                                 convention="mujoco", derive_qvel=True))
    mj = TrajectoryStore(out)
    pin_root = tmp_path_factory.mktemp("pin")
    (pin_root / "walk").mkdir()
    for i in range(2):
        qpos, qvel = mj.read(i, "qpos").copy(), mj.read(i, "qvel").copy()
        rot = Rotation.from_quat(qpos[:, [4, 5, 6, 3]])
        qvel[:, 0:3] = rot.apply(qvel[:, 0:3], inverse=True)  # world -> body
        qpos[:, 3:7] = qpos[:, [4, 5, 6, 3]]
        np.savez(pin_root / "walk" / f"traj_{i}.npz", qpos=qpos, qvel=qvel,
                 ee_pos=mj.read(i, "ee_pos"), dt=mj.trajectories[i].dt)
    export_npz(pin_root, out, source="pin", convention="pinocchio", progress=False)
    return TrajectoryStore(out)


def _batch(store, ids, loops=LOOPS):
    """Windows over ``loops`` whole passes of each trajectory, with their loop counts (float64)."""
    W = loops * int(store.lengths[list(ids)].min())
    traj = np.asarray(ids, np.int32)
    t = np.arange(W)
    step = np.stack([t % store.lengths[i] for i in ids]).astype(np.int32)
    loop = np.stack([t // store.lengths[i] for i in ids]).astype(np.int32)
    batch = {"traj_id": traj, "step": step, "loop": loop}
    return batch | {k: store.gather(k, traj, step) for k in ("qpos", "qvel", "ee_pos")}


def _oracle(store, i, loops=LOOPS):
    """Hand-built continued (x, y, heading) and quaternions of MuJoCo trajectory ``i``."""
    q = store.read(i, "qpos")
    th = _heading(q[-1, 3:7]) - _heading(q[0, 3:7])
    d = q[-1, :2] - _rot2(th) @ q[0, :2]
    xy, quat = [], []
    for c in range(loops):
        for row in q:
            p = row[:2]
            for _ in range(c):
                p = _rot2(th) @ p + d
            xy.append(p)
            r = Rotation.from_euler("z", c * th) * Rotation.from_quat(row[[4, 5, 6, 3]])
            quat.append(r.as_matrix())
    return np.array(xy), np.array(quat), th, d


@pytest.mark.parametrize("i", [0, 1], ids=["straight", "turning"])
def test_loops_equal_delta_applied_c_times_and_seam_is_continuous(store, i):
    batch = _batch(store, [i])
    out = ContinueCycles(store).map(batch)
    L, W = int(store.lengths[i]), batch["step"].shape[1]
    xy, mats, th, d = _oracle(store, i)
    q = out["qpos"][0]
    np.testing.assert_allclose(q[:, :2], xy[:W], atol=1e-9)
    got = Rotation.from_quat(q[:, [4, 5, 6, 3]]).as_matrix()
    np.testing.assert_allclose(got, mats[:W], atol=1e-12)
    raw = batch["qpos"][0]
    np.testing.assert_array_equal(q[:, 2:3], raw[:, 2:3])  # z as recorded
    np.testing.assert_array_equal(q[:, 7:], raw[:, 7:])  # joints untouched
    np.testing.assert_array_equal(q[:L], raw[:L])  # loop 0 bit-identical
    assert (np.einsum("ti,ti->t", q[1:, 3:7], q[:-1, 3:7]) > 0.9).all()  # no q -> -q jumps
    # Seams: frame 0 of loop c sits where frame L-1 of loop c-1 ended (x, y, heading); in-loop
    # steps are 2-6 cm. Raw data jumps back by a whole stride there.
    step_len = np.linalg.norm(np.diff(q[:, :2], axis=0), axis=1)
    seam = np.arange(L - 1, W - 1, L)
    inside = np.setdiff1d(np.arange(W - 1), seam)
    assert step_len[seam].max() < 1e-9 and 0.02 < step_len[inside].min()
    assert step_len.max() <= step_len[inside].max() < 0.06
    np.testing.assert_allclose(np.diff(_heading(q[:, 3:7]))[seam], 0, atol=1e-12)
    raw_len = np.linalg.norm(np.diff(raw[:, :2], axis=0), axis=1)
    assert raw_len[seam].min() > 0.7  # what cyclic=False hands over (the loop key marks it)
    # Velocities: MuJoCo world linear velocity turns with the heading, body angular does not.
    v = out["qvel"][0]
    turn = Rotation.from_euler("z", batch["loop"][0][:, None] * th)
    np.testing.assert_allclose(v[:, 0:3], turn.apply(batch["qvel"][0][:, 0:3]), atol=1e-12)
    np.testing.assert_array_equal(v[:, 3:], batch["qvel"][0][:, 3:])
    # Feet (world points) move with the base: same offset from the base as recorded, turned.
    rel = out["ee_pos"][0] - q[:, None, 0:3]
    want = np.stack([turn.apply(batch["ee_pos"][0][:, k] - raw[:, 0:3]) for k in range(2)], 1)
    np.testing.assert_allclose(rel, want, atol=1e-9)
    if i == 0:  # the straight 2 m/s stride: Delta is a pure translation of ~1.47 m in x
        assert th == 0 and 1.4 < d[0] < 1.5
        np.testing.assert_allclose(q[L * 5, 0] - raw[0, 0], 5 * d[0], rtol=1e-12)
    else:
        assert th == pytest.approx(0.3, abs=1e-9)


def test_pinocchio_convention_gives_the_same_motion(store):
    mj = ContinueCycles(store).map(_batch(store, [0, 1]))
    pin = ContinueCycles(store).map(_batch(store, [2, 3]))
    assert [store.trajectories[i].source for i in (0, 2)] == ["mj", "pin"]
    q = pin["qpos"].copy()
    q[..., 3:7] = q[..., [6, 3, 4, 5]]  # xyzw -> wxyz
    np.testing.assert_allclose(q, mj["qpos"], atol=1e-9)
    v = pin["qvel"].copy()
    rot = Rotation.from_quat(pin["qpos"][..., 3:7].reshape(-1, 4))
    v[..., 0:3] = rot.apply(v[..., 0:3].reshape(-1, 3)).reshape(v[..., 0:3].shape)  # body -> world
    np.testing.assert_allclose(v, mj["qvel"], atol=1e-9)
    np.testing.assert_allclose(pin["ee_pos"], mj["ee_pos"], atol=1e-9)


def test_closed_form_power_equals_iterated_delta():
    rng = np.random.default_rng(0)
    for th in (0.0, 1e-14, 0.3, -2.9, np.pi):
        d = rng.standard_normal(2)
        for c in (0, 1, 2, 5, 1000):
            want = np.zeros(2)
            for _ in range(c):
                want = _rot2(th) @ want + d
            angle, trans, sign = cycle_power(np.array([th]), np.array([d[0] + 1j * d[1]]),
                                             np.array([True]), np.array([c]))
            np.testing.assert_allclose([trans.real[0], trans.imag[0]], want,
                                       atol=1e-9 * max(1, c))
            assert angle[0] == c * th and sign[0] == (-1.0) ** c


def test_yaw_premultiply_is_scipy_composition_with_its_sign():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((500, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    a = rng.uniform(-20, 20, 500)
    want = (Rotation.from_euler("z", a[:, None]) * Rotation.from_quat(q)).as_quat()
    np.testing.assert_allclose(yaw_premultiply(q, a), want, atol=1e-15)


def test_errors_and_precision_warning(store, caplog, tmp_path):
    with pytest.raises(MissingKeyError, match="'loop'"):
        ContinueCycles(store).map({"traj_id": np.zeros(1, np.int32)})
    far = _batch(store, [0], loops=1)
    far["loop"] = far["loop"] + 10**4  # ~15 km ahead: float32 resolves ~1 mm there
    far["qpos"] = far["qpos"].astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="trajopt_loader.transforms.cycles"):
        ContinueCycles(store).map({**far, "qpos": far["qpos"].astype(np.float64)})
        assert not caplog.records
        out = ContinueCycles(store).map(far)
    assert out["qpos"].dtype == np.float32 and "dtype='float64'" in caplog.text
    caplog.clear()
    near = _batch(store, [0], loops=2)  # bfloat16 resolves ~8 mm at the first offset (1.47 m)
    near = {**near, "qpos": near["qpos"].astype(ml_dtypes.bfloat16)}
    with caplog.at_level(logging.WARNING, logger="trajopt_loader.transforms.cycles"):
        out = ContinueCycles(store).map(near)
    assert out["qpos"].dtype == ml_dtypes.bfloat16 and "bfloat16 resolves only" in caplog.text
    np.testing.assert_allclose(out["qpos"][0, 31:, 0].astype(np.float64),
                               near["qpos"][0, :31, 0].astype(np.float64) + 1.4719, atol=0.02)
    root = tmp_path / "npz" / "arm"
    root.mkdir(parents=True)
    np.savez(root / "traj_0.npz", qpos=np.zeros((5, 9)), dt=0.01)  # fixed base: no quaternion
    export_npz(root.parent, tmp_path / "arm.zarr", source="arm", allow_missing=("qvel",),
               progress=False)
    arm = TrajectoryStore(tmp_path / "arm.zarr")
    batch = {"traj_id": np.zeros(1, np.int32), "loop": np.ones((1, 2), np.int32),
             "qpos": np.zeros((1, 2, 9), np.float32)}
    with pytest.raises(ConventionError, match="arm/arm/traj0, frame 0: .* norm 0.*cyclic=False"):
        ContinueCycles(arm).map(batch)


def _stream(store, cyclic, n=12):
    config = load_config("cassie", {
        "zarr_path": store.path, "num_envs": 2, "window_size": 16, "assignment": "explicit",
        "traj_ids": (0, 2), "keys": ("qpos", "qvel", "ee_pos"), "cyclic": cyclic,
        "references.ee_sites": ("left-foot", "right-foot")})
    return list(itertools.islice(iter(make_dataset(config, store, 0, 1)), n))


def test_pipeline_base_translation_grows_over_loops_of_a_forward_walk(store):
    on, off = _stream(store, True), _stream(store, False)
    cat = lambda bs, k: np.concatenate([b[k] for b in bs], axis=1)  # noqa: E731  [E, T, ...]
    assert cat(on, "loop")[:, -1].tolist() == [6, 6]  # 192 steps of a 31-step stride
    for e in range(2):  # MuJoCo and Pinocchio copies of the 2 m/s stride
        trans = cat(on, "ref_base_local_trans")[e, :, 0]
        assert (np.diff(trans) > -1e-6).all() and trans[-1] > 6 * 1.47
        raw = cat(off, "ref_base_local_trans")[e, :, 0]
        assert np.diff(raw).min() < -1.4  # cyclic=False: the stride's jump back at each seam
        ee = cat(on, "ref_local_ee_pos")[e]
        np.testing.assert_allclose(ee, cat(off, "ref_local_ee_pos")[e], atol=1e-5)  # relative
        # References read the rewritten qpos: episode-local x = continued x - first x.
        q = cat(on, "qpos")[e]
        np.testing.assert_allclose(trans, q[:, 0] - q[0, 0], atol=1e-5)
    pos = cat(on, "ref_base_local_pos")[:, :, 0]  # window-local: from each window's first step
    assert (np.diff(pos, axis=1)[:, np.arange(191) % 16 != 15] > -1e-6).all()
    loop0 = cat(on, "loop") == 0
    for k in ("qpos", "qvel", "ee_pos"):
        np.testing.assert_array_equal(cat(on, k)[loop0], cat(off, k)[loop0])


def test_cyclic_false_is_the_raw_data_bit_for_bit(store):
    for b in _stream(store, False, n=4):
        for k in ("qpos", "qvel", "ee_pos"):
            want = store.gather(k, b["traj_id"], b["step"]).astype(np.float32)
            np.testing.assert_array_equal(b[k], want)


def test_transform_pickles_for_worker_processes(store):
    import pickle
    used = ContinueCycles(store)
    batch = _batch(store, [1, 3])
    want = used.map(batch)  # the cached Deltas travel with it; a fresh one reads them again
    for clone in (pickle.loads(pickle.dumps(used)), pickle.loads(pickle.dumps(ContinueCycles(store)))):
        got = clone.map(batch)
        for k in ("qpos", "qvel", "ee_pos"):
            np.testing.assert_array_equal(got[k], want[k])
