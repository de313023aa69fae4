"""Every reference key against MuJoCo ground truth (``xmat``, ``xpos``, ``mj_objectVelocity`` of the
base body with ``flg_local=1``, ``site_xpos``), on motions whose first heading is not zero, streamed
across the wrap seam with cyclic continuation, in both conventions given by name: numpy
(``build_refs_from_window``, ``BuildReferences``), JAX (``compute_references_jax``) and the
pipeline (``make_dataset`` with ``config.references``).

Motions: the real Cassie ``agility_reference/traj_0`` walk (every 60th row: 29 steps) turned by
120 deg about world z,
with its ``imu`` site as end effector; a synthetic Digit v3 walk (20 steps, first heading
-150 deg, turning 3 deg a step) with its four hand / foot sites. Each is stored twice: source
``mj`` as MuJoCo data (convention ``"MuJoCo"``) and source ``pin`` converted to Pinocchio order and
frames (convention ``" crocoddyl "``); ``ee_pos`` is MuJoCo's ``site_xpos``.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import mujoco
import numpy as np
import pytest
from _mujoco_oracle import DATA, MODELS, mj_truth, model, quat, to_pinocchio, turn  # noqa: I001

from trajopt_loader.compat import build_refs_from_window
from trajopt_loader.configs import load_config
from trajopt_loader.conventions import MUJOCO, PINOCCHIO
from trajopt_loader.errors import ConventionError
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.store import TrajectoryStore, export_npz
from trajopt_loader.transforms.references import (
    EE_REF_KEYS,
    HEADING_EE_REF_KEYS,
    HEADING_REF_KEYS,
    REF_KEYS,
)
from trajopt_loader.transforms.references_jax import compute_references_jax
from trajopt_loader.transforms.references_transform import BuildReferences

ALL_KEYS = REF_KEYS + EE_REF_KEYS + HEADING_REF_KEYS + HEADING_EE_REF_KEYS
WINDOW = 24


def _digit_walk(m, n=20):
    """MuJoCo-convention Digit states: base advancing 0.05 m a step along its heading, which
    starts at -150 deg and turns 3 deg a step, tilted; joints swinging; random velocities."""
    rng = np.random.default_rng(30)
    t = np.arange(n)
    yaw = np.radians(-150.0 + 3.0 * t)
    qpos = np.tile(m.qpos0, (n, 1))
    hinge = m.jnt_qposadr[m.jnt_type == mujoco.mjtJoint.mjJNT_HINGE]
    qpos[:, hinge] += 0.3 * np.sin(0.4 * t[:, None] + np.arange(hinge.size))
    qpos[:, 0:3] = np.stack(
        [
            0.7 + 0.05 * np.cumsum(np.cos(yaw)),
            -0.4 + 0.05 * np.cumsum(np.sin(yaw)),
            1.0 + 0.02 * np.sin(t),
        ],
        axis=1,
    )
    qpos[:, 3:7] = [quat(y, 0.1, -0.05) for y in yaw]
    return qpos, rng.normal(size=(n, m.nv)), 0.03


def _motion(name):
    m, spec = model(name), MODELS[name][1]
    if name == "cassie":
        d = np.load(DATA / "cassie" / "trajopt" / "agility_reference" / "traj_0.npz")
        qpos, qvel = turn(d["qpos"][::60], d["qvel"][::60], 120.0)  # 29 of the 2 kHz rows
        assert np.abs(qvel[:, 0:6]).min(axis=0).max() > 0 and np.abs(qvel[:, 3:6]).max() > 0.1
        return m, dataclasses.replace(spec, ee_sites=("imu",)), qpos, qvel, 60 * float(d["dt"])
    return (m, spec) + _digit_walk(m)


@pytest.fixture(scope="module", params=["cassie", "digit"])
def robot(request, tmp_path_factory):
    """(name, model, spec, store): the motion stored as source 'mj' (traj 0) and 'pin' (traj 1)."""
    m, spec, qpos, qvel, dt = _motion(request.param)
    ee = np.stack([mj_truth(m, q, v, spec)["sites"] for q, v in zip(qpos, qvel, strict=True)])
    pin = [to_pinocchio(m, q, v, spec) for q, v in zip(qpos, qvel, strict=True)]
    root = tmp_path_factory.mktemp(request.param)
    for src, conv, q, v in (
        ("mj", "MuJoCo", qpos, qvel),
        ("pin", " crocoddyl ", np.stack([p[0] for p in pin]), np.stack([p[1] for p in pin])),
    ):
        (root / src / "walk").mkdir(parents=True)
        np.savez(root / src / "walk" / "traj_0.npz", qpos=q, qvel=v, ee_pos=ee, dt=np.float64(dt))
        export_npz(root / src, root / "s.zarr", source=src, convention=conv, progress=False)
    store = TrajectoryStore(str(root / "s.zarr"))
    assert [t.source for t in store.trajectories] == ["mj", "pin"]
    assert (store.convention("mj"), store.convention("pin")) == (MUJOCO, PINOCCHIO)  # by name
    first_heading = np.degrees(np.arctan2(*mj_truth(m, qpos[0], qvel[0], spec)["xmat"][[1, 0], 0]))
    assert abs(first_heading) > 100  # the motion does not start facing world x
    return request.param, m, spec, store


@pytest.fixture(scope="module")
def batches(robot):
    """Three batches of 2 envs (traj 0 'mj', traj 1 'pin') x 24 steps from make_dataset with the
    references enabled (heading-frame keys on, float64): windows across the wrap seam (loops
    0 -> 1 and 1 -> 2) and a last one after it (loop >= 1)."""
    name, _, spec, store = robot
    config = load_config(
        "cassie" if name == "cassie" else "digit_v3",
        {
            "zarr_path": store.path,
            "num_envs": 2,
            "window_size": WINDOW,
            "assignment": "explicit",
            "traj_ids": (0, 1),
            "keys": ("qpos", "qvel", "ee_pos"),
            "dtype": "float64",
            "references.ee_sites": spec.ee_sites,
            "references.heading_frame_keys": True,
        },
    )
    out = list(itertools.islice(iter(make_dataset(config, store, 0, 1)), 3))
    seams = [np.unique(b["loop"]).tolist() for b in out]
    assert [0, 1] in seams and [1, 2] in seams and out[2]["loop"].min() >= 1, seams
    return out


def _mj_state(q, v, conv):
    """MuJoCo-convention copy of a state given in ``conv`` (MuJoCo's functions do the rotation,
    with the quaternion normalized as ``mj_kinematics`` does; recorded ones are not exactly
    unit)."""
    q, v = np.array(q, np.float64), np.array(v, np.float64)
    if conv == "pin":
        q[3:7] = q[[6, 3, 4, 5]]
        unit = q[3:7].copy()
        mujoco.mju_normalize4(unit)
        mujoco.mju_rotVecQuat(v[0:3], v[0:3].copy(), unit)  # body -> world linear velocity
    return q, v


def _hz(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def truth(m, spec, qpos, qvel, conv, origin):
    """Every reference key of one env's window ``[T, ...]`` from MuJoCo: ``origin`` = qpos row of
    the episode's first step. Orientation keys are checked as rotation matrices (see ``check``)."""
    heading = lambda r: np.arctan2(r[1, 0], r[0, 0])  # noqa: E731
    rows = [_mj_state(q, v, conv) for q, v in zip(qpos, qvel, strict=True)]
    tr = [mj_truth(m, q, v, spec) for q, v in rows]
    o = mj_truth(m, *_mj_state(origin, np.zeros(m.nv), conv), spec)
    h_o, h_w = _hz(heading(o["xmat"])), _hz(heading(tr[0]["xmat"]))
    qadr = [m.joint(j).qposadr[0] for j in spec.actuated_joints]
    dadr = [m.joint(j).dofadr[0] for j in spec.actuated_joints]
    return {
        "ref_motor_joint_pos": np.array([q[qadr] for q, _ in rows]),
        "ref_motor_joint_vel": np.array([v[dadr] for _, v in rows]),
        "ref_base_local_pos": np.array([x["xpos"] for x in tr]),
        "ref_base_local_trans": np.array([x["xpos"] - o["xpos"] for x in tr]),
        "ref_base_local_ori": np.array([x["xmat"] for x in tr]),
        "ref_base_robot_lin_vel": np.array([x["lin"] for x in tr]),
        "ref_base_robot_ang_vel": np.array([x["ang"] for x in tr]),
        "ref_local_ee_pos": np.array([x["sites"] for x in tr]),
        "ref_base_local_ee_pos": np.array(
            [(x["sites"] - x["xpos"]) @ _hz(heading(x["xmat"])) for x in tr]
        ),
        "ref_base_heading_pos": np.array([h_w.T @ (x["xpos"] - tr[0]["xpos"]) for x in tr]),
        "ref_base_heading_trans": np.array([h_o.T @ (x["xpos"] - o["xpos"]) for x in tr]),
        "ref_base_heading_ori": np.array([h_o.T @ x["xmat"] for x in tr]),
        "ref_ee_heading_pos": np.array([(x["sites"] - x["xpos"]) @ h_o for x in tr]),
        "ref_len": np.array([len(qpos)]),
    }


def _mat(roll, pitch, yaw):
    """MuJoCo's rotation matrix of intrinsic (yaw, pitch, roll) = Rz Ry Rx."""
    out = np.zeros(9)
    mujoco.mju_quat2Mat(out, quat(yaw, pitch, roll))
    return out.reshape(3, 3)


def check(refs, want, atol, keys=ALL_KEYS):
    """``refs [T, ...]`` against :func:`truth`; (roll, pitch, yaw) keys as MuJoCo rotation
    matrices."""
    assert set(keys) <= set(refs), sorted(set(keys) - set(refs))
    for key in keys:
        got = np.asarray(refs[key], np.float64)
        if key.endswith("_ori"):
            assert np.all(np.abs(got) <= np.pi + 1e-6), key
            got = np.array([_mat(*rpy) for rpy in got])
        np.testing.assert_allclose(got, want[key].reshape(got.shape), atol=atol, err_msg=key)


@pytest.fixture(scope="module")
def truths(robot, batches):
    """``[batch][env] -> (want, origin qpos row)``: MuJoCo's values for every env of ``batches``."""
    _, m, spec, store = robot
    out = []
    for b in batches:
        out.append([])
        for e, (traj, first) in enumerate(
            zip(b["traj_id"].tolist(), b["episode_first_step"].tolist(), strict=True)
        ):
            origin = store.read(traj, "qpos", first, first + 1)[0]
            conv = store.trajectories[traj].source
            out[-1].append((truth(m, spec, b["qpos"][e], b["qvel"][e], conv, origin), origin))
    return out


def test_pipeline_references_match_mujoco_across_the_wrap(batches, truths):
    for b, want_b in zip(batches, truths, strict=True):
        for e in range(2):
            want = want_b[e][0]
            check({k: v[e] if k != "ref_len" else v[e : e + 1] for k, v in b.items()}, want, 1e-9)


@pytest.mark.parametrize("name", ["mujoco", "Pinocchio", " CROCODDYL"])
def test_build_references_with_a_convention_name_matches_mujoco(robot, batches, truths, name):
    _, _, spec, store = robot
    conv_src = "mj" if name == "mujoco" else "pin"
    for b, want_b in zip(batches, truths, strict=True):
        e = [store.trajectories[t].source for t in b["traj_id"]].index(conv_src)
        want, origin = want_b[e]
        batch = {
            "qpos": b["qpos"][e : e + 1],
            "qvel": b["qvel"][e : e + 1],
            "ee_pos": b["ee_pos"][e : e + 1],
            "episode_origin_qpos": origin[None],
        }
        out = BuildReferences(None, spec, convention=name, heading_frame_keys=True).map(batch)
        check({k: v[0] if k != "ref_len" else v for k, v in out.items()}, want, 1e-9)
        plain = BuildReferences(None, spec, convention=name).map(batch)  # default: no heading keys
        assert set(plain) == set(batch) | set(REF_KEYS + EE_REF_KEYS)


@pytest.mark.parametrize("name", ["MUJOCO", "pinocchio"])
def test_build_refs_from_window_by_name_matches_mujoco(robot, batches, name):
    """The seed function: the window's first row is the episode origin."""
    _, _, spec, store = robot
    b = batches[2]  # every step after the seam (loop >= 1)
    e = [store.trajectories[t].source for t in b["traj_id"]].index(
        "mj" if name == "MUJOCO" else "pin"
    )
    want = truth(
        robot[1],
        spec,
        b["qpos"][e],
        b["qvel"][e],
        "mj" if name == "MUJOCO" else "pin",
        b["qpos"][e, 0],
    )
    refs = build_refs_from_window(
        b["qpos"][e], b["qvel"][e], spec, b["ee_pos"][e], name, heading_frame_keys=True
    )
    check(refs, want, 1e-9)
    assert not set(HEADING_REF_KEYS) & set(
        build_refs_from_window(b["qpos"][e], b["qvel"][e], spec, convention=name)
    )


def test_jax_references_by_name_match_mujoco(robot, batches, truths):
    _, _, spec, store = robot
    for b, want_b in zip(batches, truths, strict=True):
        origin = store.gather("qpos", b["traj_id"], b["episode_first_step"][:, None])[:, 0]
        conv_idx = np.array([store.trajectories[t].source == "pin" for t in b["traj_id"]], np.int32)
        args = jax.device_put((b["qpos"].astype(np.float32), b["qvel"].astype(np.float32)))
        refs = compute_references_jax(
            *args,
            spec,
            ("mujoco", "Crocoddyl"),
            convention_index=conv_idx,
            origin_qpos=origin.astype(np.float32),
            ee_pos=b["ee_pos"].astype(np.float32),
            heading_frame_keys=True,
        )
        for e in range(2):
            check(
                {k: np.asarray(v[e] if k != "ref_len" else v[e : e + 1]) for k, v in refs.items()},
                want_b[e][0],
                2e-4,
            )


def test_unknown_convention_names_list_the_valid_ones(robot):
    _, _, spec, _ = robot
    q = np.zeros((1, spec.nq))
    q[0, 3] = 1.0
    msg = r"convention 'drake' is unknown; expected one of \['mujoco', 'pinocchio', 'crocoddyl'\]"
    with pytest.raises(ConventionError, match=msg):
        build_refs_from_window(q, np.zeros((1, spec.nv)), spec, convention="drake")
    with pytest.raises(ConventionError, match=msg):
        BuildReferences(None, spec, convention="drake")
    with pytest.raises(ConventionError, match=msg):
        compute_references_jax(q[None], np.zeros((1, 1, spec.nv)), spec, "drake")
