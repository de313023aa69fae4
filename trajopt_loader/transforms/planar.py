"""Planar algebra of continued cycles: the per-trajectory transform ``Delta`` and its
closed-form powers ``Delta^c`` (2-D rotations and yaw-premultiplied quaternions:
:mod:`trajopt_loader.geometry`).

The definitions (frames used, extrapolated frame ``L``, closed form) are in the docstring of
:mod:`trajopt_loader.transforms.cycles`, which applies them to batches. Angles in rad,
positions in m; 2-D vectors as pairs of arrays or as complex numbers ``x + i y``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from trajopt_loader.conventions import quat_as_xyzw
from trajopt_loader.errors import ConventionError
from trajopt_loader.geometry import wrap_angle, yaw_premultiply


def cycle_delta(first, prev, last, xyzw: np.ndarray, names=None):
    """Per-trajectory ``Delta`` (:mod:`~trajopt_loader.transforms.cycles`): frame 0's planar pose
    onto frame ``L``, extrapolated from frames ``L-2 -> L-1``.

    Args:
      first, prev, last: float ``[n, 7]`` base qpos ``(x, y, z, quaternion)`` of frames ``0``,
        ``L-2`` and ``L-1`` (``prev = last`` for a one-frame clip: no advance); quaternion in
        xyzw order where bool ``xyzw [n]`` is True, else wxyz. names: ``[n]`` trajectory names
        for errors.

    Returns:
      ``(theta [n] rad in (-pi, pi], disp [n] complex (d_x + i d_y, m), flip [n] bool)``.

    Raises:
      ConventionError: a base quaternion that is not finite or not of unit norm (±1e-2): the
        data has no floating base at ``qpos[0:7]`` or a wrong convention.
    """
    quats = []
    for frame, rows in (("0", first), ("L-2", prev), ("L-1", last)):
        q = quat_as_xyzw(rows[:, 3:7], xyzw[:, None])
        norm = np.linalg.norm(q, axis=-1)
        bad = np.flatnonzero(~(np.abs(norm - 1.0) <= 1e-2))
        if bad.size:
            i = int(bad[0])
            name = names[i] if names is not None else f"row {i}"
            raise ConventionError(
                f"trajectory {name}, frame {frame}: qpos[3:7] = {rows[i, 3:7].tolist()} has norm "
                f"{norm[i]:.6g}, not a unit base quaternion ({'xyzw' if xyzw[i] else 'wxyz'}, the "
                "source's convention). Continuing cycles (config.cyclic, on by default) needs a "
                "floating base at qpos[0:7]: pass --config.cyclic=False for fixed-base data, or "
                "re-export the source with the right --convention."
            )
        quats.append(q)
    psi0, psi_prev, psi1 = (Rotation.from_quat(q).as_euler("ZYX")[:, 0] for q in quats)
    dpsi = wrap_angle(psi1 - psi_prev)
    theta = wrap_angle(psi1 + dpsi - psi0)
    xy0, xy_prev, xy1 = (r[:, 0] + 1j * r[:, 1] for r in (first, prev, last))
    disp = xy1 + np.exp(1j * dpsi) * (xy1 - xy_prev) - np.exp(1j * theta) * xy0
    flip = np.einsum("ni,ni->n", yaw_premultiply(quats[0], theta), quats[2]) < 0
    return theta, disp, flip


def cycle_power(theta, disp, flip, loops):
    """``Delta^c`` in closed form (:mod:`~trajopt_loader.transforms.cycles`) for every row.

    Args:
      theta: float ``[n]`` rad; disp: complex ``[n]`` m; flip: bool ``[n]``; loops: int ``[n]``
        ``c >= 0``.

    Returns:
      ``(angle [n] = c theta (rad), trans [n] complex t_c (m), sign [n] +1/-1 quaternion sign)``.
    """
    c = np.asarray(loops, np.float64)
    angle = c * theta
    half = np.sin(theta / 2)
    small = np.abs(theta) < 1e-12
    ratio = np.where(small, c, np.sin(angle / 2) / np.where(small, 1.0, half))
    trans = disp * np.exp(0.5j * (c - 1) * theta) * ratio
    sign = np.where(flip & (np.asarray(loops) % 2 == 1), -1.0, 1.0)
    return angle, trans, sign
