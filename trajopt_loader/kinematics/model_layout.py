"""The model layout a store was exported with, and the check of a store against a model.

An export with a model (``--model``) records per source, in the store index
(``index["sources"][source]["model_layout"]``), the layout that gives ``qpos`` / ``qvel`` columns
and body rows their meaning (:func:`model_layout`)::

    {"nq": 35, "nv": 32, "nbody": 27,
     "joint_names": [...], "joint_types": ["slide", ..., "ball", "hinge", ...],
     "joint_qposadr": [...], "joint_dofadr": [...],
     "body_names": [...], "body_parents": [...],        # model order, world body first
     "fingerprint": "<sha256 hex of the fields above>"}

:func:`check_model_layout` compares a recorded layout with a model field by field, in the order
``nq, nv, nbody, body_names, body_parents, joint_names, joint_types, joint_qposadr,
joint_dofadr``, and raises :class:`~trajopt_loader.errors.ModelError` naming the first difference
(e.g. the same bodies in another order: every body target would land on the wrong body).
"""

from __future__ import annotations

import hashlib
import json
import os

import mujoco

from trajopt_loader.errors import ModelError
from trajopt_loader.kinematics.model import load_kinematics_model, model_name

__all__ = ["LAYOUT_FIELDS", "as_model", "check_model_layout", "model_layout"]

LAYOUT_FIELDS = (
    "nq",
    "nv",
    "nbody",
    "body_names",
    "body_parents",
    "joint_names",
    "joint_types",
    "joint_qposadr",
    "joint_dofadr",
)
_TYPES = {
    int(mujoco.mjtJoint.mjJNT_FREE): "free",
    int(mujoco.mjtJoint.mjJNT_BALL): "ball",
    int(mujoco.mjtJoint.mjJNT_SLIDE): "slide",
    int(mujoco.mjtJoint.mjJNT_HINGE): "hinge",
}


def model_layout(model: mujoco.MjModel) -> dict:
    """The JSON-serializable layout of ``model`` (module docstring): sizes, joint names / types /
    qpos and dof addresses, body names and parent ids in model order, and ``fingerprint``, the
    sha256 (hex) of those fields as sorted JSON."""
    out = {
        "nq": int(model.nq),
        "nv": int(model.nv),
        "nbody": int(model.nbody),
        "joint_names": [model.joint(j).name for j in range(model.njnt)],
        "joint_types": [_TYPES[int(t)] for t in model.jnt_type],
        "joint_qposadr": [int(a) for a in model.jnt_qposadr],
        "joint_dofadr": [int(a) for a in model.jnt_dofadr],
        "body_names": [model.body(b).name for b in range(model.nbody)],
        "body_parents": [int(p) for p in model.body_parentid],
    }
    out["fingerprint"] = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()
    return out


def as_model(model) -> mujoco.MjModel:
    """``model`` itself when it is a ``mujoco.MjModel``, else the kinematics model of the MJCF
    file at that path (ModelNotFoundError / ModelError as ``load_kinematics_model``)."""
    return model if isinstance(model, mujoco.MjModel) else load_kinematics_model(model)


def _first_difference(field: str, recorded, actual) -> str:
    if not isinstance(recorded, list):
        return f"{field} is {recorded} in the store but {actual} in the model"
    what = field.split("_", 1)[0]
    # the lengths may differ: compare the common prefix first, then report the extra entries
    for i, (a, b) in enumerate(zip(recorded, actual, strict=False)):
        if a != b:
            return f"{field}[{i}] ({what} {i}) is {a!r} in the store but {b!r} in the model"
    n = min(len(recorded), len(actual))
    longer = recorded if len(recorded) > n else actual
    return (
        f"{field} has {len(recorded)} entries in the store but {len(actual)} in the model "
        f"(first extra: {longer[n]!r})"
    )


def check_model_layout(
    recorded: dict, model, where: str = "the store", label: str | None = None
) -> None:
    """Refuse a ``model`` whose layout differs from the ``recorded`` one.

    Args:
      recorded: a layout recorded at export (:func:`model_layout`).
      model: a ``mujoco.MjModel`` or the path of its MJCF file.
      where: what recorded it, for the message (e.g. ``"source 'cassie' of out.zarr"``).
      label: how the message names the model (default: its path, or its MJCF model name).

    Raises:
      ModelError: one line naming the first differing field and index, both values, and the
        fix. ModelNotFoundError: no file at the path.
    """
    if label is None and isinstance(model, (str, os.PathLike)):
        label = f"model {os.fspath(model)!r}"
    model = as_model(model)
    label = label or f"model {model_name(model)!r}"
    actual = model_layout(model)
    if recorded.get("fingerprint") == actual["fingerprint"]:
        return
    for field in LAYOUT_FIELDS:
        if recorded.get(field) != actual[field]:
            raise ModelError(
                f"{where} was exported with another model layout than {label}: "
                f"{_first_difference(field, recorded.get(field), actual[field])}. Fix: use the "
                "model the data was exported with, or re-export the data with this model "
                "(trajopt-loader export ... --model MODEL.xml)."
            )
