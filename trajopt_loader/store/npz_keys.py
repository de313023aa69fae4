"""The named arrays of one export input file: read (:mod:`.npz_read`, else ``np.load``, never
with pickle), renamed by the export's key mapping, each problem one ``ExportError`` line naming
the file, the key, what was expected and the fix. The rules on the arrays themselves are
:mod:`trajopt_loader.store.validate`'s.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from trajopt_loader.errors import ExportError
from trajopt_loader.store import npz_read

_UNNAMED = re.compile(r"^arr_\d+$")
_err = ExportError.for_input


def read_named(path: Path, key_map: Mapping[str, str]) -> dict[str, np.ndarray]:
    """``{key: array}`` of the ``.npz`` file ``path`` in its member order, members renamed by
    ``key_map`` ``{key: member}`` (``store.validate``'s rules on names).

    Raises:
      ExportError: the file is not a readable ``.npz`` archive, a member is damaged or needs
        pickle, a mapping names a missing member or would rename ``qpos`` / ``qvel``, or unnamed
        members (``arr_0``...) are not mapped.
    """
    name = path.name
    arrays = npz_read.read_arrays(path)
    if arrays is not None:
        return _named(name, list(arrays), key_map, arrays.__getitem__)
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, OSError, EOFError, ValueError (pickle)
        raise _err(
            name,
            None,
            f"cannot be read as .npz ({type(e).__name__}: {e})",
            "a numpy .npz archive saved with np.savez / np.savez_compressed",
            "re-save the file with np.savez(path, qpos=..., qvel=..., ...)",
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _err(
            name,
            None,
            "is a single .npy array, not an .npz archive",
            "a .npz archive of named arrays",
            "save with np.savez(path, qpos=..., qvel=...)",
        )
    with npz:
        return _named(name, list(npz.files), key_map, lambda k: _member(npz, name, k))


def _member(npz, name: str, k: str) -> np.ndarray:
    """Array ``k`` of the ``np.load`` archive ``npz`` of file ``name``."""
    try:
        with npz_read.NPY_HEADER_LOCK:  # see NPY_HEADER_LOCK
            return npz[k]
    except ValueError as e:
        if "allow_pickle" not in str(e):  # e.g. "EOF: reading array data": the array is cut
            raise _err(
                name, k, f"is corrupt ({e})", "a readable array", "re-export the file"
            ) from None
        # "Object arrays cannot be loaded when allow_pickle=False"
        raise _err(
            name,
            k,
            f"needs pickle to load ({e})",
            "a plain numeric array (pickle is never enabled)",
            f"re-save {k!r} as a numeric array (np.asarray(x, dtype=np.float64))",
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise _err(
            name,
            k,
            f"is corrupt ({type(e).__name__}: {e})",
            "a readable array",
            "re-export the file",
        ) from None


def _named(name: str, files: list, key_map: Mapping[str, str], read) -> dict[str, np.ndarray]:
    """``{key: read(member)}`` of the archive members ``files`` of file ``name``, renamed by
    ``key_map`` ``{key: member}`` (checked: see the module docstring)."""
    for dst, src in key_map.items():
        if src not in files:
            raise _err(
                name,
                src,
                f"is not in the file (mapping {dst}={src}); it has {files}",
                "an existing key",
                f"use --key {dst}=<one of {files}>",
            )
        if src in ("qpos", "qvel") and dst != src and src not in key_map:
            raise _err(
                name,
                src,
                f"would be renamed to {dst!r} by the mapping {dst}={src}",
                f"{src!r} to keep its name (the mapping gives the target name first)",
                f"drop --key {dst}={src}, or write --key {src}=<array name>",
            )
        if dst != src and dst in files and dst not in key_map.values():
            raise _err(
                name,
                dst,
                f"exists and is also mapped from {src!r}",
                "one array per name",
                f"drop --key {dst}={src}",
            )
    rename = {src: dst for dst, src in key_map.items()}
    unnamed = [k for k in files if _UNNAMED.match(k) and k not in rename]
    if unnamed:
        shapes = ", ".join(unnamed)
        # strict=False: hint names for the first (up to) three unnamed arrays only.
        names = ("qpos", "qvel", "action")
        hint = " ".join(f"--key {n}={k}" for n, k in zip(names, unnamed, strict=False))
        raise _err(
            name,
            unnamed[0],
            f"unnamed arrays ({shapes}) cannot be guessed",
            "named arrays or a key mapping",
            f"pass key_map={{'qpos': 'arr_0', ...}} / e.g. {hint}",
        )
    return {rename.get(k, k): read(k) for k in files}
