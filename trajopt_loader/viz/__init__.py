"""Pictures of the data: trajectory plots, streamed-batch plots and MuJoCo-rendered motion.

* :func:`~trajopt_loader.viz.trajectory.plot_trajectories` -- base path, height, roll/pitch/yaw,
  joint positions / velocities, ``inspect`` flags and optionally ``ref_*`` signals over time.
* :func:`~trajopt_loader.viz.batch.plot_batch` -- one streamed batch: per env, trajectory, steps
  read, ``valid``, ``loop`` seams and ``episode_start``.
* :func:`~trajopt_loader.viz.render.render_frames` / :func:`~trajopt_loader.viz.render.write_video`
  -- the motion rendered offscreen by MuJoCo (tracking camera, side-by-side, ghost) to MP4 / GIF.

These need the optional packages of ``pip install 'trajopt-loader[viz]'`` (matplotlib, imageio,
imageio-ffmpeg, Pillow) and, for rendering, a headless OpenGL library (:mod:`.render`). Neither
``import trajopt_loader`` nor ``import trajopt_loader.viz`` imports them.
"""

from __future__ import annotations

import importlib

from trajopt_loader.errors import VizDependencyError

VIZ_INSTALL = "pip install 'trajopt-loader[viz]'"


def require(module: str, purpose: str):
    """Import and return ``module``; raise :class:`VizDependencyError` naming the install command.

    Raises:
      VizDependencyError: ``module`` is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise VizDependencyError(
            f"{purpose} needs the Python package {module.split('.')[0]!r}, "
            f"which is not installed ({e}); install it with: {VIZ_INSTALL}"
        ) from None


def new_figure(width: float, height: float):
    """A ``matplotlib.figure.Figure`` (``width`` x ``height`` inches) not tied to pyplot's state.

    Raises:
      VizDependencyError: matplotlib is not installed.
    """
    figure = require("matplotlib.figure", "plotting")
    return figure.Figure(figsize=(width, height), layout="constrained")


_LAZY = {
    "plot_trajectories": "trajectory",
    "trajectory_view": "data",
    "plot_batch": "batch",
    "batch_at": "batch",
    "render_frames": "render",
    "write_video": "render",
    "GLBackendError": "render",
}


def __getattr__(name: str):
    """The picture functions, imported on first use (``render`` sets ``MUJOCO_GL`` on import)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'trajopt_loader.viz' has no attribute {name!r}")
    return getattr(importlib.import_module(f"trajopt_loader.viz.{_LAZY[name]}"), name)


__all__ = ["VIZ_INSTALL", "VizDependencyError", "require", "new_figure", *_LAZY]
