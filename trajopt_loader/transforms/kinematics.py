"""Joint velocities from positions, resampling, and export preprocessing with MuJoCo.

All configuration-space math goes through MuJoCo (``mj_differentiatePos`` / ``mj_integratePos``),
so free, ball, slide and hinge joints each follow their own rule, and velocities land at each
joint's dof address (``jnt_dofadr``), positions at its qpos address (``jnt_qposadr``); the two
differ once a free or ball joint precedes a joint.

For a free joint (and a base of 3 world slides + ball) ``mj_differentiatePos`` returns
``[v_world (3, m/s), omega_body (3, rad/s)]``: the position difference in the world frame and the
rotation ``q1^-1 q2`` as a rotation vector in the body frame, MuJoCo's qvel convention (MuJoCo
docs, "Floating objects"; checked in tests against ``mj_integratePos``). Data in another
:class:`~trajopt_loader.conventions.Convention` (Pinocchio: quaternion ``xyzw``, base linear
velocity in the body frame) is converted to MuJoCo's before and back after. Models and forward
kinematics: :mod:`trajopt_loader.transforms.fk` (names re-exported here).
"""

from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from trajopt_loader.conventions import Convention, as_convention
from trajopt_loader.errors import ExportError, ModelError
from trajopt_loader.store.validate import require_dt
from trajopt_loader.transforms.fk import (  # noqa: F401  (re-exported)
    EndEffectorPositions, has_floating_base, kinematics_copy, load_kinematics_model,
    check_qpos, needs_base_conversion, qpos_to_mujoco, site_ids, site_positions,
    site_positions_mujoco)

__all__ = [
    "EndEffectorPositions", "QVEL_METHOD", "has_floating_base", "kinematics_copy",
    "load_kinematics_model", "make_export_preprocess", "qpos_from_mujoco", "qpos_to_mujoco",
    "qvel_from_mujoco", "qvel_from_qpos", "qvel_to_mujoco", "resample_grid", "resample_linear",
    "resample_qpos", "site_ids", "site_positions", "site_positions_mujoco",
]

_EPS = 1e-9  # tolerance, in frames, for a resampled time falling on a source frame
QVEL_METHOD = "mj_differentiatePos central difference (one-sided at first and last frame)"


def qpos_from_mujoco(model: mujoco.MjModel, qpos: np.ndarray, convention: Convention) -> np.ndarray:
    """Inverse of :func:`qpos_to_mujoco`: base quaternion ``wxyz`` -> ``convention.quat_order``
    (``convention``: a Convention or its name)."""
    convention = as_convention(convention)
    q = np.array(check_qpos(model, qpos), dtype=np.float64)
    if needs_base_conversion(model, convention) and convention.quat_order == "xyzw":
        q[..., 3:7] = q[..., [4, 5, 6, 3]]
    return q


def _rotate_base(model, qvel, qpos_mj, convention: Convention | str, inverse: bool) -> np.ndarray:
    convention = as_convention(convention)
    v = np.array(qvel, dtype=np.float64)
    if not needs_base_conversion(model, convention):
        return v
    rot = Rotation.from_quat(np.asarray(qpos_mj)[..., 3:7].reshape(-1, 4), scalar_first=True)
    flat = v.reshape(-1, v.shape[-1])
    if convention.lin_vel_frame == "body":  # v_body = R^T v_world
        flat[:, 0:3] = rot.apply(flat[:, 0:3], inverse=not inverse)
    if convention.ang_vel_frame == "world":  # omega_world = R omega_body
        flat[:, 3:6] = rot.apply(flat[:, 3:6], inverse=inverse)
    return flat.reshape(v.shape)


def qvel_from_mujoco(model: mujoco.MjModel, qvel: np.ndarray, qpos_mj: np.ndarray,
                     convention: Convention) -> np.ndarray:
    """MuJoCo-convention ``qvel [..., nv]`` (base ``[v_world, omega_body]``) -> ``convention``.

    ``qpos_mj [..., nq]`` (quaternion ``wxyz``) gives the base rotation ``R`` (body -> world) at the
    same frames: ``v_body = R^T v_world``, ``omega_world = R omega_body``. Returns float64.
    Raises ConventionError when a conversion is needed but the model has no floating base.
    """
    return _rotate_base(model, qvel, qpos_mj, convention, inverse=False)


def qvel_to_mujoco(model: mujoco.MjModel, qvel: np.ndarray, qpos_mj: np.ndarray,
                   convention: Convention) -> np.ndarray:
    """Inverse of :func:`qvel_from_mujoco`: ``convention`` -> MuJoCo ``[v_world, omega_body]``."""
    return _rotate_base(model, qvel, qpos_mj, convention, inverse=True)


def _check_dt(dt: float, name: str = "dt") -> float:
    try:
        value = float(dt)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={dt!r} must be a finite time step > 0 in seconds.")
    return value


def qvel_from_qpos(model: mujoco.MjModel, qpos: np.ndarray, dt: float,
                   convention: Convention) -> np.ndarray:
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
    dt = _check_dt(dt)
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
    """Where new frame ``k`` (time ``k * new_dt``) falls among ``length`` frames spaced ``dt``.

    Returns ``(i [T'] int64, alpha [T'] float64)``: new frame ``k`` lies at ``i + alpha`` source
    frames, ``alpha`` in ``[0, 1)`` (0 when the times coincide, up to 1e-9 frame), ``i < length``.
    ``T' = floor((length - 1) * dt / new_dt) + 1`` (same 1e-9 tolerance).
    Raises ValueError for a bad ``dt`` / ``new_dt`` or ``length < 1``.
    """
    dt, new_dt = _check_dt(dt), _check_dt(new_dt, "new_dt")
    if length < 1:
        raise ValueError(f"cannot resample a trajectory of length {length}; it needs >= 1 frame.")
    count = int(math.floor((length - 1) * dt / new_dt + _EPS)) + 1
    s = np.arange(count) * (new_dt / dt)
    i = np.clip(np.floor(s + _EPS).astype(np.int64), 0, length - 1)
    alpha = np.clip(s - i, 0.0, None)
    alpha[(alpha < _EPS) | (i == length - 1)] = 0.0
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


def resample_qpos(model: mujoco.MjModel, qpos: np.ndarray, dt: float, new_dt: float,
                  convention: Convention) -> np.ndarray:
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


def make_export_preprocess(model_path: str, *, convention: Convention | str,
                           derive_qvel: bool = False, resample_dt: float | None = None,
                           ee_sites: Sequence[str] = ()) -> Callable:
    """Build the ``preprocess`` hook of ``export_npz`` (CLI ``--model``, ``--derive-qvel``,
    ``--resample-dt``, ``--ee-sites``).

    ``preprocess(arrays: dict[str, np.ndarray], dt: float, source_file: str) -> (arrays, dt,
    provenance)``, applied per trajectory file, in this order:

    1. resample (``resample_dt`` s): ``qpos`` by :func:`resample_qpos`; every other array with
       ``T`` rows by :func:`resample_linear` (``qvel`` too, unless re-derived); 0-d arrays are kept
       (a 0-d ``dt`` key is set to the new step); any other shape is an error.
    2. ``derive_qvel``: ``qvel [T, nv]`` by :func:`qvel_from_qpos` in ``convention`` for a file
       that has no ``qvel``; a file that has one keeps its recorded ``qvel`` (recorded data is
       never replaced; provenance says ``"recorded"``), so one export can mix both.
    3. ``ee_sites``: ``ee_pos [T, n_sites, 3]`` float64 (world, m) by ``mj_kinematics``, likewise
       only where the file has no ``ee_pos``.

    ``provenance`` (JSON-serializable) records the model file name, convention and each step done:
    ``qvel``, ``resampled_from_dt`` and ``resample``, ``ee_pos`` and ``ee_sites``.

    Raises:
      ModelNotFoundError, ModelError, MissingKeyError (unknown site), ValueError (bad
      ``resample_dt``) here; ExportError from ``preprocess`` naming the file and the key at fault
      (no ``qpos``, ``nq`` mismatch with both numbers, ...).
    """
    model = load_kinematics_model(model_path)
    conv = as_convention(convention)
    needs_base_conversion(model, conv)
    sites = tuple((ee_sites,) if isinstance(ee_sites, str) else ee_sites)
    if sites:
        site_ids(model, sites)
    new_dt = None if resample_dt is None else _check_dt(resample_dt, "resample_dt")
    base = {"model": os.path.basename(os.fspath(model_path)), "convention": conv.name}

    def preprocess(arrays: dict, dt: float, source_file: str):
        arrays, prov = dict(arrays), dict(base)
        if arrays.get("qpos") is None:
            raise ExportError(f"{source_file}: no 'qpos' key; kinematics (--model) needs qpos "
                              f"[T, {model.nq}] (keys: {sorted(arrays)}); map it with key_map.")
        qpos = arrays["qpos"] = np.asarray(arrays["qpos"])
        if qpos.ndim != 2 or qpos.shape[1] != model.nq:
            raise ExportError(f"{source_file}: 'qpos' has shape {qpos.shape} (width "
                              f"{qpos.shape[-1] if qpos.ndim else 0}) but model {base['model']} "
                              f"has nq={model.nq}; pass the model this data was made for.")
        _check_quaternions(model, qpos, conv, source_file)
        do_qvel = derive_qvel and "qvel" not in arrays
        do_ee = bool(sites) and "ee_pos" not in arrays
        for key, asked, done in (("qvel", derive_qvel, do_qvel), ("ee_pos", bool(sites), do_ee)):
            if asked and not done:
                prov[key] = "recorded"
        if new_dt is not None or do_qvel:
            dt = require_dt(dt, "--resample-dt" if new_dt is not None else "--derive-qvel",
                            source_file)
        if new_dt is not None:
            arrays = _resample_arrays(model, arrays, dt, new_dt, conv, source_file)
            prov.update(resampled_from_dt=float(dt), resample=(
                "qpos: mj_integratePos interpolation (slerp for quaternions); "
                "other per-frame arrays: linear"))
            if "qvel" in arrays and not do_qvel:
                prov["qvel"] = "recorded, linearly interpolated"
            dt = new_dt
        if do_qvel:
            if arrays["qpos"].shape[0] < 2:
                raise ExportError(f"{source_file}: qpos has {arrays['qpos'].shape[0]} frame(s); "
                                  "deriving qvel needs >= 2.")
            arrays["qvel"] = qvel_from_qpos(model, arrays["qpos"], dt, conv)
            prov["qvel"] = QVEL_METHOD
        if do_ee:
            arrays["ee_pos"] = site_positions_mujoco(model, arrays["qpos"], sites, conv)
            prov.update(ee_pos="mj_kinematics site_xpos (world frame, m)", ee_sites=list(sites))
        return arrays, float(dt), prov

    return preprocess


def _check_quaternions(model, qpos: np.ndarray, conv: Convention, source_file: str) -> None:
    """MuJoCo silently treats a zero quaternion as identity: refuse norms off 1 by > 1e-2."""
    q = qpos_to_mujoco(model, qpos, conv)
    for j in np.flatnonzero(model.jnt_type <= int(mujoco.mjtJoint.mjJNT_BALL)):  # free, ball
        a = model.jnt_qposadr[j] + (3 if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE else 0)
        norm = np.linalg.norm(q[:, a:a + 4], axis=1)
        bad = np.flatnonzero(~(np.abs(norm - 1.0) <= 1e-2))
        if bad.size:
            raise ExportError(
                f"{source_file}: 'qpos' row {bad[0]} has a quaternion of norm {norm[bad[0]]:.4g} "
                f"in columns {a}:{a + 4} (joint {model.joint(j).name!r}); expected unit norm. "
                f"{bad.size} row(s) affected; fix or drop them before export.")


def _resample_arrays(model, arrays: dict, dt: float, new_dt: float, conv: Convention,
                     source_file: str) -> dict:
    length, out = arrays["qpos"].shape[0], {}
    for key, value in arrays.items():
        value = np.asarray(value)
        if key == "qpos":
            out[key] = resample_qpos(model, value, dt, new_dt, conv).astype(value.dtype)
        elif value.ndim == 0:
            out[key] = np.asarray(new_dt, dtype=value.dtype) if key == "dt" else value
        elif value.shape[0] == length:
            out[key] = resample_linear(value, dt, new_dt)
        else:
            raise ExportError(
                f"{source_file}: '{key}' has shape {value.shape}, not {length} rows like qpos, so "
                "it cannot be resampled; drop it, or pad it to one row per frame before export.")
    return out
