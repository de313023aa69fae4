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
from typing import Any, Mapping

from trajopt_loader.errors import ConventionError

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
                "MuJoCo data and 'xyzw' for Pinocchio/Crocoddyl data.")
        for name in ("lin_vel_frame", "ang_vel_frame"):
            value = getattr(self, name)
            if value not in FRAMES:
                raise ConventionError(
                    f"{name}={value!r} is not one of {FRAMES}; MuJoCo stores linear velocity in "
                    "'world' and angular velocity in 'body'; Pinocchio stores both in 'body'.")

    @property
    def name(self) -> str:
        """``"mujoco"``, ``"pinocchio"`` or ``"custom"``."""
        for key, conv in NAMED.items():
            if conv == self:
                return key
        return "custom"

    def to_attrs(self) -> dict[str, str]:
        """JSON-serializable dict stored in Zarr attrs."""
        return {"name": self.name, "quat_order": self.quat_order,
                "lin_vel_frame": self.lin_vel_frame, "ang_vel_frame": self.ang_vel_frame}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str = "store attrs") -> "Convention":
        """Inverse of :meth:`to_attrs`.

        Raises:
          ConventionError: if a field is missing, naming ``where`` it was looked up.
        """
        try:
            return cls(attrs["quat_order"], attrs["lin_vel_frame"], attrs["ang_vel_frame"])
        except KeyError as e:
            raise ConventionError(
                f"{where} has no convention field {e.args[0]!r}; re-export the data with "
                "--convention mujoco|pinocchio.") from None

    @classmethod
    def named(cls, name: str) -> "Convention":
        """The convention called ``"mujoco"`` or ``"pinocchio"`` (``"crocoddyl"`` is an alias).

        Raises:
          ConventionError: for any other name.
        """
        key = "pinocchio" if name.lower() == "crocoddyl" else name.lower()
        if key not in NAMED:
            raise ConventionError(
                f"convention {name!r} is unknown; expected one of {sorted(NAMED)} (or 'crocoddyl'), "
                "or give quat_order / lin_vel_frame / ang_vel_frame explicitly.")
        return NAMED[key]


MUJOCO = Convention("wxyz", "world", "body")
PINOCCHIO = Convention("xyzw", "body", "body")
NAMED = {"mujoco": MUJOCO, "pinocchio": PINOCCHIO}
