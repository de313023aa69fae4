"""``trajopt-loader plot STORE [--traj ID|PATH ...] [--refs] -o OUT.png|svg|pdf``: trajectory plot.

Draws base path from above with heading arrows, base height, roll/pitch/yaw, actuated joint
positions and velocities over time, ``inspect``'s flags shaded on the time axis, and with
``--refs`` every ``ref_*`` signal (:func:`trajopt_loader.viz.trajectory.plot_trajectories`).
``--traj`` takes a traj_id or a ``source/motion/trajN`` path and may be repeated (default 0).
Works on remote stores (URLs). Needs ``pip install 'trajopt-loader[viz]'``. Errors print one line
and exit with status 1.
"""

from __future__ import annotations

import os

from absl import flags

from trajopt_loader.commands.common import define
from trajopt_loader.errors import TrajoptLoaderError

_F = flags.FLAGS
FIGURE_EXTENSIONS = (".png", ".svg", ".pdf")
USAGE = "trajopt-loader plot STORE [--traj ID|PATH ...] [--refs] -o OUT.png|svg|pdf"
ARGUMENTS = (("STORE", "Zarr store written by trajopt-loader export (local path or URL)."),)
EXAMPLE = "trajopt-loader plot cassie.zarr --traj 0 --traj cassie/aslip_walk/traj10 -o plot.png"


define("multi_string", "traj", None, "Trajectory: traj_id or source/motion/trajN (repeatable).")
define("bool", "refs", False, "Also plot the ref_* reference signals (needs qvel).")
define(
    "string",
    "output",
    None,
    "Output file (.png/.svg/.pdf for plots; .mp4/.gif/.png for render).",
    short_name="o",
)
define("string", "model", None, "MuJoCo model XML (joint names / addresses; render: the robot).")
define(
    "string",
    "robot",
    None,
    "Robot name (cassie, digit_v3, digit_v3_thirdarm) when the source is not named after it.",
)
define("integer", "dpi", 100, "Raster resolution of PNG output (dots per inch).")


class UsageError(TrajoptLoaderError, ValueError):
    """Bad arguments of a plotting / rendering command."""


def traj_arg(value: str):
    """A ``--traj`` value: an int traj_id, or a ``source/motion/trajN`` path string."""
    return int(value) if value.lstrip("-").isdigit() else value


def output_path(extensions: tuple[str, ...], usage: str) -> str:
    """``-o`` checked against ``extensions`` (before any work is done)."""
    out = _F.output
    if not out or os.path.splitext(out)[1].lower() not in extensions:
        raise UsageError(
            f"-o {out!r}: expected an output file ending in one of {extensions}; usage: {usage}"
        )
    return out


def run(argv: list[str]) -> str:
    """Plot ``argv[1]`` with the parsed flags; returns the path written.

    Raises:
      TrajoptLoaderError: bad usage, store / trajectory / key errors, missing matplotlib.
    """
    from trajopt_loader.store.reader import TrajectoryStore
    from trajopt_loader.viz.trajectory import plot_trajectories

    usage = USAGE
    if len(argv) != 2:
        raise UsageError(f"expected one STORE argument, got {argv[1:]}; usage: {usage}")
    out = output_path(FIGURE_EXTENSIONS, usage)
    store = TrajectoryStore(argv[1], cache_bytes=0)
    trajs = [traj_arg(t) for t in (_F.traj or ["0"])]
    fig = plot_trajectories(store, trajs, refs=_F.refs, model_path=_F.model, robot=_F.robot)
    fig.savefig(out, dpi=_F.dpi)
    return out


def main(argv: list[str]) -> None:
    """absl entry point: writes the figure and prints its path."""
    print(f"wrote {run(argv)}")
