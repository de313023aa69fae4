"""trajopt-loader: trajectory-optimization data (qpos / qvel / action windows) from Zarr into JAX.

The public API is what ``__all__`` lists; everything else is internal. Names are imported lazily
(PEP 562 module ``__getattr__``), so ``import trajopt_loader`` stays cheap and loads JAX, grain or
MuJoCo only when a name that needs them is first used.

Data flow (DESIGN.md)::

    npz files --export_npz--> Zarr store --TrajectoryStore (host cache)--> make_dataset (grain:
    schedule -> WindowIndices -> GatherKeys -> BuildReferences) --device_iterator--> jitted step
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_NAMES = {
    # store: layout, export, reading, inspection
    "trajopt_loader.store": ("TrajectoryStore", "TrajectoryInfo", "export_npz", "ExportSummary",
                             "inspect_store", "StoreReport", "VelocityCheck",
                             "check_velocity_consistency"),
    "trajopt_loader.conventions": ("Convention", "MUJOCO", "PINOCCHIO", "as_convention"),
    # pipeline: schedules + transforms in grain, device double buffering, checkpoints
    "trajopt_loader.pipeline.dataset": ("make_dataset",),
    "trajopt_loader.pipeline.time_step": ("check_uniform_dt",),
    "trajopt_loader.pipeline.stream_iterators": ("StreamDataset",),
    "trajopt_loader.pipeline.device": ("device_iterator", "DeviceIterator"),
    "trajopt_loader.pipeline.checkpoint": ("save_state", "load_state", "save_with_manager",
                                           "restore_with_manager"),
    "trajopt_loader.pipeline.distributed": ("env_sharding", "maybe_initialize_distributed",
                                            "process_env_range"),
    "trajopt_loader.pipeline.process_state": ("save_process_state", "restore_process_state"),
    "trajopt_loader.configs": ("load_config", "validate_config"),
    "trajopt_loader.transforms.windows": ("WindowIndices",),
    "trajopt_loader.transforms.gather": ("GatherKeys",),
    "trajopt_loader.transforms.cycles": ("ContinueCycles",),
    # robots and references
    "trajopt_loader.robots": ("RobotSpec", "spec_from_mjcf", "get_spec"),
    "trajopt_loader.transforms.references": ("compute_references",),
    "trajopt_loader.transforms.references_transform": ("BuildReferences",),
    "trajopt_loader.transforms.references_jax": ("compute_references_jax",),
    "trajopt_loader.transforms.references_config": ("reference_transforms",),
    "trajopt_loader.kinematics": ("load_kinematics_model", "qvel_from_qpos", "resample_qpos",
                                  "site_positions", "make_export_preprocess"),
    "trajopt_loader.transforms.end_effectors": ("EndEffectorPositions",),
    # the seed API names
    "trajopt_loader.compat": ("TrajoptLoader", "VectorizedTrajectoryDataset",
                              "DoubleBufferStreamer", "DigitRefSpec", "build_refs_from_window",
                              "DigitTrajoptRefBuilder"),
    # errors
    "trajopt_loader.errors": ("TrajoptLoaderError", "StoreNotFoundError", "StoreFormatError",
                              "ExportError", "ConventionError", "MissingKeyError",
                              "WindowIndexError", "ConfigError", "ShardingError",
                              "IndexOverflowError", "CheckpointError", "CheckpointNotFoundError",
                              "RobotSpecError", "ReferenceInputError", "ModelError",
                              "ModelNotFoundError", "EnvNotAssignedError"),
}
_MODULE_OF = {name: module for module, names in _NAMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'trajopt_loader' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
