"""Zarr storage of trajectories: export from ``.npz``, cached reads, inspection.

``export_npz`` writes ``<store>/<source>/<motion>/traj{i}/{key}``; ``TrajectoryStore`` opens it,
lists trajectories in global order and gathers ``[E, W, ...]`` windows from a host cache;
``inspect_store`` reports lengths, dt, conventions, key statistics and data-quality flags.
"""

from trajopt_loader.store.export import export_npz
from trajopt_loader.store.inspect import (
    StoreReport,
    VelocityCheck,
    check_velocity_consistency,
    inspect_store,
)
from trajopt_loader.store.layout import TrajectoryInfo, natural_key
from trajopt_loader.store.reader import TrajectoryStore
from trajopt_loader.store.summary import ExportSummary
from trajopt_loader.store.verify import VerifyReport, verify_store

__all__ = [
    "TrajectoryStore",
    "TrajectoryInfo",
    "export_npz",
    "ExportSummary",
    "natural_key",
    "inspect_store",
    "StoreReport",
    "VelocityCheck",
    "check_velocity_consistency",
    "verify_store",
    "VerifyReport",
]
