"""``trajopt-loader export ROOT OUT --source S ...``: export trajectory .npz files to a Zarr store.

Examples::

    trajopt-loader export /data/cassie/trajopt cassie.zarr --source cassie --convention mujoco \\
        --allow-missing qvel
    trajopt-loader export runs/ out.zarr --source digit --motion walk --quat-order xyzw \\
        --lin-vel-frame body --ang-vel-frame body --key qpos=arr_0 --key qvel=arr_1 --dt 0.01

The convention must be given (``--convention`` or all three of ``--quat-order``,
``--lin-vel-frame``, ``--ang-vel-frame``): it is recorded in the store and never guessed. So is
the time step: files without ``dt`` / ``time`` need ``--dt SECONDS``, or ``--dt unknown`` to record
their dt as unknown on purpose (it streams; resampling, qvel derivation and rate checks refuse it).
Errors print one line and exit with status 1 (``TRAJOPT_LOADER_TRACEBACK=1`` shows the
traceback). Exports of one local store run one after the other (``--lock-timeout``); a remote (URL)
store is written only with ``--single-writer``.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from trajopt_loader.commands.common import PROGRESS_HELP, define, progress_enabled
from trajopt_loader.conventions import Convention, as_convention
from trajopt_loader.errors import TrajoptLoaderError

_F = flags.FLAGS
USAGE = (
    "trajopt-loader export ROOT OUT --source NAME (--convention NAME | --quat-order Q "
    "--lin-vel-frame F --ang-vel-frame F) [flags]"
)
ARGUMENTS = (
    ("ROOT", "Folder of .npz files: ROOT/MOTION/*.npz (or ROOT/*.npz with --motion)."),
    ("OUT", "Zarr store to create or add to (local path or URL)."),
)
EXAMPLE = (
    "trajopt-loader export ../shared/data/cassie/trajopt cassie.zarr --source cassie "
    "--convention mujoco --allow-missing qvel"
)

define("string", "source", None, "Source group name (robot / dataset), e.g. cassie.")
define(
    "string",
    "motion",
    None,
    "Export only this motion: ROOT/MOTION/*.npz, or ROOT/*.npz "
    "named MOTION. Default: every subdirectory of ROOT holding .npz files.",
)
define("string", "convention", None, "mujoco | pinocchio (alias crocoddyl).")
define("string", "quat-order", None, "wxyz | xyzw (instead of --convention).")
define("string", "lin-vel-frame", None, "world | body (instead of --convention).")
define("string", "ang-vel-frame", None, "world | body (instead of --convention).")
define(
    "string",
    "dt",
    None,
    "Time step in seconds for files with no dt / uniform time, or "
    "'unknown' to record theirs as unknown (never guessed; without --dt such files fail).",
)
define("multi_string", "key", [], "NAME=ARRAY mapping for unnamed arrays, e.g. qpos=arr_0.")
define("integer", "max-trajs-per-motion", None, "Keep the first N files of each motion.")
define("bool", "overwrite", False, "Replace motions that already exist in the store.")
define("multi_string", "allow-missing", [], "Keys that may be absent, e.g. qvel.")
define(
    "string",
    "model",
    None,
    "MuJoCo model XML for --derive-qvel / --resample-dt / --ee-sites / --bodies "
    "preprocessing; its joint / body layout is recorded.",
)
define("bool", "derive-qvel", False, "Compute qvel from qpos with the model (needs --model).")
define("float", "resample-dt", None, "Resample trajectories to this dt in s (needs --model).")
define(
    "list",
    "ee-sites",
    [],
    "Model sites whose world positions are stored as ee_pos (needs --model).",
)
define(
    "string",
    "bodies",
    None,
    "Bodies whose world pose and velocity are stored as body_pos, body_quat (wxyz), "
    "body_lin_vel, body_ang_vel: 'all' or NAME,NAME (needs --model).",
)
define("bool", "progress", None, PROGRESS_HELP)
define(
    "float",
    "lock-timeout",
    600.0,
    "Seconds to wait for another export of the same local "
    "store to finish (exports of one store run one after the other).",
)
define(
    "bool",
    "single-writer",
    False,
    "Allow writing a remote (URL) store: you guarantee no "
    "other export writes it at the same time (remote stores have no lock).",
)


define(
    "string",
    "chunk-key-separator",
    "/",
    "Zarr chunk keys: '/' (zarr's default, qpos/c/0/0) or '.' (qpos/c.0.0: no directories "
    "below each array, for libraries of many small clips). Both read the same.",
)


class _UsageError(TrajoptLoaderError, ValueError):
    pass


def _convention() -> Convention:
    parts = [_F["quat-order"].value, _F["lin-vel-frame"].value, _F["ang-vel-frame"].value]
    if _F.convention and any(parts):
        raise _UsageError(
            "give either --convention or --quat-order/--lin-vel-frame/--ang-vel-frame, not both."
        )
    if _F.convention:
        return as_convention(_F.convention)
    if not all(parts):
        raise _UsageError(
            "the base convention is not given; pass --convention mujoco|pinocchio, "
            "or all of --quat-order wxyz|xyzw --lin-vel-frame world|body "
            "--ang-vel-frame world|body (it is recorded, never guessed)."
        )
    return Convention(*parts)


def _dt() -> float | str | None:
    """``--dt``: seconds, ``unknown`` (``store.time_step.UNKNOWN_DT``), or None (files have one)."""
    from trajopt_loader.store.time_step import UNKNOWN_DT

    value = _F.dt
    if value is None or value.strip().lower() == UNKNOWN_DT:
        return None if value is None else UNKNOWN_DT
    try:
        return float(value)
    except ValueError:
        raise _UsageError(
            f"--dt {value!r} is not a time step in seconds (e.g. --dt 0.02) or {UNKNOWN_DT!r}."
        ) from None


def _key_map() -> dict[str, str]:
    out = {}
    for item in _F.key:
        name, sep, array = item.partition("=")
        if not sep or not name or not array:
            raise _UsageError(f"--key {item!r} is not NAME=ARRAY; e.g. --key qpos=arr_0.")
        if name in out:
            raise _UsageError(f"--key {name}= is given twice.")
        out[name] = array
    return out


def run(argv: list[str]) -> str:
    """Run the export for parsed flags and positional ``argv = [prog, ROOT, OUT]``.

    Returns:
      the printed summary text.
    Raises:
      TrajoptLoaderError: bad usage or input (nothing written).
    """
    if len(argv) != 3:
        raise _UsageError(
            f"expected ROOT and OUT positional arguments, got {argv[1:]}; usage: {USAGE}"
        )
    if not _F.source:
        raise _UsageError("--source NAME is required (e.g. --source cassie).")
    conv = _convention()
    allow_missing = list(_F["allow-missing"].value)
    preprocess = None
    model = _F.model
    wants_model = (
        _F["derive-qvel"].value or _F["resample-dt"].value or _F["ee-sites"].value or _F.bodies
    )
    if wants_model and not model:
        raise _UsageError(
            "--derive-qvel / --resample-dt / --ee-sites / --bodies need --model MODEL.xml."
        )
    if model:
        from trajopt_loader.kinematics import make_export_preprocess

        preprocess = make_export_preprocess(
            model,
            convention=conv,
            derive_qvel=bool(_F["derive-qvel"].value),
            resample_dt=_F["resample-dt"].value,
            ee_sites=tuple(_F["ee-sites"].value),
            bodies=_F.bodies or (),
        )
        if _F["derive-qvel"].value and "qvel" not in allow_missing:
            allow_missing.append("qvel")
    from trajopt_loader.store.export import export_npz

    summary = export_npz(
        argv[1],
        argv[2],
        source=_F.source,
        motion=_F.motion,
        convention=conv,
        dt=_dt(),
        key_map=_key_map(),
        max_trajs_per_motion=_F["max-trajs-per-motion"].value,
        overwrite=_F.overwrite,
        allow_missing=tuple(allow_missing),
        preprocess=preprocess,
        progress=progress_enabled(_F.progress),
        lock_timeout=_F["lock-timeout"].value,
        single_writer=_F["single-writer"].value,
        chunk_key_separator=_F["chunk-key-separator"].value,
    )
    return str(summary)


def main(argv: list[str]) -> None:
    """absl entry point: prints the summary, or one error line and exits 1
    (``TRAJOPT_LOADER_TRACEBACK=1``: the traceback instead)."""
    try:
        print(run(argv))
    except TrajoptLoaderError as e:
        if os.environ.get("TRAJOPT_LOADER_TRACEBACK"):
            raise
        print(f"trajopt-loader export: error: {e}", file=sys.stderr)
        sys.exit(1)
