"""Load and validate one trajectory ``.npz`` file for export (never with ``allow_pickle=True``).

Rules (each violation raises :class:`~trajopt_loader.errors.ExportError` naming the file, the key,
what is wrong, what was expected and the fix):

* ``qpos`` ``[T, nq]`` is required, ``T > 0``. ``qvel`` ``[T, nv]`` is required unless ``"qvel"``
  is in ``allow_missing``; it must have exactly ``T`` rows.
* Unnamed arrays ``arr_0, arr_1, ...`` (``np.savez(f, qpos, qvel)``) must be named with ``key_map``
  (``{"qpos": "arr_0"}``, CLI ``--key qpos=arr_0``); they are never guessed.
* Ragged keys: an array with exactly ``T - 1`` rows (one action per interval between ``T`` knots) is
  padded to ``T`` rows by repeating its last row and reported in ``padded``. ``action`` / ``ee_pos``
  with any other row count is an error; other arrays with another row count are skipped with a
  warning. 0-d arrays become scalars (``dt`` and ``true_length`` are interpreted, the rest kept).
* ``true_length`` (0-d integer): only the first ``true_length`` rows are real;
  ``0 < true_length <= T``.
* dt (s): the rule of :mod:`trajopt_loader.store.time_step` (the file's ``dt``, else a uniform
  ``time``, else the ``dt`` argument; never guessed, or recorded as unknown on request). (The
  Cassie ``agility_reference/traj_2.npz`` has irregular source timing and a ``dt`` key: the
  ``dt`` key is used.)
* Arrays must be numeric (bool / int / float of at most 64 bits: no float128); floats must be
  finite on the real rows. Keys are valid Zarr node names and differ ignoring case.

Unknown dt is ``float("nan")`` in ``LoadedTrajectory.dt``, ``TrajectoryInfo.dt`` and
``TrajectoryStore.dts[i]`` (:mod:`trajopt_loader.store.time_step`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from trajopt_loader.errors import ExportError
from trajopt_loader.store.layout import check_node_name, name_key
from trajopt_loader.store.npz_keys import read_named
from trajopt_loader.store.time_step import resolve_dt

STATE_KEYS = ("qpos", "qvel")
STRICT_KEYS = ("action", "ee_pos")


@dataclasses.dataclass
class LoadedTrajectory:
    """One validated trajectory: ``arrays[key]`` has shape ``[length, *row]``, input dtype kept."""

    source_file: str
    arrays: dict[str, np.ndarray]
    length: int
    dt: float  # s; NaN when unknown (see the module docstring)
    rows_in_file: int
    true_length: int | None = None
    scalars: dict = dataclasses.field(default_factory=dict)
    padded: dict = dataclasses.field(default_factory=dict)
    skipped: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    derived: dict = dataclasses.field(default_factory=dict)


_err = ExportError.for_input


def _check_dtype(file: str, key: str, a: np.ndarray) -> None:
    """Refuse dtypes a store cannot hold: non-numeric ones, and floats wider than 64 bits."""
    if a.dtype.kind not in "biuf":
        raise _err(
            file,
            key,
            f"has dtype {a.dtype} (shape {a.shape})",
            "a numeric array (bool, int or float)",
            f"convert {key!r} to a float array before export",
        )
    if a.dtype.kind == "f" and a.dtype.itemsize > 8:
        raise _err(
            file,
            key,
            f"has dtype {a.dtype} (shape {a.shape}), which Zarr cannot store",
            "float16, float32 or float64",
            f"convert {key!r} with .astype(np.float64) before export",
        )


def check_arrays(arrays: Mapping[str, np.ndarray], file: str, length: int) -> None:
    """Check every array is numeric, has ``length`` rows, and floats are finite.

    Raises:
      ExportError: naming ``file``, the key, and for a non-finite value its first row and column.
    """
    seen: dict[str, str] = {}
    for key, a in arrays.items():
        check_node_name(key, f"{file}: array key", ExportError)
        other = seen.setdefault(name_key(key), key)
        if other != key:
            raise _err(
                file,
                key,
                f"and {other!r} differ only in case or Unicode normalization",
                "array names that differ otherwise (they would share one directory on "
                "case-insensitive file systems)",
                f"rename or drop {key!r}",
            )
        _check_dtype(file, key, a)
        if a.ndim == 0 or a.shape[0] != length:
            raise _err(file, key, f"has shape {a.shape}", f"{length} rows", "fix the array length")
        if a.dtype.kind == "f":
            bad = ~np.isfinite(a)
            if bad.any():
                pos = np.argwhere(bad)[0]
                col = f", column {tuple(int(c) for c in pos[1:])}" if a.ndim > 1 else ""
                raise _err(
                    file,
                    key,
                    f"has a non-finite value {a[tuple(pos)]} at row {pos[0]}{col}",
                    "finite values",
                    f"clean or drop the recording (row {pos[0]} of {key!r})",
                )


def _scalar(a: np.ndarray):
    return a.item() if a.dtype.kind in "biuf" else None


def load_trajectory(
    path: Path,
    *,
    key_map: Mapping[str, str] | None = None,
    allow_missing=(),
    dt: float | str | None = None,
) -> LoadedTrajectory:
    """Load ``path`` and apply the rules of this module.

    ``dt``: time step (s) for files that carry none, or ``"unknown"``
    (:data:`~trajopt_loader.store.time_step.UNKNOWN_DT`) to record those as unknown
    (``LoadedTrajectory.dt`` NaN).

    Returns:
      a :class:`LoadedTrajectory` whose arrays all have ``length`` rows (``[T, ...]``, input
        dtypes).
    Raises:
      ExportError: for any rule violation (see the module docstring).
    """
    path = Path(path)
    file = path.name
    arrays = read_named(path, dict(key_map or {}))
    for key, a in arrays.items():
        _check_dtype(file, key, a)
    scalars = {k: _scalar(a) for k, a in arrays.items() if a.ndim == 0}
    arrays = {k: a for k, a in arrays.items() if a.ndim > 0}
    if "qpos" in allow_missing:
        raise ExportError("allow_missing may not contain 'qpos': every trajectory needs qpos.")
    for key in STATE_KEYS:
        if key not in arrays and key not in allow_missing:
            fix = "name it with key_map / --key qpos=NAME"
            if key == "qvel":
                fix = (
                    "pass allow_missing=('qvel',) / --allow-missing qvel to export without it, "
                    "or derive it: --model MODEL.xml --derive-qvel"
                )
            raise _err(
                file,
                key,
                f"is missing (keys: {sorted(arrays) + sorted(scalars)})",
                f"a [T, n] {key} array",
                fix,
            )
    qpos = arrays["qpos"]
    if qpos.ndim != 2:
        raise _err(file, "qpos", f"has shape {qpos.shape}", "[T, nq]", "reshape to 2-D")
    rows = qpos.shape[0]
    if rows == 0:
        raise _err(file, "qpos", "has 0 rows", "at least 1 time step", "drop the empty file")
    if "qvel" in arrays and (arrays["qvel"].ndim != 2 or arrays["qvel"].shape[0] != rows):
        raise _err(
            file,
            "qvel",
            f"has shape {arrays['qvel'].shape} but qpos has {rows} rows",
            f"[{rows}, nv]",
            "export qpos and qvel at the same time steps",
        )
    out, padded, skipped, warnings = {}, {}, [], []
    for key, a in arrays.items():
        if a.shape[0] == rows:
            out[key] = a
        elif a.shape[0] == rows - 1 and rows >= 2 and key not in STATE_KEYS:
            out[key] = np.concatenate([a, a[-1:]], axis=0)
            padded[key] = 1
        elif key in STRICT_KEYS:
            raise _err(
                file,
                key,
                f"has {a.shape[0]} rows but qpos has {rows}",
                f"{rows} rows, or {rows - 1} (one per interval; padded by repeating the last)",
                f"export {key!r} at the qpos time steps",
            )
        else:
            skipped.append(f"{file}: {key} {a.shape} skipped (qpos has {rows} rows)")
    true_length = scalars.pop("true_length", None)
    if true_length is not None:
        if float(true_length) != int(true_length) or not 0 < int(true_length) <= rows:
            raise _err(
                file,
                "true_length",
                f"is {true_length}",
                f"an integer in 1..{rows}",
                "fix true_length (the number of real rows)",
            )
        true_length = int(true_length)
        out = {k: a[:true_length] for k, a in out.items()}
    length = true_length or rows
    check_arrays(out, file, length)
    file_dt = scalars.pop("dt", None)
    dt_value = resolve_dt(file, out, None if file_dt is None else float(file_dt), dt, warnings)
    return LoadedTrajectory(
        file,
        {k: np.ascontiguousarray(a) for k, a in out.items()},
        length,
        dt_value,
        rows,
        true_length,
        scalars,
        padded,
        skipped,
        warnings,
    )
