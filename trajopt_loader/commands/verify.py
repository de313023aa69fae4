"""``trajopt-loader verify STORE``: read every chunk of a store and check it against its index.

Prints one line per problem (missing, damaged or swapped chunk; array missing or of another
shape / dtype than the index says; a directory the index does not list) and a last one-line
verdict; exits 1 when there is any problem or the store cannot be opened, 0 when it is sound
(see :mod:`trajopt_loader.store.verify`).
"""

from __future__ import annotations

import sys

from absl import flags

from trajopt_loader.commands.common import define
from trajopt_loader.errors import TrajoptLoaderError

_F = flags.FLAGS
USAGE = "trajopt-loader verify STORE [--remote-timeout-s X] [--remote-retries N]"
ARGUMENTS = (("STORE", "Zarr store to check (local path or URL)."),)
EXAMPLE = "trajopt-loader verify cassie.zarr"

# the names and meanings of the config fields remote_timeout_s / remote_retries
define(
    "float",
    "remote-timeout-s",
    30.0,
    "http(s) stores: seconds to wait to connect and between bytes of a response.",
)
define("integer", "remote-retries", 2, "Remote stores: retries of a failed request.")


def run(argv: list[str]):
    """Verify the store ``argv[1]``; returns the :class:`VerifyReport`.

    Raises:
      TrajoptLoaderError: bad usage; the store cannot be opened (missing, malformed index).
    """
    from trajopt_loader.store.verify import verify_store

    if len(argv) != 2:
        raise TrajoptLoaderError(f"expected one STORE argument, got {argv[1:]}; usage: {USAGE}")
    return verify_store(
        argv[1], timeout_s=_F["remote-timeout-s"].value, retries=_F["remote-retries"].value
    )


def main(argv: list[str]) -> None:
    """absl entry point: prints problems and the verdict; exit 1 on any problem or error."""
    try:
        report = run(argv)
    except (TrajoptLoaderError, OSError, ValueError) as e:
        print(f"trajopt-loader verify: error: {e}", file=sys.stderr)
        sys.exit(1)
    print("\n".join(report.lines()))
    sys.exit(0 if report.ok else 1)
