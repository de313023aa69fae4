"""World poses and velocities of MuJoCo bodies from ``qpos`` / ``qvel`` trajectories.

For every frame, :func:`body_states` sets ``qpos`` / ``qvel`` (converted to MuJoCo's convention
first), runs ``mj_kinematics``, ``mj_comPos`` and ``mj_comVel``, and reads per named body ``b``:

=================  ==========  =====  =====================================================
key                shape       units  definition (MuJoCo)
=================  ==========  =====  =====================================================
``body_pos``       [T, nb, 3]  m      ``data.xpos[b]``: body frame origin, world frame
``body_quat``      [T, nb, 4]  1      ``data.xquat[b]``: body -> world rotation, **wxyz** order
``body_lin_vel``   [T, nb, 3]  m/s    linear velocity of the body frame origin, world axes
``body_ang_vel``   [T, nb, 3]  rad/s  angular velocity of the body, world axes
=================  ==========  =====  =====================================================

Both velocities are ``mj_objectVelocity(model, data, mjOBJ_XBODY, b, res, flg_local=0)``, which
returns ``res = [angular (3), linear (3)]``: ``body_ang_vel = res[0:3]``, ``body_lin_vel =
res[3:6]`` (note the order). All outputs are float64. The loop over frames runs MuJoCo's C
functions on the host (``benchmarks/bench_bodies.py`` measured it against vmapped MJX; see
benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from trajopt_loader.conventions import Convention
from trajopt_loader.errors import MissingKeyError, ModelError
from trajopt_loader.kinematics.model import check_qpos, model_name, qpos_to_mujoco, qvel_to_mujoco
from trajopt_loader.store.layout import BODY_KEYS

__all__ = [
    "BODY_KEYS",
    "BODY_QUAT_ORDER",
    "BODY_VEL_FRAME",
    "body_ids",
    "body_names_of",
    "body_states",
]

BODY_QUAT_ORDER = "wxyz"
BODY_VEL_FRAME = "world axes, at the body frame origin (mj_objectVelocity mjOBJ_XBODY, flg_local=0)"


def body_names_of(model: mujoco.MjModel, bodies: str | Sequence[str]) -> tuple[str, ...]:
    """Body names for ``bodies``: ``"all"`` = every body but the world, in model order; a
    comma-separated string or a sequence of names = those, in the order given.

    Raises:
      MissingKeyError: a name that is not a body of the model, an empty list, or the world body
        (it never moves); the message lists the model's bodies.
    """
    if isinstance(bodies, str):
        if bodies.strip() == "all":
            return tuple(model.body(i).name for i in range(1, model.nbody))
        bodies = [b.strip() for b in bodies.split(",") if b.strip()]
    names = tuple(bodies)
    body_ids(model, names)
    return names


def body_ids(model: mujoco.MjModel, names: Sequence[str]) -> np.ndarray:
    """Body ids ``[nb]`` int32 of ``names`` (order kept). Raises MissingKeyError as
    :func:`body_names_of`."""
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in names]
    bad = [n for n, i in zip(names, ids, strict=True) if i <= 0]
    if bad or not ids:
        available = [model.body(i).name for i in range(1, model.nbody)]
        raise MissingKeyError(
            f"body name(s) {bad or list(names)} not bodies of model {model_name(model)!r} (the "
            f"world body is excluded); available: {available}. Pass 'all' or some of these."
        )
    return np.asarray(ids, dtype=np.int32)


def body_states(
    model: mujoco.MjModel,
    qpos: np.ndarray,
    qvel: np.ndarray,
    names: Sequence[str],
    convention: Convention | str,
) -> dict[str, np.ndarray]:
    """World pose and velocity of the bodies ``names`` at every frame (module docstring table).

    Args:
      model: the MuJoCo model the data was made for.
      qpos: float ``[T, nq]`` (m, rad; base quaternion in ``convention``'s order).
      qvel: float ``[T, nv]`` (base velocities in ``convention``'s frames).
      names: body names (``body_names_of``). convention: the data's Convention or its name.

    Returns:
      ``{"body_pos": [T, nb, 3], "body_quat": [T, nb, 4] (wxyz), "body_lin_vel": [T, nb, 3],
      "body_ang_vel": [T, nb, 3]}`` float64, world frame (m, 1, m/s, rad/s).

    Raises:
      ModelError: ``qpos`` / ``qvel`` widths differ from ``nq`` / ``nv``, or their frame counts
        differ. ConventionError: see :func:`~trajopt_loader.kinematics.model.qpos_to_mujoco`.
      MissingKeyError: an unknown body name.
    """
    ids = body_ids(model, names)
    q = qpos_to_mujoco(model, check_qpos(model, qpos), convention).reshape(-1, model.nq)
    qvel = np.asarray(qvel, dtype=np.float64)
    if qvel.ndim != 2 or qvel.shape != (q.shape[0], model.nv):
        raise ModelError(
            f"qvel has shape {qvel.shape} but qpos has {q.shape[0]} frames and model "
            f"{model_name(model)!r} has nv={model.nv}; expected "
            f"[{q.shape[0]}, {model.nv}]."
        )
    v = qvel_to_mujoco(model, qvel, q, convention)
    n, nb = q.shape[0], ids.size
    out = {
        key: np.empty((n, nb, width)) for key, width in zip(BODY_KEYS, (3, 4, 3, 3), strict=True)
    }
    data, res, xbody = mujoco.MjData(model), np.empty(6), int(mujoco.mjtObj.mjOBJ_XBODY)
    for k in range(n):
        data.qpos[:], data.qvel[:] = q[k], v[k]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        mujoco.mj_comVel(model, data)
        out["body_pos"][k] = data.xpos[ids]
        out["body_quat"][k] = data.xquat[ids]
        for j, b in enumerate(ids):
            mujoco.mj_objectVelocity(model, data, xbody, int(b), res, 0)
            out["body_ang_vel"][k, j] = res[0:3]
            out["body_lin_vel"][k, j] = res[3:6]
    return out
