"""Grain pipeline of trajopt-loader: schedules (sources), dataset builder, device prefetch,
iterator checkpoints, several processes.

Names are imported on first use (grain, JAX); ``trajopt_loader.pipeline.schedules`` and the other
modules import as usual.
"""

import importlib

_NAMES = {
    "trajopt_loader.pipeline.dataset": ("make_dataset",),
    "trajopt_loader.pipeline.device": ("device_iterator", "DeviceIterator"),
    "trajopt_loader.pipeline.checkpoint": (
        "save_state",
        "load_state",
        "save_with_manager",
        "restore_with_manager",
    ),
    "trajopt_loader.pipeline.distributed": (
        "env_sharding",
        "maybe_initialize_distributed",
        "process_env_range",
    ),
    "trajopt_loader.pipeline.process_state": ("save_process_state", "restore_process_state"),
    "trajopt_loader.pipeline.time_step": ("check_uniform_dt",),
    "trajopt_loader.pipeline.feedback": ("FailureFeedback",),
}
_MODULE_OF = {name: module for module, names in _NAMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name == "schedules":
        return importlib.import_module("trajopt_loader.pipeline.schedules")
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'trajopt_loader.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)
