"""A trajectory's time step at export: the dt rule, and dt recorded as unknown.

* The ``dt`` scalar of the file wins; else a uniform ``time`` column (spacing equal within
  ``DT_RTOL``); else the ``dt`` argument. A ``dt`` argument that disagrees with the file is an
  error; no dt at all is an error, unless the argument is :data:`UNKNOWN_DT` (the predecessor's
  API, CLI ``--dt unknown``): then the dt is recorded as unknown, never guessed.
* Unknown dt has one representation in Python, ``float("nan")`` (test it with
  :func:`dt_known`); the store index records it as JSON ``null`` (:func:`index_dt`). Whatever
  needs a time step calls :func:`require_dt`, which refuses unknown dt naming the fix.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.errors import ExportError

__all__ = [
    "DT_FIX",
    "DT_RTOL",
    "UNKNOWN_DT",
    "dt_known",
    "index_dt",
    "require_dt",
    "resolve_dt",
    "unknown_dt_warning",
]

DT_RTOL = 1e-3
#: ``dt`` argument value: files without ``dt`` / ``time`` get an unknown dt (NaN) instead of an
#: error.
UNKNOWN_DT = "unknown"
#: How a user sets the time step of data exported with unknown dt (every refusal says it).
DT_FIX = (
    "re-export with the time step: TrajoptLoader(...).save(..., dt=SECONDS) / "
    "export_npz(..., dt=SECONDS) / trajopt-loader export ... --dt SECONDS --overwrite"
)


def dt_known(dt) -> bool:
    """True for a finite time step > 0 (s); False for unknown (NaN / None)."""
    return dt is not None and bool(np.isfinite(dt)) and dt > 0


def index_dt(dt: float) -> float | None:
    """The store index's JSON value of ``dt`` (s): the float, or ``None`` when unknown."""
    return float(dt) if dt_known(dt) else None


def require_dt(dt, needed_for: str, where: str, error: type[Exception] = ExportError) -> float:
    """``dt`` (s) as a float when known; else raise ``error`` naming ``where`` (a file or
    trajectory), what needs the time step, and the fix (:data:`DT_FIX`)."""
    if dt_known(dt):
        return float(dt)
    raise error(
        f"{where}: dt is unknown (the file had no 'dt' and no 'time', and none was "
        f"given), but {needed_for} needs a time step; it is never guessed. Fix: {DT_FIX}."
    )


def unknown_dt_warning(files: list[str]) -> str:
    """The one warning of an export that recorded ``files`` with unknown dt.

    ``files`` are ``motion/file.npz`` names.
    """
    listed = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return (
        f"{len(files)} trajectories ({listed}) have no 'dt' and no 'time': their dt is recorded "
        "as unknown (store.dts is NaN). They stream, but deriving qvel, resampling, rate checks "
        f"and velocity inspection need it: {DT_FIX}."
    )


def resolve_dt(file: str, arrays: dict, file_dt, dt_arg, warnings: list) -> float:
    """The time step (s) of one file by the rule above; NaN when recorded as unknown.

    Args:
      file: name for messages. arrays: the file's arrays (its ``time`` column is read).
      file_dt: the file's ``dt`` scalar or None. dt_arg: ``export_npz(dt=...)``: seconds,
        :data:`UNKNOWN_DT`, or None. warnings: list a 'time' vs 'dt' disagreement is added to.

    Raises:
      ExportError: non-uniform ``time`` without ``dt``; a bad ``dt``; a disagreeing argument;
        no time step at all (names the fixes).
    """
    time_dt = None
    t = arrays.get("time")
    if t is not None and t.ndim == 1 and t.shape[0] >= 2 and t.dtype.kind in "iuf":
        d = np.diff(t.astype(np.float64))
        mean = float(d.mean())
        uniform = mean > 0 and float(np.abs(d - mean).max()) <= DT_RTOL * mean
        if file_dt is None and not uniform:
            i = int(np.argmax(np.abs(d - mean)))
            raise ExportError.for_input(
                file,
                "time",
                f"is not uniformly spaced (step {i}->{i + 1} is {d[i]:.6g} s, mean {mean:.6g} s)",
                f"equal steps within {DT_RTOL:g} relative",
                "pass dt= / --dt if the rows are equally spaced, or resample "
                "(--model ... --resample-dt S)",
            )
        time_dt = mean if uniform else None
    if file_dt is not None:
        if not (np.isfinite(file_dt) and file_dt > 0):
            raise ExportError.for_input(
                file,
                "dt",
                f"is {file_dt}",
                "a positive time step in seconds",
                "fix the dt array or pass --dt",
            )
        if time_dt is not None and abs(time_dt - file_dt) > DT_RTOL * file_dt:
            warnings.append(
                f"{file}: 'time' spacing {time_dt:.6g} s differs from 'dt' "
                f"{file_dt:.6g} s; using 'dt'"
            )
    found = file_dt if file_dt is not None else time_dt
    if isinstance(dt_arg, str) and dt_arg.lower() == UNKNOWN_DT:
        return float("nan") if found is None else float(found)
    if dt_arg is not None:
        if isinstance(dt_arg, str) or not (np.isfinite(dt_arg) and dt_arg > 0):
            raise ExportError(
                f"dt={dt_arg!r} (export_npz(dt=...) / --dt) is not a positive "
                "time step in seconds; pass the trajectories' step, e.g. --dt 0.02 "
                f"(or {UNKNOWN_DT!r} to record files without one as unknown)."
            )
        if found is not None and abs(found - dt_arg) > DT_RTOL * found:
            key = "dt" if file_dt is not None else "time"
            raise ExportError.for_input(
                file,
                key,
                f"gives dt={found:.6g} s but dt={dt_arg:.6g} s was passed",
                "agreement within 0.1%",
                "drop the dt argument or fix the file",
            )
        return float(dt_arg)
    if found is None:
        raise ExportError.for_input(
            file,
            None,
            "has no 'dt' scalar and no uniform 'time' array",
            "a known time step",
            "pass dt=SECONDS (CLI --dt SECONDS); it is never guessed. "
            f"To export without one, record it as unknown: dt={UNKNOWN_DT!r} "
            f"(CLI --dt {UNKNOWN_DT})",
        )
    return float(found)
