"""Base-state conventions of trajectory data: quaternion order and velocity frames.

Two conventions are common in trajectory optimization (see DESIGN.md, "Conventions"):

* **MuJoCo** free joint (MuJoCo docs, "Floating objects" / ``mjJNT_FREE``):
  ``qpos[0:7] = [p_world (3, m), quat (w, x, y, z)]``,
  ``qvel[0:6] = [v_world (3, m/s), omega_body (3, rad/s)]``.
* **Pinocchio / Crocoddyl** free-flyer (Pinocchio docs, ``JointModelFreeFlyer``):
  ``q[0:7] = [p_world (3, m), quat (x, y, z, w)]``,
  ``v[0:6] = [v_body (3, m/s), omega_body (3, rad/s)]``.

A store records the convention of each dataset source in its attrs; readers never guess it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from trajopt_loader.errors import ConventionError

__all__ = [
    "Convention",
    "MUJOCO",
    "PINOCCHIO",
    "NAMED",
    "NAMES",
    "QUAT_ORDERS",
    "FRAMES",
    "WXYZ_FROM_XYZW",
    "XYZW_FROM_WXYZ",
    "as_convention",
    "flag_table",
    "quat_as_xyzw",
    "qpos_base_from_mujoco",
    "qpos_base_to_mujoco",
    "qvel_base_from_mujoco",
    "qvel_base_to_mujoco",
    "reorder_quat",
]

QUAT_ORDERS = ("wxyz", "xyzw")
FRAMES = ("world", "body")


@dataclasses.dataclass(frozen=True)
class Convention:
    """How the floating base is stored in ``qpos`` / ``qvel``.

    Attributes:
      quat_order: ``"wxyz"`` (MuJoCo) or ``"xyzw"`` (Pinocchio/Crocoddyl, scipy) for ``qpos[3:7]``.
      lin_vel_frame: frame of the base linear velocity ``qvel[0:3]``: ``"world"`` or ``"body"``.
      ang_vel_frame: frame of the base angular velocity ``qvel[3:6]``: ``"world"`` or ``"body"``.

    Raises:
      ConventionError: if a field has a value outside ``QUAT_ORDERS`` / ``FRAMES``.
    """

    quat_order: str
    lin_vel_frame: str
    ang_vel_frame: str

    def __post_init__(self) -> None:
        if self.quat_order not in QUAT_ORDERS:
            raise ConventionError(
                f"quat_order={self.quat_order!r} is not one of {QUAT_ORDERS}; use 'wxyz' for "
                "MuJoCo data and 'xyzw' for Pinocchio/Crocoddyl data."
            )
        for name in ("lin_vel_frame", "ang_vel_frame"):
            value = getattr(self, name)
            if value not in FRAMES:
                raise ConventionError(
                    f"{name}={value!r} is not one of {FRAMES}; MuJoCo stores linear velocity in "
                    "'world' and angular velocity in 'body'; Pinocchio stores both in 'body'."
                )

    @property
    def name(self) -> str:
        """``"mujoco"``, ``"pinocchio"`` or ``"custom"``."""
        for key, conv in NAMED.items():
            if conv == self:
                return key
        return "custom"

    def to_attrs(self) -> dict[str, str]:
        """JSON-serializable dict stored in Zarr attrs."""
        return {
            "name": self.name,
            "quat_order": self.quat_order,
            "lin_vel_frame": self.lin_vel_frame,
            "ang_vel_frame": self.ang_vel_frame,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str = "store attrs") -> Convention:
        """Inverse of :meth:`to_attrs`.

        Raises:
          ConventionError: if a field is missing, naming ``where`` it was looked up.
        """
        try:
            return cls(attrs["quat_order"], attrs["lin_vel_frame"], attrs["ang_vel_frame"])
        except KeyError as e:
            raise ConventionError(
                f"{where} has no convention field {e.args[0]!r}; re-export the data with "
                "--convention mujoco|pinocchio."
            ) from None

    @classmethod
    def named(cls, name: str) -> Convention:
        """The convention called ``"mujoco"``, ``"pinocchio"`` or ``"crocoddyl"`` (an alias of
        ``"pinocchio"``), case-insensitive, surrounding whitespace ignored.

        Raises:
          ConventionError: for any other name (one line listing the valid names).
        """
        key = str(name).strip().lower()
        key = "pinocchio" if key == "crocoddyl" else key
        if key not in NAMED:
            raise ConventionError(
                f"convention {name!r} is unknown; expected one of {list(NAMES)} "
                "(case-insensitive), a trajopt_loader.Convention, or quat_order / lin_vel_frame / "
                "ang_vel_frame given explicitly."
            )
        return NAMED[key]


MUJOCO = Convention("wxyz", "world", "body")
PINOCCHIO = Convention("xyzw", "body", "body")
NAMED = {"mujoco": MUJOCO, "pinocchio": PINOCCHIO}
NAMES = ("mujoco", "pinocchio", "crocoddyl")  # accepted by as_convention (crocoddyl = pinocchio)


def as_convention(value, what: str = "convention") -> Convention:
    """``value`` as a :class:`Convention`: a Convention is returned as is, a name goes through
    :meth:`Convention.named` (``"mujoco"``, ``"pinocchio"``, ``"crocoddyl"``, case-insensitive).

    Raises:
      ConventionError: an unknown name (lists the valid ones), or a value of another type
        (named ``what``).
    """
    if isinstance(value, Convention):
        return value
    if isinstance(value, str):
        return Convention.named(value)
    raise ConventionError(
        f"{what}={value!r} is neither a Convention nor a name; expected one of "
        f"{list(NAMES)} or trajopt_loader.MUJOCO / PINOCCHIO."
    )


def flag_table(conventions) -> np.ndarray:
    """bool ``[n, 3]`` per convention: (quaternion is ``xyzw``, linear velocity is world-frame,
    angular velocity is world-frame); ``conventions``: one Convention / name or a sequence of
    them (``n = 0`` for an empty one). Raises ConventionError as :func:`as_convention`, or for a
    value that is neither a convention nor a sequence."""
    if isinstance(conventions, (Convention, str)):
        conventions = (conventions,)
    elif not hasattr(conventions, "__iter__"):
        as_convention(conventions, "conventions")  # raises: neither a convention nor a sequence
    convs = [as_convention(c, f"conventions[{i}]") for i, c in enumerate(conventions)]
    return np.array(
        [
            (c.quat_order == "xyzw", c.lin_vel_frame == "world", c.ang_vel_frame == "world")
            for c in convs
        ],
        dtype=bool,
    ).reshape(-1, 3)


XYZW_FROM_WXYZ = [1, 2, 3, 0]  # quat_xyzw = quat_wxyz[..., XYZW_FROM_WXYZ]
WXYZ_FROM_XYZW = [3, 0, 1, 2]  # quat_wxyz = quat_xyzw[..., WXYZ_FROM_XYZW]


def reorder_quat(quat, src: str, dst: str):
    """Quaternions ``quat [..., 4]`` in order ``src`` (``"wxyz"`` / ``"xyzw"``) as order ``dst``.

    Works on numpy and JAX arrays alike (fancy indexing of the last axis); returns ``quat``
    itself when the orders agree, else a reordered copy of the same dtype.
    Raises ConventionError for an order outside :data:`QUAT_ORDERS`."""
    for order in (src, dst):
        if order not in QUAT_ORDERS:
            raise ConventionError(f"quaternion order {order!r} is not one of {QUAT_ORDERS}.")
    if src == dst:
        return quat
    return quat[..., XYZW_FROM_WXYZ if dst == "xyzw" else WXYZ_FROM_XYZW]


def quat_as_xyzw(quat, is_xyzw, xp=np):
    """``quat [..., 4]`` as ``xyzw`` where bool ``is_xyzw`` (broadcast against ``quat[..., :1]``)
    is True, else read as ``wxyz`` and reordered; ``xp``: ``numpy`` or ``jax.numpy``.
    Per-env orders come from :func:`flag_table` column 0."""
    return xp.where(is_xyzw, quat, quat[..., XYZW_FROM_WXYZ])


def qpos_base_to_mujoco(qpos, convention: Convention) -> np.ndarray:
    """float64 copy of ``qpos [..., nq]`` with the base quaternion ``qpos[..., 3:7]`` reordered
    from ``convention.quat_order`` to MuJoCo's ``wxyz``; other entries unchanged. The caller
    checks the model has a floating base at ``qpos[0:7]``
    (:func:`trajopt_loader.kinematics.model.qpos_to_mujoco` does)."""
    q = np.array(qpos, dtype=np.float64)
    q[..., 3:7] = reorder_quat(q[..., 3:7], convention.quat_order, MUJOCO.quat_order)
    return q


def qpos_base_from_mujoco(qpos, convention: Convention) -> np.ndarray:
    """Inverse of :func:`qpos_base_to_mujoco`: base quaternion ``wxyz`` ->
    ``convention.quat_order``; float64 copy."""
    q = np.array(qpos, dtype=np.float64)
    q[..., 3:7] = reorder_quat(q[..., 3:7], MUJOCO.quat_order, convention.quat_order)
    return q


def _rotate_base_velocity(qvel, quat_wxyz, convention: Convention, to_mujoco: bool) -> np.ndarray:
    from scipy.spatial.transform import Rotation  # deferred: importing this module stays cheap

    v = np.array(qvel, dtype=np.float64)
    rot = Rotation.from_quat(np.asarray(quat_wxyz).reshape(-1, 4), scalar_first=True)
    flat = v.reshape(-1, v.shape[-1])
    if convention.lin_vel_frame == "body":  # v_body = R^T v_world
        flat[:, 0:3] = rot.apply(flat[:, 0:3], inverse=not to_mujoco)
    if convention.ang_vel_frame == "world":  # omega_world = R omega_body
        flat[:, 3:6] = rot.apply(flat[:, 3:6], inverse=to_mujoco)
    return flat.reshape(v.shape)


def qvel_base_from_mujoco(qvel, quat_wxyz, convention: Convention) -> np.ndarray:
    """MuJoCo base velocities ``qvel [..., nv]`` (``[v_world (m/s), omega_body (rad/s)]`` at
    ``qvel[..., 0:6]``) -> the frames of ``convention``: ``v_body = R^T v_world``,
    ``omega_world = R omega_body``, with ``R`` (body -> world) the base rotation of
    ``quat_wxyz [..., 4]`` at the same frames. Returns a float64 copy."""
    return _rotate_base_velocity(qvel, quat_wxyz, convention, to_mujoco=False)


def qvel_base_to_mujoco(qvel, quat_wxyz, convention: Convention) -> np.ndarray:
    """Inverse of :func:`qvel_base_from_mujoco`: ``convention`` -> MuJoCo ``[v_world,
    omega_body]``; float64 copy."""
    return _rotate_base_velocity(qvel, quat_wxyz, convention, to_mujoco=True)
