"""ContinueCycles on real Cassie ``aslip_walk`` strides against a hand-built planar oracle.

Oracle (independent of transforms/cycles.py): headings from rotation matrices
(``atan2(R[1,0], R[0,0])``), the extrapolated frame ``L`` and ``Delta`` built with 2x2 rotation
matrices and applied ``c`` times in a loop; quaternions turned with scipy's ``Rotation``
composition; the long-run advance against the recorded commanded speed of each stride and the
MuJoCo-derived velocities.
"""

from __future__ import annotations

import itertools
import logging
import re

import ml_dtypes
import numpy as np
import pytest
from conftest import SHARED_DATA
from scipy.spatial.transform import Rotation

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ConfigError, ConventionError, MissingKeyError
from trajopt_loader.kinematics import make_export_preprocess
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.store import TrajectoryStore, export_npz
from trajopt_loader.transforms.cycles import ContinueCycles

DATA = SHARED_DATA
ASLIP = DATA / "cassie" / "trajopt" / "aslip_walk"
LOOPS = 6


def _rot2(a):
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _heading(quat_wxyz):
    m = Rotation.from_quat(np.asarray(quat_wxyz)[..., [1, 2, 3, 0]]).as_matrix()
    return np.arctan2(m[..., 1, 0], m[..., 0, 0])


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def _turned(f, turn, heading0, offset):
    """An aslip stride turned progressively by ``turn / n`` rad per step (``turn`` per loop of
    ``n`` steps, the seam step included), then placed at heading ``heading0`` and ``offset``
    (m): a real gait that changes heading once per loop."""
    qpos, n = f["qpos"].copy(), len(f["qpos"])
    ee = np.stack([f["left_foot_pos"], f["right_foot_pos"]], axis=1)
    yaw = heading0 + turn * np.arange(n) / n
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
            qpos, ee = (
                (f["qpos"], np.stack([f["left_foot_pos"], f["right_foot_pos"]], 1))
                if turn is None
                else _turned(f, turn, 0.5, (1.0, -2.0))
            )
            np.savez(root / "walk" / f"traj_{i}.npz", qpos=qpos, ee_pos=ee, dt=f["dt"])
    out = tmp_path_factory.mktemp("store") / "aslip.zarr"
    export_npz(
        root,
        out,
        source="mj",
        convention="mujoco",
        progress=False,
        preprocess=make_export_preprocess(
            str(DATA / "cassie" / "cassie.xml"), convention="mujoco", derive_qvel=True
        ),
    )
    mj = TrajectoryStore(out)
    pin_root = tmp_path_factory.mktemp("pin")
    (pin_root / "walk").mkdir()
    for i in range(2):
        qpos, qvel = mj.read(i, "qpos").copy(), mj.read(i, "qvel").copy()
        rot = Rotation.from_quat(qpos[:, [4, 5, 6, 3]])
        qvel[:, 0:3] = rot.apply(qvel[:, 0:3], inverse=True)  # world -> body
        qpos[:, 3:7] = qpos[:, [4, 5, 6, 3]]
        np.savez(
            pin_root / "walk" / f"traj_{i}.npz",
            qpos=qpos,
            qvel=qvel,
            ee_pos=mj.read(i, "ee_pos"),
            dt=mj.trajectories[i].dt,
        )
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


def _delta_by_hand(q):
    """``(theta, d, dpsi, last_step)``: frame ``L`` = frame ``L-1`` advanced by the last step
    ``L-2 -> L-1`` turned by its heading increment ``dpsi``; ``Delta`` maps frame 0 onto it."""
    h0, h_prev, h1 = _heading(q[[0, -2, -1], 3:7])
    dpsi = _wrap(h1 - h_prev)
    last_step = q[-1, :2] - q[-2, :2]
    p_next = q[-1, :2] + _rot2(dpsi) @ last_step
    th = _wrap(h1 + dpsi - h0)
    return th, p_next - _rot2(th) @ q[0, :2], dpsi, last_step


def _oracle(store, i, loops=LOOPS):
    """Hand-built continued (x, y) and base rotation matrices of MuJoCo trajectory ``i``."""
    q = store.read(i, "qpos")
    th, d, dpsi, last_step = _delta_by_hand(q)
    xy, quat = [], []
    for c in range(loops):
        for row in q:
            p = row[:2]
            for _ in range(c):
                p = _rot2(th) @ p + d
            xy.append(p)
            r = Rotation.from_euler("z", c * th) * Rotation.from_quat(row[[4, 5, 6, 3]])
            quat.append(r.as_matrix())
    return np.array(xy), np.array(quat), th, d, dpsi, last_step


@pytest.mark.parametrize("i", [0, 1], ids=["straight", "turning"])
def test_loops_equal_delta_applied_c_times_and_seam_is_continuous(store, i):
    batch = _batch(store, [i])
    out = ContinueCycles(store).map(batch)
    L, W = int(store.lengths[i]), batch["step"].shape[1]
    xy, mats, th, d, dpsi, last_step = _oracle(store, i)
    q = out["qpos"][0]
    np.testing.assert_allclose(q[:, :2], xy[:W], atol=1e-9)
    got = Rotation.from_quat(q[:, [4, 5, 6, 3]]).as_matrix()
    np.testing.assert_allclose(got, mats[:W], atol=1e-12)
    raw = batch["qpos"][0]
    np.testing.assert_array_equal(q[:, 2:3], raw[:, 2:3])  # z as recorded
    np.testing.assert_array_equal(q[:, 7:], raw[:, 7:])  # joints untouched
    np.testing.assert_array_equal(q[:L], raw[:L])  # loop 0 bit-identical
    assert (np.einsum("ti,ti->t", q[1:, 3:7], q[:-1, 3:7]) > 0.9).all()  # no q -> -q jumps
    # Seams: L-1 of loop c-1 -> 0 of loop c repeats the last step L-2 -> L-1, turned by the
    # heading gained since (c-1) theta + dpsi; the heading gains dpsi there too.
    steps = np.diff(q[:, :2], axis=0)
    seam = np.arange(L - 1, W - 1, L)
    for c, t in enumerate(seam, start=1):
        np.testing.assert_allclose(steps[t], _rot2((c - 1) * th + dpsi) @ last_step, atol=1e-9)
    np.testing.assert_allclose(_wrap(np.diff(_heading(q[:, 3:7]))[seam]), dpsi, atol=1e-12)
    step_len = np.linalg.norm(steps, axis=1)
    inside = np.setdiff1d(np.arange(W - 1), seam)
    assert 0.02 < step_len[inside].min() and step_len.max() <= step_len[inside].max() < 0.06
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
    if i == 0:  # the straight 2 m/s stride: Delta is a pure translation of 2 m/s * L dt in x
        assert th == 0 and d[0] == pytest.approx(1.4719 + 0.0553, abs=1e-4)
        np.testing.assert_allclose(q[L * 5, 0] - raw[0, 0], 5 * d[0], rtol=1e-12)
    else:
        assert th == pytest.approx(0.3, abs=1e-9) and dpsi == pytest.approx(0.3 / L, abs=1e-9)


@pytest.mark.parametrize(
    "i", [0, 1, 2, 3], ids=["straight", "turning", "pin-straight", "pin-turning"]
)
def test_long_run_advance_is_the_clips_own_steps_integrated(store, i):
    """Over 40 loops the base lands where the clip's own planar steps take it (each step in the
    heading frame of the step before, the seam step = the last one), integrated here one step at
    a time with 2x2 rotations; a straight stride advances its commanded speed x elapsed time."""
    n = 40
    batch = _batch(store, [i], loops=n + 1)
    q = ContinueCycles(store).map(batch)["qpos"][0]
    raw = store.read(i, "qpos")
    if store.trajectories[i].source == "pin":
        raw = raw[:, [0, 1, 2, 6, 3, 4, 5]]  # xyzw -> wxyz for _heading
        q = q[:, [0, 1, 2, 6, 3, 4, 5]]
    L, psi = len(raw), _heading(raw[:, 3:7])
    local = [_rot2(-psi[t]) @ (raw[t + 1, :2] - raw[t, :2]) for t in range(L - 1)]
    turns = list(_wrap(np.diff(psi)))
    local, turns = local + local[-1:], turns + turns[-1:]  # the seam repeats the last step
    pos, heading = raw[0, :2].copy(), psi[0]
    for _ in range(n):
        for step, turn in zip(local, turns, strict=True):
            pos, heading = pos + _rot2(heading) @ step, heading + turn
    np.testing.assert_allclose(q[n * L, :2], pos, rtol=0, atol=1e-9)
    assert _wrap(_heading(q[n * L, 3:7]) - heading) == pytest.approx(0, abs=1e-9)
    if i in (0, 2):  # the 2.0 m/s stride of traj_20.npz: commanded speed x n L dt (0.05%)
        with np.load(ASLIP / "traj_20.npz") as f:
            want = float(f["speed"]) * n * L * float(f["dt"])
        assert q[n * L, 0] - q[0, 0] == pytest.approx(want, rel=1e-3)
        qvel = ContinueCycles(store).map(batch)["qvel"][0]  # MuJoCo-derived, central differences
        if i == 0:
            summed = qvel[: n * L, 0].sum() * store.trajectories[i].dt
            assert q[n * L, 0] - q[0, 0] == pytest.approx(summed, rel=2e-3)


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


def test_errors_and_precision_warning(store, caplog):
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
    np.testing.assert_allclose(
        out["qpos"][0, 31:, 0].astype(np.float64),
        near["qpos"][0, :31, 0].astype(np.float64) + 1.5272,
        atol=0.02,
    )


def _arm_store(tmp_path, nq, quat=None, bad_last=None):
    """Two 5-step trajectories of ``nq`` columns (MuJoCo convention): zeros, base quaternion
    ``quat`` (wxyz) when given; ``bad_last`` replaces traj 1's quaternion at its last frame."""
    root = tmp_path / "npz" / "arm"
    root.mkdir(parents=True)
    for i in range(2):
        qpos = np.zeros((5, nq))
        if quat is not None:
            qpos[:, 3:7] = quat
        if i == 1 and bad_last is not None:
            qpos[-1, 3:7] = bad_last
        np.savez(root / f"traj_{i}.npz", qpos=qpos, dt=0.01)
    export_npz(
        root.parent,
        tmp_path / "arm.zarr",
        source="arm",
        allow_missing=("qvel",),
        progress=False,
        convention="mujoco",
    )
    return TrajectoryStore(tmp_path / "arm.zarr")


def _arm_config(store, **overrides):
    return load_config(
        "default",
        {"zarr_path": store.path, "num_envs": 2, "window_size": 4, "keys": ("qpos",), **overrides},
    )


def test_make_dataset_refuses_data_without_a_floating_base_up_front(tmp_path):
    """Under the default cyclic=True, make_dataset itself refuses what would only fail at the
    first wrap (the first wrap here comes after 1 batch; on long clips hundreds of batches in)."""
    arm = _arm_store(tmp_path / "a", nq=4)  # a fixed-base arm: no quaternion at all
    msg = (
        f"trajectory arm/arm/traj0 of {arm.path!r}: qpos has nq = 4 columns, but continuing "
        "cycles (config.cyclic, on by default) moves a floating base at qpos[0:7] (x, y, z, "
        "quaternion; nq >= 7). Pass --config.cyclic=False for fixed-base data, or re-export "
        "with the floating base at qpos[0:7]."
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(msg)}$"):
        make_dataset(_arm_config(arm), arm, 0, 1)
    # nq >= 7 but traj 1's quaternion at frame L-1 (a frame Delta reads) is not a unit one.
    bad = _arm_store(tmp_path / "b", nq=9, quat=(1, 0, 0, 0), bad_last=(0.5, 0, 0, 0))
    msg = (
        "trajectory arm/arm/traj1 (length 5), frame L-1: qpos[3:7] = [0.5, 0.0, 0.0, 0.0] has "
        "norm 0.5, not a unit base quaternion (wxyz, the source's convention). Continuing "
        "cycles (config.cyclic, on by default) needs a floating base at qpos[0:7]: pass "
        "--config.cyclic=False for fixed-base data, or re-export the source with the right "
        "--convention."
    )
    with pytest.raises(ConventionError, match=f"^{re.escape(msg)}$"):
        make_dataset(_arm_config(bad), bad, 0, 1)
    with pytest.raises(ConventionError, match=re.escape(msg)):  # the transform alone: same check
        ContinueCycles(bad).map(
            {
                "traj_id": np.ones(1, np.int32),
                "loop": np.ones((1, 2), np.int32),
                "qpos": np.zeros((1, 2, 9), np.float32),
            }
        )
    # Where no window can wrap (clamp) or with cyclic=False the raw data streams as it is.
    for overrides in ({"end_policy": "clamp"}, {"cyclic": False}):
        batches = list(
            itertools.islice(iter(make_dataset(_arm_config(arm, **overrides), arm, 0, 1)), 3)
        )
        for b in batches:
            np.testing.assert_array_equal(b["qpos"], arm.gather("qpos", b["traj_id"], b["step"]))
    # Valid floating-base data builds and streams.
    good = _arm_store(tmp_path / "c", nq=9, quat=(1, 0, 0, 0))
    ds = make_dataset(_arm_config(good), good, 0, 1)
    assert len(list(itertools.islice(iter(ds), 4))) == 4


def _stream(store, cyclic, n=12):
    config = load_config(
        "cassie",
        {
            "zarr_path": store.path,
            "num_envs": 2,
            "window_size": 16,
            "assignment": "explicit",
            "traj_ids": (0, 2),
            "keys": ("qpos", "qvel", "ee_pos"),
            "cyclic": cyclic,
            "references.ee_sites": ("left-foot", "right-foot"),
        },
    )
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
        ee = cat(on, "ref_base_local_ee_pos")[e]  # from the base, in its heading: unchanged
        np.testing.assert_allclose(ee, cat(off, "ref_base_local_ee_pos")[e], atol=1e-5)
        # References read the rewritten qpos: episode-local x = continued x - first x.
        q = cat(on, "qpos")[e]
        np.testing.assert_allclose(trans, q[:, 0] - q[0, 0], atol=1e-5)
        np.testing.assert_array_equal(cat(on, "ref_local_ee_pos")[e], cat(on, "ee_pos")[e])  # world
    pos = cat(on, "ref_base_local_pos")[:, :, 0]  # world x: continued, so it only grows
    assert (np.diff(pos, axis=1) > -1e-6).all()
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
    for clone in (
        pickle.loads(pickle.dumps(used)),
        pickle.loads(pickle.dumps(ContinueCycles(store))),
    ):
        got = clone.map(batch)
        for k in ("qpos", "qvel", "ee_pos"):
            np.testing.assert_array_equal(got[k], want[k])
