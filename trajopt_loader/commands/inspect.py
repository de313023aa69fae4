"""``trajopt-loader inspect STORE [--model MODEL.xml]``: print a store's tree and data checks.

Shows sources (with conventions), motions, trajectories (file, length, dt, scalars, padding),
keys with row shapes, dtypes and min / max / mean, and flags frozen recordings (count of distinct
rows) and velocities inconsistent with ``qpos`` and dt (see :mod:`trajopt_loader.store.inspect`).
``--model`` gives the joint addresses for the velocity check when the base layout alone does not.
Errors print one line and exit with status 1. Reads are checked (a missing or damaged chunk is an
error); ``trajopt-loader verify STORE`` checks every chunk and lists all problems.
"""

from __future__ import annotations

import sys

from absl import flags

from trajopt_loader.commands.common import define
from trajopt_loader.errors import TrajoptLoaderError

_F = flags.FLAGS
USAGE = "trajopt-loader inspect STORE [--model MODEL.xml] [--max-trajs N]"
ARGUMENTS = (("STORE", "Zarr store written by trajopt-loader export (local path or URL)."),)
EXAMPLE = "trajopt-loader inspect cassie.zarr --model ../shared/data/cassie/cassie.xml"

define("string", "model", None, "MuJoCo model XML: hinge/slide addresses for the qvel check.")
define("integer", "max-trajs", 30, "List at most this many unflagged trajectories per motion.")


def run(argv: list[str]) -> str:
    """Inspect the store ``argv[1]`` with the parsed flags; returns the report text.

    Raises:
      TrajoptLoaderError: bad usage, missing store or not a trajopt-loader store.
    """
    from trajopt_loader.store.inspect import format_report, inspect_store
    from trajopt_loader.store.reader import TrajectoryStore

    if len(argv) != 2:
        raise TrajoptLoaderError(f"expected one STORE argument, got {argv[1:]}; usage: {USAGE}")
    report = inspect_store(TrajectoryStore(argv[1], cache_bytes=0), model_path=_F.model)
    return format_report(report, max_trajs=_F["max-trajs"].value)


def main(argv: list[str]) -> None:
    """absl entry point: prints the report, or one error line and exits 1."""
    try:
        print(run(argv))
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
    except (TrajoptLoaderError, OSError, ValueError) as e:
        print(f"trajopt-loader inspect: error: {e}", file=sys.stderr)
        sys.exit(1)
