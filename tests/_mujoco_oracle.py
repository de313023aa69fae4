"""MuJoCo oracles shared by the reference tests: model loading, random states, MuJoCo's own base
rotation, body-frame velocity (``mj_objectVelocity``) and site positions (``site_xpos``)."""

from __future__ import annotations

import functools

import mujoco
import numpy as np
from conftest import SHARED_DATA

from trajopt_loader.robots import cassie, digit_v3

DATA = SHARED_DATA
MODELS = {
    "digit": (DATA / "digit_v3" / "digit-v3.xml", digit_v3.SPEC),
    "cassie": (DATA / "cassie" / "cassie.xml", cassie.SPEC),
}
YAWS = (0.0, 90.0, 170.0, -135.0)


@functools.cache
def model(name):
    return mujoco.MjModel.from_xml_path(str(MODELS[name][0]))


def quat(yaw, pitch=0.0, roll=0.0):
    """MuJoCo wxyz quaternion of Rz(yaw) Ry(pitch) Rx(roll) (MuJoCo's 'zyx' = intrinsic, rad)."""
    q = np.zeros(4)
    mujoco.mju_euler2Quat(q, np.array([yaw, pitch, roll], float), "zyx")
    return q


def random_state(m, rng, yaw_deg=None):
    """MuJoCo-convention (qpos, qvel): hinges perturbed, base tilted, yaw given or random."""
    qpos, qvel = m.qpos0.copy(), rng.normal(size=m.nv)
    hinge = m.jnt_type == mujoco.mjtJoint.mjJNT_HINGE
    qpos[m.jnt_qposadr[hinge]] += rng.normal(0.0, 0.2, hinge.sum())
    qpos[0:3] = rng.uniform(-3, 3, 3) + (0, 0, 1)
    if yaw_deg is None:
        q = rng.normal(size=4)
        qpos[3:7] = q / np.linalg.norm(q)
    else:
        qpos[3:7] = quat(np.radians(yaw_deg), *rng.uniform(-0.4, 0.4, 2))
    return qpos, qvel


def mj_truth(m, qpos, qvel, spec):
    """MuJoCo's base rotation, body-frame [ang, lin] velocity of the base body frame, site
    positions. mjOBJ_XBODY is the body frame (xpos/xmat); mjOBJ_BODY would be the inertial frame
    (xipos)."""
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = qpos, qvel
    mujoco.mj_forward(m, d)
    bid, out = m.body(spec.base_body).id, np.zeros(6)
    mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, bid, out, 1)
    sites = np.array([d.site(s).xpos for s in spec.ee_sites]).reshape(-1, 3)
    return {
        "xmat": d.xmat[bid].reshape(3, 3).copy(),
        "ang": out[:3],
        "lin": out[3:],
        "xpos": d.xpos[bid].copy(),
        "sites": sites,
    }


def to_pinocchio(m, qpos, qvel, spec):
    """Same state in Pinocchio order/frames: quat xyzw; body linear velocity taken from MuJoCo."""
    q, v = qpos.copy(), qvel.copy()
    q[3:7] = qpos[[4, 5, 6, 3]]
    v[0:3] = mj_truth(m, qpos, qvel, spec)["lin"]
    return q, v


def turn(qpos, qvel, yaw_deg):
    """The same MuJoCo-convention motion turned about world z by ``yaw_deg`` (copies [..., nq/nv]):
    positions and world linear velocities rotated, quaternions pre-multiplied (MuJoCo functions);
    body-frame angular velocities unchanged."""
    qpos, qvel = np.array(qpos, np.float64), np.array(qvel, np.float64)
    qz = quat(np.radians(yaw_deg))
    for q, v in zip(
        qpos.reshape(-1, qpos.shape[-1]), qvel.reshape(-1, qvel.shape[-1]), strict=True
    ):
        for vec in (q[0:3], v[0:3]):
            mujoco.mju_rotVecQuat(vec, vec.copy(), qz)
        mujoco.mju_mulQuat(q[3:7], qz, q[3:7].copy())
    return qpos, qvel
