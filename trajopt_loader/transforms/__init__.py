"""grain MapTransforms of trajopt-loader: numpy, vectorized over envs."""

from trajopt_loader.transforms.cycles import ContinueCycles
from trajopt_loader.transforms.gather import GatherKeys, cast_dtype
from trajopt_loader.transforms.windows import WindowIndices, window_loops, window_steps

__all__ = ["ContinueCycles", "GatherKeys", "WindowIndices", "cast_dtype", "window_loops",
           "window_steps"]
