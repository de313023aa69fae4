"""grain MapTransforms of trajopt-loader: numpy, vectorized over envs.

``WindowIndices`` (schedule element -> step / loop / valid indices), ``GatherKeys`` (indices ->
arrays from the store), ``EpisodeOrigin`` (the state at each env's episode first step),
``ContinueCycles`` (base continued across wraps), ``BuildReferences``
(``ref_*`` arrays) and ``EndEffectorPositions`` (``ee_pos`` by forward kinematics, MuJoCo).
``BuildReferences`` and ``EndEffectorPositions`` are imported on first use (SciPy / MuJoCo).
"""

import importlib

from trajopt_loader.transforms.cycles import ContinueCycles
from trajopt_loader.transforms.gather import GatherKeys
from trajopt_loader.transforms.origin import EpisodeOrigin
from trajopt_loader.transforms.windows import WindowIndices, window_loops, window_steps

_LAZY = {"BuildReferences": "trajopt_loader.transforms.references_transform",
         "EndEffectorPositions": "trajopt_loader.transforms.end_effectors"}

__all__ = ["BuildReferences", "ContinueCycles", "EndEffectorPositions", "EpisodeOrigin", "GatherKeys",
           "WindowIndices", "window_loops", "window_steps"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'trajopt_loader.transforms' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
