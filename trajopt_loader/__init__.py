"""trajopt-loader: trajectory-optimization data (qpos / qvel / action windows) from Zarr into JAX.

The public API is what ``__all__`` lists; everything else is internal.
"""

from trajopt_loader.conventions import MUJOCO, PINOCCHIO, Convention
from trajopt_loader.errors import (
    ConfigError,
    ConventionError,
    ExportError,
    MissingKeyError,
    ShardingError,
    StoreFormatError,
    StoreNotFoundError,
    TrajoptLoaderError,
    WindowIndexError,
)

__version__ = "0.1.0"

__all__ = [
    "Convention",
    "MUJOCO",
    "PINOCCHIO",
    "TrajoptLoaderError",
    "StoreNotFoundError",
    "StoreFormatError",
    "ExportError",
    "ConventionError",
    "MissingKeyError",
    "WindowIndexError",
    "ConfigError",
    "ShardingError",
]
