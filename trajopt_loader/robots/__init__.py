"""Per-robot constants (index layouts, end-effector sites) and :func:`spec_from_mjcf`.

``get_spec("digit_v3" | "digit_v3_thirdarm" | "cassie", model_path=None)`` returns the
:class:`RobotSpec` of a known robot; ``spec_from_mjcf(model, ...)`` derives one from any MuJoCo
model with a floating base. Importing this package opens no file and does not import MuJoCo.
"""

from __future__ import annotations

import os

from trajopt_loader.errors import RobotSpecError
from trajopt_loader.robots import cassie, digit_v3, digit_v3_thirdarm
from trajopt_loader.robots.spec import RobotSpec, load_model, spec_from_mjcf

ROBOTS = {"digit_v3": digit_v3, "digit_v3_thirdarm": digit_v3_thirdarm, "cassie": cassie}


def get_spec(name: str, model_path: str | os.PathLike | None = None) -> RobotSpec:
    """The :class:`RobotSpec` of robot ``name`` with ``model_path`` set.

    Raises:
      RobotSpecError: if ``name`` is not one of :data:`ROBOTS`.
    """
    if name not in ROBOTS:
        raise RobotSpecError(
            f"robot {name!r} is unknown; expected one of {sorted(ROBOTS)}, or build "
            "a spec from a model with spec_from_mjcf(model_path, ee_sites=...)."
        )
    return ROBOTS[name].spec(model_path)


__all__ = [
    "RobotSpec",
    "spec_from_mjcf",
    "load_model",
    "get_spec",
    "ROBOTS",
    "digit_v3",
    "digit_v3_thirdarm",
    "cassie",
]
