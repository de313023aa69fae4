"""``trajopt-loader render STORE --model MODEL.xml -o OUT.mp4|gif|png``: the motion, rendered.

MuJoCo's offscreen renderer draws each ``--traj`` (repeatable; side by side) with a camera that
follows the base, at real speed (``--fps`` frames per second of motion time); ``--ghost KEY`` adds
a second qpos-like key as a transparent robot. ``.png`` writes one frame (``--frame``, default the
middle one). Needs ``pip install 'trajopt-loader[viz]'`` and a headless OpenGL library
(``apt-get install -y libegl1 libopengl0 libegl-mesa0 libgl1-mesa-dri``; see
:mod:`trajopt_loader.viz.render`). Errors print one line and exit with status 1.
"""

from __future__ import annotations

from absl import flags

from trajopt_loader.commands.common import define, uses
from trajopt_loader.commands.plot import UsageError, output_path, traj_arg

_F = flags.FLAGS
VIDEO_EXTENSIONS = (".mp4", ".gif", ".png")
USAGE = "trajopt-loader render STORE --model MODEL.xml [--traj ID ...] -o OUT.mp4|gif|png"
ARGUMENTS = (("STORE", "Zarr store written by trajopt-loader export (local path or URL)."),)
EXAMPLE = (
    "trajopt-loader render cassie.zarr --model ../shared/data/cassie/cassie.xml --traj 0 "
    "-o walk.mp4"
)

uses("traj", "output", "model")
define("string", "ghost", None, "Second qpos-like key drawn as a transparent ghost.")
define("integer", "width", 320, "Width of each panel in pixels (even).")
define("integer", "height", 240, "Height in pixels (even).")
define("float", "fps", 30.0, "Frames per second of motion time (playback is real speed).")
define("integer", "max-frames", None, "Render at most this many frames.")
define("integer", "frame", None, "For .png output: the frame to write (default: the middle one).")
define("float", "distance", 3.0, "Camera distance from the base (m).")


def run(argv: list[str]) -> str:
    """Render ``argv[1]`` with the parsed flags; returns the path written.

    Raises:
      TrajoptLoaderError: bad usage, missing model, missing GL library, store / key errors.
    """
    usage = USAGE
    if len(argv) != 2:
        raise UsageError(f"expected one STORE argument, got {argv[1:]}; usage: {usage}")
    if not _F.model:
        raise UsageError(f"--model is required (the robot's MJCF .xml); usage: {usage}")
    out = output_path(VIDEO_EXTENSIONS, usage)
    if _F.width % 2 or _F.height % 2 or _F.width < 2 or _F.height < 2:
        raise UsageError(
            f"--width {_F.width} / --height {_F.height}: expected even sizes >= 2 "
            "(H.264 needs them)."
        )
    from trajopt_loader.store.reader import TrajectoryStore
    from trajopt_loader.viz.render import render_frames, write_video  # sets MUJOCO_GL first

    store = TrajectoryStore(argv[1], cache_bytes=0)
    frames = render_frames(
        store,
        [traj_arg(t) for t in (_F.traj or ["0"])],
        _F.model,
        ghost_key=_F.ghost,
        width=_F.width,
        height=_F.height,
        fps=_F.fps,
        max_frames=_F["max-frames"].value,
        distance=_F.distance,
    )
    if _F.frame is not None and not 0 <= _F.frame < len(frames):
        raise UsageError(
            f"--frame {_F.frame}: expected 0 <= frame < {len(frames)} (frames rendered)."
        )
    write_video(frames, out, _F.fps, frame=_F.frame)
    return out


def main(argv: list[str]) -> None:
    """absl entry point: writes the video / frame and prints its path."""
    print(f"wrote {run(argv)}")
