"""Heading-frame reference keys (opt-in, ``heading_frame_keys=True``): base and end-effector
positions and the base orientation seen from a heading (yaw-only) frame, so they do not depend on
the direction the data happens to face in the world.

Definitions (notation of :mod:`trajopt_loader.transforms.references`, whose docstring table is
the one definition of every key): ``ref_base_heading_pos = H(psi_w)^T (p_t - p_w)``,
``ref_base_heading_trans = H(psi_o)^T (p_t - p_o)``, ``ref_base_heading_ori = (roll_t, pitch_t,
wrap(yaw_t - psi_o))``, ``ref_ee_heading_pos = H(psi_o)^T (x_k,t - p_t)``. ``H(psi_o)^T R_t =
Rz(yaw_t - psi_o) Ry(pitch_t) Rx(roll_t)`` exactly, so removing a heading changes only the yaw.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.geometry import heading_mats, wrap_angle

HEADING_REF_KEYS = ("ref_base_heading_pos", "ref_base_heading_trans", "ref_base_heading_ori")
HEADING_EE_REF_KEYS = ("ref_ee_heading_pos",)


def to_heading(heading: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """``H^T vec``: vectors ``vec [E, T, ..., 3]`` expressed in heading frames ``heading``, one per
    env ``[E, 3, 3]`` or per step ``[E, T, 3, 3]``. Returns float64 of ``vec``'s shape."""
    heading = heading if heading.ndim == 4 else heading[:, None]
    heading = np.broadcast_to(heading, vec.shape[:2] + (3, 3))
    return np.einsum("etji,et...j->et...i", heading, vec, optimize=True)


def heading_references(
    pos: np.ndarray,
    ypr: np.ndarray,
    origin_pos: np.ndarray,
    origin_yaw: np.ndarray,
    ee_rel: np.ndarray | None = None,
) -> dict:
    """The heading-frame ``ref_*`` keys (module docstring), float64.

    Args:
      pos: float ``[E, T, 3]`` base positions ``p_t`` (m, world).
      ypr: float ``[E, T, 3]`` ``(yaw, pitch, roll)`` of ``R_t`` (rad, intrinsic ZYX).
      origin_pos: float ``[E, 3]`` ``p_o`` (m). origin_yaw: float ``[E]`` ``psi_o`` (rad).
      ee_rel: float ``[E, T, n_ee, 3]`` ``x_k,t - p_t`` (m, world axes), or None (no ee key).

    Returns:
      dict of ``HEADING_REF_KEYS`` (``[E, T, 3]``) and, with ``ee_rel``, ``HEADING_EE_REF_KEYS``
      (``[E, T, n_ee, 3]``).
    """
    h_o, h_w = heading_mats(origin_yaw), heading_mats(ypr[:, 0, 0])  # [E, 3, 3] each
    refs = {
        "ref_base_heading_pos": to_heading(h_w, pos - pos[:, :1]),
        "ref_base_heading_trans": to_heading(h_o, pos - origin_pos[:, None]),
        "ref_base_heading_ori": np.stack(
            [ypr[..., 2], ypr[..., 1], wrap_angle(ypr[..., 0] - origin_yaw[:, None])], axis=-1
        ),
    }
    if ee_rel is not None:
        refs["ref_ee_heading_pos"] = to_heading(h_o, ee_rel)
    return refs
