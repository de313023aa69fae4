"""Wrong velocity data or dt: is ``qvel`` the time derivative of ``qpos`` at the recorded ``dt``?

For hinge and slide coordinates, ``qvel[t, dof]`` is compared with the forward difference
``(qpos[t+1, adr] - qpos[t, adr]) / dt``: the correlation and the least-squares scale between the
two are reported, and a scale far from 1 (a wrong ``dt`` or unit) or a low correlation (velocities
of other joints, shuffled or frozen data) is flagged. Addresses come from a MuJoCo model
(``jnt_qposadr`` / ``jnt_dofadr`` of hinge and slide joints; they differ once a free or ball joint
precedes a joint), or, without a model, from the free/ball-base layout when ``nq - nv == 1``
(qpos ``7 + j`` vs qvel ``6 + j``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from trajopt_loader.store.time_step import require_dt

MIN_CORRELATION = 0.9
SCALE_TOLERANCE = 0.2


@dataclasses.dataclass(frozen=True)
class VelocityCheck:
    """Agreement of ``qvel`` with finite differences of ``qpos`` over hinge/slide coordinates.

    Attributes:
      correlation: Pearson correlation over all (t, joint) samples; nan if a side is constant.
      scale: least-squares ``s`` in ``qvel ~= s * dq/dt`` (1 when velocities and dt are right;
        ``k`` when the stored dt is ``k`` times too small; 0 for all-zero qvel).
      n_joints, n_samples: coordinates and samples compared. flagged: see ``reason``.
    """

    correlation: float
    scale: float
    n_joints: int
    n_samples: int
    flagged: bool
    reason: str = ""


def check_velocity_consistency(
    qpos,
    qvel,
    dt: float,
    qpos_adr=None,
    dof_adr=None,
    *,
    min_correlation: float = MIN_CORRELATION,
    scale_tolerance: float = SCALE_TOLERANCE,
) -> VelocityCheck:
    """Compare ``qvel[t, dof_adr]`` with ``(qpos[t+1, qpos_adr] - qpos[t, qpos_adr]) / dt``.

    Args:
      qpos: float ``[T, nq]``. qvel: float ``[T, nv]``. dt: time step (s); an unknown dt (NaN)
        is refused.
      qpos_adr, dof_adr: int ``[J]`` addresses of hinge/slide joints; default: free/ball base layout
        (``nq - nv == 1``): ``qpos_adr = 7 + j``, ``dof_adr = 6 + j`` for ``j < nv - 6``.
    Returns:
      a :class:`VelocityCheck`; flagged when correlation < ``min_correlation`` or
      ``|scale - 1| > scale_tolerance``, or when qpos moves and qvel is zero (or the reverse).
    Raises:
      ValueError: ``T < 2``, rows differ, or no addresses and ``nq - nv != 1``; an unknown dt
        (names the fix, ``store.time_step.require_dt``).
    """
    dt = require_dt(dt, "checking qvel against dq/dt", "velocity check", ValueError)
    qpos, qvel = np.asarray(qpos, np.float64), np.asarray(qvel, np.float64)
    if qpos.ndim != 2 or qvel.ndim != 2 or qpos.shape[0] != qvel.shape[0] or qpos.shape[0] < 2:
        raise ValueError(
            f"need qpos [T, nq] and qvel [T, nv] with equal T >= 2; got "
            f"{qpos.shape} and {qvel.shape}."
        )
    if qpos_adr is None or dof_adr is None:
        if qpos.shape[1] - qvel.shape[1] != 1 or qvel.shape[1] < 7:
            raise ValueError(
                f"nq={qpos.shape[1]}, nv={qvel.shape[1]}: not a free/ball-base layout "
                "(nq - nv == 1); pass the joint addresses (or a model)."
            )
        dof_adr = np.arange(6, qvel.shape[1])
        qpos_adr = dof_adr + 1
    qpos_adr, dof_adr = np.asarray(qpos_adr, np.int64), np.asarray(dof_adr, np.int64)
    if qpos_adr.size == 0 or qpos_adr.shape != dof_adr.shape:
        raise ValueError(
            f"need equal, non-empty joint address lists; got {qpos_adr.size} qpos "
            f"and {dof_adr.size} dof addresses."
        )
    fd = ((qpos[1:, qpos_adr] - qpos[:-1, qpos_adr]) / float(dt)).ravel()
    v = qvel[:-1, dof_adr].ravel()
    n = int(v.size)
    fd_c, v_c = fd - fd.mean(), v - v.mean()
    denom = math.sqrt(float(fd_c @ fd_c) * float(v_c @ v_c))
    corr = float(fd_c @ v_c) / denom if denom > 0 else float("nan")
    ff = float(fd @ fd)
    scale = float(v @ fd) / ff if ff > 0 else (1.0 if float(v @ v) == 0 else float("inf"))
    reason = ""
    if ff == 0 and float(v @ v) > 0:
        reason = "qvel is non-zero while these qpos coordinates do not move"
    elif ff > 0 and float(v @ v) == 0:
        reason = "qvel is zero while qpos moves"
    elif ff > 0 and not corr >= min_correlation:
        reason = f"qvel correlates poorly with dq/dt (r={corr:.3f}); wrong velocities or columns?"
    elif ff > 0 and abs(scale - 1.0) > scale_tolerance:
        reason = f"qvel ~= {scale:.3g} x dq/dt; is dt off by a factor {scale:.3g}?"
    return VelocityCheck(corr, scale, int(qpos_adr.size), n, bool(reason), reason)


def model_joint_addresses(model_path: str) -> tuple[int, int, np.ndarray, np.ndarray]:
    """``(nq, nv, qpos_adr, dof_adr)`` of the hinge and slide joints of a MuJoCo model.

    ``qpos_adr`` / ``dof_adr`` are int ``[n_joints]`` (``jnt_qposadr`` / ``jnt_dofadr``: they differ
    once a free or ball joint precedes a joint).

    Raises:
      ModelNotFoundError: no file at ``model_path``. ModelError: MuJoCo cannot load it.
    """
    import mujoco

    from trajopt_loader.kinematics.model import load_model

    m = load_model(model_path)
    kinds = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    ids = [j for j in range(m.njnt) if int(m.jnt_type[j]) in kinds]
    return m.nq, m.nv, np.asarray(m.jnt_qposadr[ids]), np.asarray(m.jnt_dofadr[ids])
