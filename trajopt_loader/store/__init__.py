"""Zarr storage of trajectories: export from ``.npz`` and cached reads.

``export_npz`` writes ``<store>/<source>/<motion>/traj{i}/{key}``; ``TrajectoryStore`` opens it,
lists trajectories in global order and gathers ``[E, W, ...]`` windows from a host cache.
"""

from trajopt_loader.store.export import ExportSummary, export_npz
from trajopt_loader.store.layout import TrajectoryInfo, natural_key
from trajopt_loader.store.reader import TrajectoryStore

__all__ = ["TrajectoryStore", "TrajectoryInfo", "export_npz", "ExportSummary", "natural_key"]
