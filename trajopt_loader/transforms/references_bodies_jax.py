"""JAX twin of :func:`trajopt_loader.transforms.references_bodies.compute_body_references`,
usable inside ``jit``: the same ``ref_body_*`` keys (definitions in the table of
:mod:`trajopt_loader.transforms.references`), e.g. for the simulated robot's bodies from MJX
(``xpos``, ``xquat`` and the ``mj_objectVelocity`` quantities) to compare with the references.

Differences from numpy: nothing is raised from inside ``jit`` (a zero anchor quaternion gives NaN
outputs); the output dtype is the dtype of ``body_pos``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.scipy.spatial.transform import Rotation

from trajopt_loader.errors import ReferenceInputError
from trajopt_loader.geometry import heading_mats_jax, yaw_pairs

__all__ = ["compute_body_references_jax"]


@functools.partial(jax.jit, static_argnames=("anchor",))
def compute_body_references_jax(
    body_pos, body_quat, body_lin_vel, body_ang_vel, anchor: int, *, valid=None
) -> dict[str, jax.Array]:
    """The ``ref_body_*`` keys of ``[E, T, nb, ...]`` body states, jitted (``anchor`` static).

    Args:
      body_pos: float ``[E, T, nb, 3]`` (m, world). body_quat: float ``[E, T, nb, 4]`` wxyz
        (body -> world). body_lin_vel, body_ang_vel: float ``[E, T, nb, 3]`` world axes.
      anchor: index of the anchor body along ``nb``.
      valid: bool ``[E, T]`` or None (all valid); as in the numpy version.

    Returns:
      dict of ``BODY_REF_KEYS`` (``references_bodies``), shapes and frames as in numpy.

    Raises:
      ReferenceInputError: at trace time, for shape mismatches or ``anchor`` out of range.
    """
    n_env, n_t, nb = body_pos.shape[:3]
    shapes = [a.shape for a in (body_pos, body_quat, body_lin_vel, body_ang_vel)]
    if shapes != [(n_env, n_t, nb, w) for w in (3, 4, 3, 3)] or not 0 <= anchor < nb:
        raise ReferenceInputError(
            f"body states of shapes {shapes} with anchor {anchor}: expected [E, T, nb, 3], "
            "[E, T, nb, 4], [E, T, nb, 3] x 2 and 0 <= anchor < nb."
        )
    dtype = body_pos.dtype
    valid = jnp.ones((n_env, n_t), bool) if valid is None else valid.astype(bool)
    last = jax.lax.cummax(jnp.where(valid, jnp.arange(n_t), -1), axis=1)
    src = jnp.where(last < 0, jnp.argmax(valid, axis=1)[:, None], last)[:, :, None, None]
    pos, quat, lin, ang = (
        jnp.take_along_axis(a.astype(dtype), src, axis=1)
        for a in (body_pos, body_quat, body_lin_vel, body_ang_vel)
    )
    empty = ~valid.any(axis=1)
    quat = jnp.where(empty[:, None, None, None], jnp.array([1, 0, 0, 0], dtype), quat)
    q_a = quat[:, :, anchor]
    psi = Rotation.from_quat(q_a[..., jnp.array([1, 2, 3, 0])]).as_euler("ZYX")[..., 0]
    heading = heading_mats_jax(psi)  # [E, T, 3, 3]
    to_heading = functools.partial(jnp.einsum, "etji,etbj->etbi", heading)
    half = -psi[..., None] / 2
    x, y, z, w = yaw_pairs(
        quat[..., 1], quat[..., 2], quat[..., 3], quat[..., 0], jnp.cos(half), jnp.sin(half)
    )
    refs = {
        "ref_body_pos": pos,
        "ref_body_quat": quat,
        "ref_body_lin_vel": lin,
        "ref_body_ang_vel": ang,
        "ref_body_heading_pos": to_heading(pos - pos[:, :, anchor, None]),
        "ref_body_heading_quat": jnp.stack([w, x, y, z], axis=-1),
        "ref_body_heading_lin_vel": to_heading(lin),
        "ref_body_heading_ang_vel": to_heading(ang),
    }
    return {k: jnp.where(empty[:, None, None, None], 0, v).astype(dtype) for k, v in refs.items()}
