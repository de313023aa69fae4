"""MuJoCo kinematics of trajectories: models, forward kinematics, derived velocities, export
preprocessing.

* :mod:`~trajopt_loader.kinematics.model` -- loading MJCF files (one error type), the
  kinematics-only copy, the floating base, ``qpos`` / ``qvel`` to and from MuJoCo's convention.
* :mod:`~trajopt_loader.kinematics.fk` -- world positions of sites (MJX and ``mj_kinematics``).
* :mod:`~trajopt_loader.kinematics.bodies` -- world poses and velocities of bodies (export).
* :mod:`~trajopt_loader.kinematics.model_layout` -- the joint / body layout recorded at export
  and the check of a store against a model.
* :mod:`~trajopt_loader.kinematics.derive` -- ``qvel`` from ``qpos``, resampling on the manifold.
* :mod:`~trajopt_loader.kinematics.preprocess` -- the ``preprocess`` hook of ``export_npz``.

The grain transform adding ``ee_pos`` to batches is
:class:`trajopt_loader.transforms.end_effectors.EndEffectorPositions`. Importing this package
imports MuJoCo (``import trajopt_loader`` does not).
"""

from trajopt_loader.kinematics.bodies import body_names_of, body_states
from trajopt_loader.kinematics.derive import (
    QVEL_METHOD,
    qvel_from_qpos,
    resample_grid,
    resample_linear,
    resample_qpos,
)
from trajopt_loader.kinematics.fk import site_ids, site_positions, site_positions_mujoco
from trajopt_loader.kinematics.model import (
    floating_base,
    has_floating_base,
    kinematics_copy,
    load_kinematics_model,
    load_model,
    needs_base_conversion,
    qpos_from_mujoco,
    qpos_to_mujoco,
    quaternion_qpos_addresses,
    qvel_from_mujoco,
    qvel_to_mujoco,
    simulation_copy,
)
from trajopt_loader.kinematics.model_layout import check_model_layout, model_layout
from trajopt_loader.kinematics.preprocess import make_export_preprocess

__all__ = [
    "QVEL_METHOD",
    "body_names_of",
    "body_states",
    "check_model_layout",
    "floating_base",
    "has_floating_base",
    "kinematics_copy",
    "load_kinematics_model",
    "load_model",
    "make_export_preprocess",
    "model_layout",
    "needs_base_conversion",
    "qpos_from_mujoco",
    "qpos_to_mujoco",
    "quaternion_qpos_addresses",
    "qvel_from_mujoco",
    "qvel_from_qpos",
    "qvel_to_mujoco",
    "resample_grid",
    "resample_linear",
    "resample_qpos",
    "site_ids",
    "simulation_copy",
    "site_positions",
    "site_positions_mujoco",
]
