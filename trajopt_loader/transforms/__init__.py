"""grain MapTransforms of trajopt-loader: numpy, vectorized over envs.

``WindowIndices`` (schedule element -> step / loop / valid indices), ``GatherKeys`` (indices ->
arrays from the store), ``InterpolateKeys`` (control steps -> arrays interpolated from the stored
frames, ``config.control_dt``), ``EpisodeOrigin`` (the state at each env's episode first
step), ``ContinueCycles`` (base continued across wraps), ``BuildReferences``
(``ref_*`` arrays), ``BuildBodyReferences`` (``ref_body_*`` from exported body states) and
``EndEffectorPositions`` (``ee_pos`` by forward kinematics, MuJoCo). The references
(``BuildReferences``, ``BuildBodyReferences``, ``compute_references``, ``compute_references_jax``,
``reference_transforms``) and ``EndEffectorPositions`` are imported on first use (SciPy, JAX,
MuJoCo).
"""

import importlib

from trajopt_loader.transforms.cycles import ContinueCycles
from trajopt_loader.transforms.gather import GatherKeys
from trajopt_loader.transforms.interpolate import InterpolateKeys, control_lengths
from trajopt_loader.transforms.origin import EpisodeOrigin
from trajopt_loader.transforms.windows import WindowIndices, window_loops, window_steps

_LAZY = {
    "BuildReferences": "trajopt_loader.transforms.references_transform",
    "BuildBodyReferences": "trajopt_loader.transforms.references_bodies",
    "EndEffectorPositions": "trajopt_loader.transforms.end_effectors",
    "compute_references": "trajopt_loader.transforms.references",
    "compute_references_jax": "trajopt_loader.transforms.references_jax",
    "reference_transforms": "trajopt_loader.transforms.references_config",
}

__all__ = [
    "BuildBodyReferences",
    "BuildReferences",
    "ContinueCycles",
    "EndEffectorPositions",
    "EpisodeOrigin",
    "GatherKeys",
    "InterpolateKeys",
    "WindowIndices",
    "compute_references",
    "compute_references_jax",
    "control_lengths",
    "reference_transforms",
    "window_loops",
    "window_steps",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'trajopt_loader.transforms' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
