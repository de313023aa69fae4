"""The arrays of an ``.npz`` archive, as ``np.load(path, allow_pickle=False)`` returns them, with
less Python per file.

An export of a motion library reads one small archive per clip, and ``np.load`` spent ~270-350 us
of Python on each of the benchmark's two-array clips (a file object per member, header reads in
small pieces), about as much as encoding and writing the clip. :func:`read_arrays` reads the file
in one call, lists it with :mod:`zipfile`, which checks each member's CRC-32 (and inflates
``np.savez_compressed`` members), and parses each ``.npy`` header with numpy's own
``numpy.lib.format`` functions: ~200 us (``benchmarks/README.md``, "Scale").

It reads the common case only: a file of at most ``MAX_BYTES`` (it holds the file, a member's
bytes and the member's array at once: ~2.5x the file at the peak, where ``np.load`` holds ~1x),
every member a ``.npy`` of format 1.0 or 2.0 with a dtype that holds no Python objects. For
anything else (a bigger file, a single ``.npy``, a damaged archive, object arrays, other members)
it returns None and the caller reads the file with ``np.load``, which returns the same arrays or
raises its own error (``store.validate`` names it). Pickles are never loaded.
"""

from __future__ import annotations

import io
import math
import threading
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

#: numpy parses a ``.npy`` header with ``ast.literal_eval``, which CPython 3.11 (seen on 3.11.7)
#: can fail from concurrent threads with ``SystemError: AST constructor recursion depth
#: mismatch``; an export reads files from a thread pool, so header parses take turns (they are
#: ~15 us of each file's ~200).
NPY_HEADER_LOCK = threading.Lock()

#: Largest file read here; bigger ones go to ``np.load`` (their per-file Python is negligible).
MAX_BYTES = 32 * 2**20

_HEADER_READERS = {
    (1, 0): npy_format.read_array_header_1_0,
    (2, 0): npy_format.read_array_header_2_0,
}


def _array(data: bytes) -> np.ndarray | None:
    """The array of one ``.npy`` member's bytes (a writable copy), or None."""
    fp = io.BytesIO(data)
    read_header = _HEADER_READERS.get(npy_format.read_magic(fp))
    if read_header is None:
        return None
    with NPY_HEADER_LOCK:
        shape, fortran_order, dtype = read_header(fp)
    if dtype.hasobject:
        return None
    count = math.prod(shape)
    if len(data) - fp.tell() != count * dtype.itemsize:
        return None
    flat = np.frombuffer(data, dtype, count, offset=fp.tell())
    if fortran_order:
        return flat.reshape(shape[::-1]).T.copy(order="F")
    return flat.reshape(shape).copy()


def read_arrays(path: str | Path) -> dict[str, np.ndarray] | None:
    """``{name: array}`` of the ``.npz`` archive ``path`` in its member order (the names and
    arrays ``np.load(path, allow_pickle=False)`` gives: shape, dtype, memory order and values),
    or None when the file is not that simple case (see the module docstring)."""
    try:
        path = Path(path)
        if path.stat().st_size > MAX_BYTES:
            return None
        raw = path.read_bytes()
        out = {}
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    return None
                a = _array(zf.read(info))
                if a is None:
                    return None
                out[info.filename[: -len(".npy")]] = a
        return out
    except Exception:  # noqa: BLE001 - np.load reads it again and raises its own error
        return None
