"""Small rotation helpers shared by references, continued cycles and plots: yaw wrap, planar
rotations, yaw-premultiplied quaternions and heading (yaw-only) frames. Angles in rad.

Each helper is written once; where JAX needs its own form, the ``jnp`` twin sits next to the
numpy one (:func:`heading_mats` / :func:`heading_mats_jax`) or takes ``xp``
(:func:`wrap_angle`). Quaternion orders are :mod:`trajopt_loader.conventions`'.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["heading_mats", "heading_mats_jax", "rot2", "wrap_angle", "yaw_pairs", "yaw_premultiply"]


def wrap_angle(angle, xp=np):
    """Float angles (rad, any shape) wrapped into ``(-pi, pi]``, same shape; ``xp``: ``numpy``
    or ``jax.numpy``."""
    return xp.pi - xp.mod(xp.pi - angle, 2 * xp.pi)


def rot2(x, y, cos, sin):
    """Rotate 2-D vectors ``(x, y)`` by the angle of ``(cos, sin)``; arrays broadcast."""
    return cos * x - sin * y, sin * x + cos * y


def yaw_pairs(x, y, z, w, cos_half, sin_half):
    """Components of ``qz (x) q`` for a pure-yaw ``qz`` of half angle ``(cos_half, sin_half)``."""
    x, y = rot2(x, y, cos_half, sin_half)
    w, z = rot2(w, z, cos_half, sin_half)
    return x, y, z, w


def yaw_premultiply(quat_xyzw: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Hamilton product ``qz(angle) (x) q`` with ``qz = (0, 0, sin(a/2), cos(a/2))`` (xyzw).

    A pure-yaw quaternion turns the pairs ``(x, y)`` and ``(w, z)`` of ``q`` each by ``a/2``
    (written out: ``x' = Cx - Sy, y' = Sx + Cy, z' = Cz + Sw, w' = Cw - Sz``); the same as
    ``(Rotation.from_euler("z", a) * Rotation.from_quat(q)).as_quat()`` without normalizing or
    canonicalizing (tests check it against scipy; scipy's composition took ~60 ms per 131k rows).

    Args:
      quat_xyzw: float ``[n, 4]`` quaternions (x, y, z, w). angle: float ``[n]`` yaw (rad).

    Returns:
      float ``[n, 4]`` (x, y, z, w).
    """
    return np.stack(yaw_pairs(*quat_xyzw.T, np.cos(angle / 2), np.sin(angle / 2)), axis=-1)


def heading_mats(yaw: np.ndarray) -> np.ndarray:
    """float64 ``[..., 3, 3]`` matrices ``H(yaw) = Rz(yaw)`` of float ``yaw [...]`` (rad)."""
    yaw = np.asarray(yaw, np.float64)
    return Rotation.from_euler("z", yaw.reshape(-1, 1)).as_matrix().reshape(yaw.shape + (3, 3))


def heading_mats_jax(yaw):
    """JAX twin of :func:`heading_mats`: ``[..., 3, 3]`` matrices ``Rz(yaw)`` of ``yaw [...]``
    (rad), in ``yaw``'s dtype (jittable)."""
    from jax.scipy.spatial.transform import Rotation as JaxRotation

    return JaxRotation.from_euler("z", yaw[..., None]).as_matrix()
