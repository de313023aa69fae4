"""trajopt-loader: trajectory-optimization data (qpos / qvel / action windows) from Zarr into JAX.

``__all__`` lists the names a user needs (store, pipeline, checkpoints, conventions, robots,
references, the base error and the predecessor's six names); the rest lives in namespaces:
``trajopt_loader.store``, ``.pipeline``, ``.configs``, ``.conventions``, ``.robots``,
``.transforms``, ``.kinematics`` (MuJoCo), ``.errors`` (every error class), ``.compat`` and
``.viz``, each with its own ``__all__``. Names are imported lazily
(PEP 562 module ``__getattr__``), so ``import trajopt_loader`` stays cheap and loads JAX, grain or
MuJoCo only when a name that needs them is first used.

Data flow (DESIGN.md)::

    npz files --export_npz--> Zarr store --TrajectoryStore (host cache)--> make_dataset (grain:
    schedule -> WindowIndices -> GatherKeys -> BuildReferences) --device_iterator--> jitted step
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_NAMES = {
    # store: export, reading, inspection, verification
    "trajopt_loader.store.reader": ("TrajectoryStore",),
    "trajopt_loader.store.export": ("export_npz",),
    "trajopt_loader.store.inspect": ("inspect_store",),
    "trajopt_loader.store.verify": ("verify_store",),
    # pipeline: config, grain dataset, device prefetch, checkpoints, several processes
    "trajopt_loader.configs": ("load_config",),
    "trajopt_loader.pipeline.dataset": ("make_dataset",),
    "trajopt_loader.pipeline.device": ("device_iterator",),
    "trajopt_loader.pipeline.checkpoint": (
        "save_state",
        "load_state",
        "save_with_manager",
        "restore_with_manager",
    ),
    "trajopt_loader.pipeline.distributed": ("env_sharding", "maybe_initialize_distributed"),
    "trajopt_loader.pipeline.process_state": ("save_process_state", "restore_process_state"),
    # data conventions, robots, references
    "trajopt_loader.conventions": ("Convention", "MUJOCO", "PINOCCHIO", "as_convention"),
    "trajopt_loader.robots": ("RobotSpec", "get_spec", "spec_from_mjcf"),
    "trajopt_loader.transforms.references": ("compute_references",),
    "trajopt_loader.transforms.references_jax": ("compute_references_jax",),
    "trajopt_loader.transforms.references_transform": ("BuildReferences",),
    "trajopt_loader.errors": ("TrajoptLoaderError",),
    # the predecessor's names (README, "Code written for the predecessor's API")
    "trajopt_loader.compat": (
        "TrajoptLoader",
        "VectorizedTrajectoryDataset",
        "DoubleBufferStreamer",
        "DigitRefSpec",
        "build_refs_from_window",
        "DigitTrajoptRefBuilder",
    ),
}
#: Namespaces for the rest: each lists its names in ``__all__`` (the facade's names included).
NAMESPACES = (
    "trajopt_loader.store",
    "trajopt_loader.pipeline",
    "trajopt_loader.configs",
    "trajopt_loader.conventions",
    "trajopt_loader.robots",
    "trajopt_loader.transforms",
    "trajopt_loader.kinematics",
    "trajopt_loader.errors",
    "trajopt_loader.compat",
    "trajopt_loader.viz",
)
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
