"""Joint velocities from positions, and resampling, on the configuration manifold with MuJoCo.

All configuration-space math goes through MuJoCo (``mj_differentiatePos`` / ``mj_integratePos``),
so free, ball, slide and hinge joints each follow their own rule, and velocities land at each
joint's dof address (``jnt_dofadr``), positions at its qpos address (``jnt_qposadr``); the two
differ once a free or ball joint precedes a joint.

For a free joint (and a base of 3 world slides + ball) ``mj_differentiatePos`` returns
``[v_world (3, m/s), omega_body (3, rad/s)]``: the position difference in the world frame and the
rotation ``q1^-1 q2`` as a rotation vector in the body frame, MuJoCo's qvel convention (MuJoCo
docs, "Floating objects"; checked in tests against ``mj_integratePos``). Data in another
:class:`~trajopt_loader.conventions.Convention` (Pinocchio: quaternion ``xyzw``, base linear
velocity in the body frame) is converted to MuJoCo's before and back after
(:mod:`trajopt_loader.kinematics.model`).
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from trajopt_loader.conventions import Convention
from trajopt_loader.errors import ModelError
from trajopt_loader.interpolation import grid_lengths, grid_positions
from trajopt_loader.kinematics.model import qpos_from_mujoco, qpos_to_mujoco, qvel_from_mujoco

__all__ = [
    "QVEL_METHOD",
    "check_dt",
    "qvel_from_qpos",
    "resample_grid",
    "resample_linear",
    "resample_qpos",
]

QVEL_METHOD = "mj_differentiatePos central difference (one-sided at first and last frame)"


def check_dt(dt: float, name: str = "dt") -> float:
    """``float(dt)``, a time step in s; ValueError naming ``name`` unless finite and > 0."""
    try:
        value = float(dt)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={dt!r} must be a finite time step > 0 in seconds.")
    return value


def qvel_from_qpos(
    model: mujoco.MjModel, qpos: np.ndarray, dt: float, convention: Convention
) -> np.ndarray:
    """Joint velocities of a trajectory by finite differences on the configuration manifold.

    Frame ``t`` gets ``mj_differentiatePos(q[t-1], q[t+1]) / (2 dt)`` (central, second order); the
    first and last frames get the one-sided ``(q[0], q[1]) / dt`` and ``(q[T-2], q[T-1]) / dt``
    (first order). Quaternions differ by the rotation between frames (body frame, shortest arc).

    Args:
      model: MuJoCo model whose ``nq`` matches ``qpos``.
      qpos: ``[T, nq]`` (m, rad; base quaternion in ``convention.quat_order``), ``T >= 2``.
      dt: time between frames (s).
      convention: convention of the data; base velocities are returned in it.
    Returns:
      ``qvel [T, nv]`` float64 (m/s, rad/s), each joint at its dof address.
    Raises:
      ModelError: width is not ``nq`` or ``T < 2``.  ValueError: bad ``dt``.
      ConventionError: conversion needs a floating base the model lacks.
    """
    dt = check_dt(dt)
    q = qpos_to_mujoco(model, qpos, convention)
    if q.ndim != 2 or q.shape[0] < 2:
        raise ModelError(f"qpos has shape {q.shape}; velocities need [T, {model.nq}], T >= 2.")
    n = q.shape[0]
    out = np.zeros((n, model.nv))
    for t in range(n):
        a, b = max(t - 1, 0), min(t + 1, n - 1)
        mujoco.mj_differentiatePos(model, out[t], (b - a) * dt, q[a], q[b])
    return qvel_from_mujoco(model, out, q, convention)


def resample_grid(length: int, dt: float, new_dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Where new frame ``k`` (time ``k * new_dt``) falls among ``length`` frames spaced ``dt``
    (the grid of :mod:`trajopt_loader.interpolation`).

    Returns ``(i [T'] int64, alpha [T'] float64)``: new frame ``k`` lies at ``i + alpha`` source
    frames, ``alpha`` in ``[0, 1)`` (0 when the times coincide, up to 1e-9 frame), ``i < length``.
    ``T' = floor((length - 1) * dt / new_dt) + 1`` (same 1e-9 tolerance).
    Raises ValueError for a bad ``dt`` / ``new_dt`` or ``length < 1``.
    """
    dt, new_dt = check_dt(dt), check_dt(new_dt, "new_dt")
    if length < 1:
        raise ValueError(f"cannot resample a trajectory of length {length}; it needs >= 1 frame.")
    count = int(grid_lengths(length, dt, new_dt))
    i, _, alpha = grid_positions(np.arange(count), dt, new_dt, length)
    return i, alpha


def resample_linear(x: np.ndarray, dt: float, new_dt: float) -> np.ndarray:
    """Resample a per-frame array ``x [T, ...]`` from ``dt`` to ``new_dt`` (s), grid of
    :func:`resample_grid`: floating dtypes linearly (dtype kept); others (int, bool) hold the
    previous frame. Returns ``[T', ...]``."""
    x = np.asarray(x)
    i, alpha = resample_grid(x.shape[0], dt, new_dt)
    if not np.issubdtype(x.dtype, np.floating):
        return x[i]
    a = alpha.reshape((-1,) + (1,) * (x.ndim - 1))
    nxt = x[np.minimum(i + 1, x.shape[0] - 1)]
    return ((1.0 - a) * x[i] + a * nxt).astype(x.dtype)


def resample_qpos(
    model: mujoco.MjModel, qpos: np.ndarray, dt: float, new_dt: float, convention: Convention
) -> np.ndarray:
    """Resample positions ``qpos [T, nq]`` from ``dt`` to ``new_dt`` (s) on the manifold.

    New frame = ``mj_integratePos(q[i], alpha * mj_differentiatePos(q[i], q[i+1]))`` on the grid of
    :func:`resample_grid`: linear for hinges and slides, slerp (shortest arc) for ball and free
    quaternions, which stay unit norm. Frames at coinciding times are copied exactly.
    Returns ``[T', nq]`` float64 in ``convention``.

    Raises:
      ModelError: wrong width.  ValueError: bad ``dt`` / ``new_dt``.  ConventionError: as above.
    """
    q = qpos_to_mujoco(model, qpos, convention)
    if q.ndim != 2:
        raise ModelError(f"qpos has shape {q.shape}; resampling needs [T, {model.nq}].")
    i, alpha = resample_grid(q.shape[0], dt, new_dt)
    out = q[i].copy()
    vel = np.zeros(model.nv)
    for k in np.flatnonzero(alpha > 0.0):
        mujoco.mj_differentiatePos(model, vel, 1.0, q[i[k]], q[i[k] + 1])
        mujoco.mj_integratePos(model, out[k], vel, float(alpha[k]))
    return qpos_from_mujoco(model, out, convention)
