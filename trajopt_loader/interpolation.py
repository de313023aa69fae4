"""Sampling stored frames at another time step: the time grid, linear and spherical interpolation.

One rule, used by export resampling (:func:`trajopt_loader.kinematics.derive.resample_grid`) and by
streaming at a control rate (:mod:`trajopt_loader.transforms.interpolate`): sample ``k`` of a
trajectory of ``T`` frames spaced ``dt`` (s) at a new time step ``new_dt`` (s) is at time
``k * new_dt``, i.e. at fractional frame ``s = k * new_dt / dt``; it lies between frames
``i = floor(s)`` and ``i + 1`` at ``alpha = s - i`` in ``[0, 1)``. A time within :data:`GRID_EPS`
frames of a stored frame is that frame (``alpha = 0``), so a grid that lands on stored frames
reads them bit for bit. The grid has ``floor((T - 1) * dt / new_dt) + 1`` samples
(:func:`grid_lengths`): the last one is at or before the last stored frame, never extrapolated.

Interpolation between frames ``i`` and ``i + 1``: :func:`lerp` (``a + alpha (b - a)``) for
positions and velocities of scalar joints and any other floating key, :func:`slerp` (shortest arc)
for unit quaternions. Both return ``a`` exactly where ``alpha == 0``. numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GRID_EPS", "grid_lengths", "grid_positions", "lerp", "slerp"]

#: Tolerance, in frames, for a grid time falling on a stored frame (float rounding of
#: k * new_dt / dt).
GRID_EPS = 1e-9
_SMALL_ANGLE = 1e-6  # sin(theta) below this: slerp weights -> linear weights (error < 1e-12)
_SMALL_ANGLE_F32 = 1e-3  # the same for float32 math (error < 1e-7, float32's resolution)


def grid_lengths(lengths, dt, new_dt) -> np.ndarray:
    """Samples of the new grid per trajectory, int64 ``[n]``: ``floor((T - 1) dt / new_dt) + 1``.

    Args:
      lengths: int ``[n]`` stored frames ``T`` (>= 1). dt: float ``[n]`` (or scalar) stored time
        step (s, finite, > 0). new_dt: float scalar (s, finite, > 0).
    The caller checks that ``dt`` and ``new_dt`` are finite and positive.
    """
    span = (np.asarray(lengths, np.int64) - 1) * np.asarray(dt, np.float64) / float(new_dt)
    return np.floor(span + GRID_EPS).astype(np.int64) + 1


def grid_positions(steps, dt, new_dt, lengths) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored frames around grid samples ``steps`` (module docstring).

    Args:
      steps: int ``[E, W]`` (or ``[T']``) sample indices, each ``< grid_lengths(lengths, dt,
        new_dt)``.
      dt: float ``[E]`` (or scalar) stored time step of each row's trajectory (s).
      new_dt: float scalar (s). lengths: int ``[E]`` (or scalar) stored frames ``T`` of each row.
    Returns:
      ``(i, j, alpha)``: int64 frames ``i`` and ``j = min(i + 1, T - 1)`` and float64 ``alpha`` in
      ``[0, 1)``, each shaped like ``steps``; ``alpha == 0`` at stored frames and at ``i = T - 1``.
    """
    steps = np.asarray(steps, np.int64)
    extra = (slice(None),) + (None,) * (steps.ndim - 1)
    ratio = float(new_dt) / np.asarray(dt, np.float64)
    last = np.asarray(lengths, np.int64) - 1
    if ratio.ndim:
        ratio, last = ratio[extra], last[extra]
    s = steps * ratio
    i = np.minimum(np.floor(s + GRID_EPS).astype(np.int64), last)
    alpha = s - i
    alpha[(alpha < GRID_EPS) | (i == last)] = 0.0
    return i, np.minimum(i + 1, last), alpha


def lerp(
    a: np.ndarray, b: np.ndarray, alpha: np.ndarray, *, overwrite_b: bool = False
) -> np.ndarray:
    """``a + alpha (b - a)`` in ``a``'s floating dtype; ``a`` itself where ``alpha == 0``.

    Args: a, b: ``[E, W, ...]`` values at frames ``i``, ``i + 1``. alpha: float ``[E, W]``.
      overwrite_b: compute in place in ``b`` (same dtype and shape as ``a``) and return it,
        saving an allocation; else a new array.
    """
    weight = alpha.astype(a.dtype, copy=False).reshape(alpha.shape + (1,) * (a.ndim - alpha.ndim))
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows: copied below if exact
        out = np.subtract(b, a, out=b if overwrite_b else None)
        out *= weight
        out += a
    exact = alpha == 0
    if exact.any():  # bit for bit (signed zeros, non-finite neighbours)
        np.copyto(out, a, where=exact.reshape(weight.shape))
    return out


def slerp(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions along the shortest arc, ``[..., 4]``.

    ``q0 (q0^-1 q1)^alpha`` with ``q1`` taken in ``q0``'s hemisphere (``q1`` and ``-q1`` are one
    rotation), i.e. ``(sin((1 - alpha) theta) q0 + sin(alpha theta) q1') / sin(theta)`` with
    ``cos(theta) = |q0 . q1|``: the rotation of ``mj_integratePos(q0, alpha *
    mj_differentiatePos(q0, q1))``. Order-free: the same for ``wxyz`` and ``xyzw`` components.
    Inputs are normalized first (as MuJoCo does), so results between frames are unit norm to
    rounding; where ``alpha == 0`` the result is ``q0`` exactly, as stored. float32 inputs are
    interpolated in float32 (half the memory traffic; the weights' error from a float32
    ``arccos`` near 1 is of order ``theta^2`` x 1e-7 relative), anything else in float64.

    Args: q0, q1: ``[..., 4]`` quaternions at frames ``i``, ``i + 1``. alpha: float ``[...]``
      (broadcast against ``q0[..., 0]``).
    """
    # component-major [4, ...] copies: every operation runs along the long axes; the norms scale the
    # per-quaternion weights rather than the quaternions
    dtype = np.float32 if np.asarray(q0).dtype == np.float32 else np.float64
    raw = np.ascontiguousarray(np.moveaxis(np.asarray(q0), -1, 0), dtype=dtype)
    r = np.ascontiguousarray(np.moveaxis(np.asarray(q1), -1, 0), dtype=dtype)
    inv0 = 1 / np.sqrt((raw * raw).sum(axis=0))
    inv1 = 1 / np.sqrt((r * r).sum(axis=0))
    dot = (raw * r).sum(axis=0) * inv0 * inv1
    alpha = np.broadcast_to(np.asarray(alpha, dtype), dot.shape)
    theta = np.arccos(np.minimum(np.abs(dot), 1))
    sin = np.sin(theta)
    w0 = np.sin((1 - alpha) * theta)
    w1 = np.sin(alpha * theta)
    small = sin < (_SMALL_ANGLE if dtype == np.float64 else _SMALL_ANGLE_F32)
    if small.any():  # nearly equal rotations: the linear weights (then normalized)
        np.copyto(w0, 1 - alpha, where=small)
        np.copyto(w1, alpha, where=small)
        np.copyto(sin, 1, where=small)
    w0 *= inv0 / sin
    w1 *= np.copysign(inv1, dot) / sin  # q1 taken in q0's hemisphere
    out = w0 * raw
    out += w1 * r
    if small.any():
        out /= np.sqrt((out * out).sum(axis=0))
    exact = alpha == 0
    if exact.any():
        np.copyto(out, raw, where=exact)
    return np.moveaxis(out, 0, -1)
