"""Checked chunk reads: a read returns the stored rows or raises ``DataIntegrityError``.

zarr returns fill values for a chunk that is absent (deleted file, HTTP 404), and without a
checksum decodes damaged bytes into other numbers. Every row read of a
:class:`~trajopt_loader.store.reader.TrajectoryStore` goes through :func:`read_rows`, which reads
whole stored chunks and, per chunk:

* format_version 2: compares the CRC-32C of the decoded rows with the one the index recorded at
  export (:func:`chunk_crc`). One pass catches a missing chunk (fill values), a chunk swapped with
  another trajectory's (valid bytes, wrong data) and damaged bytes the codec let through. On a
  mismatch the chunk's presence is looked up so the message says which of these it is.
* format_version 1 (no checksums): checks that the chunk exists in the store.

A decode failure (zarr's ``crc32c`` codec, Blosc) and an array whose shape or dtype differs from
the index are reported the same way. Messages name the store, trajectory, key, chunk (index,
rows and key in the store) and the fix. The host cache reads each key or chunk once, so the cost
is one CRC pass per cache load (~20 us per 512 KiB chunk), never one per batch.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.errors import DataIntegrityError, TrajoptLoaderError
from trajopt_loader.store.layout import TrajectoryInfo


def chunk_crc(rows: np.ndarray) -> int:
    """CRC-32C (Castagnoli) of ``rows``' bytes in C order, little-endian.

    Returns an unsigned 32-bit int.
    """
    import google_crc32c

    a = np.ascontiguousarray(rows)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return int(google_crc32c.value(a.reshape(-1).view(np.uint8)))


def chunk_crcs(a: np.ndarray, rows_per_chunk: int) -> list[int]:
    """:func:`chunk_crc` of each time-chunk ``a[i : i + rows_per_chunk]`` of ``a [T, ...]``."""
    n = int(rows_per_chunk)
    return [chunk_crc(a[i : i + n]) for i in range(0, a.shape[0], n)]


def fix_hint(store: str) -> str:
    """The fix named by every integrity error of ``store``."""
    return (
        f"Run `trajopt-loader verify {store}` to list every damaged chunk, then re-export the "
        "affected motions (`trajopt-loader export ... --overwrite`) or restore the store "
        "from a copy."
    )


def chunk_store_key(array, c: int) -> str:
    """Key of time-chunk ``c`` of ``array`` inside the store (e.g. ``src/mot/traj0/qpos/c/0/0``)."""
    return f"{array.path}/{array.metadata.encode_chunk_key((c,) + (0,) * (array.ndim - 1))}"


def chunk_present(array, c: int) -> bool:
    """Whether time-chunk ``c`` of ``array`` exists in its store (one lookup / HEAD request)."""
    from zarr.core.sync import sync

    return bool(sync(array.store_path.store.exists(chunk_store_key(array, c))))


def where(store: str, info: TrajectoryInfo, key: str, c: int, n: int, array=None) -> str:
    """``"<store>: trajectory <path> (traj_id i), key 'k', chunk c (rows [a, b), <chunk key>)"``."""
    at = f", {chunk_store_key(array, c)}" if array is not None else ""
    return (
        f"{store}: trajectory {info.path} (traj_id {info.traj_id}), key {key!r}, chunk {c} "
        f"(rows [{c * n}, {min((c + 1) * n, info.length)}){at})"
    )


def check_array(array, store: str, info: TrajectoryInfo, key: str) -> None:
    """Raise ``DataIntegrityError`` unless ``array``'s shape and dtype are those of the index."""
    shape = (info.length, *info.keys[key][0])
    dtype = np.dtype(info.keys[key][1])
    if tuple(array.shape) != shape or np.dtype(array.dtype) != dtype:
        raise DataIntegrityError(
            f"{store}: trajectory {info.path} key {key!r} is stored as {tuple(array.shape)} "
            f"{np.dtype(array.dtype)}, but the index says {shape} {dtype}. " + fix_hint(store)
        )


def _decode(array, lo: int, hi: int, attempt) -> np.ndarray:
    return attempt(lambda: np.asarray(array[lo:hi]))


def read_rows(
    array,
    store: str,
    info: TrajectoryInfo,
    key: str,
    start: int,
    stop: int,
    attempt=lambda fn: fn(),
) -> np.ndarray:
    """Rows ``[start, stop)`` of ``key`` of ``info``'s trajectory, checked chunk by chunk.

    Reads the whole chunks covering the rows (zarr decodes whole chunks anyway), checks each
    (module docstring) and returns the rows, ``[stop - start, *row]`` of the stored dtype.

    Args:
      array: the zarr array of ``key``. store: store path / URL (for messages).
      attempt: ``attempt(fn) -> fn()`` wrapper of each store request (retries, see
        :func:`trajopt_loader.store.remote.with_retries`).
    Raises:
      DataIntegrityError: a chunk is missing, fails its checksum or cannot be decoded, or the
        array's shape / dtype differ from the index. Names store, trajectory, key and chunk.
      StoreReadError: a remote request kept failing (from ``attempt``).
    """
    n = int(info.chunk_rows.get(key) or array.chunks[0])
    check_array(array, store, info, key)
    if stop <= start:
        return np.empty((0, *info.keys[key][0]), info.keys[key][1])
    c0, c1 = start // n, -(-stop // n)
    lo, hi = c0 * n, min(c1 * n, info.length)
    try:
        rows = _decode(array, lo, hi, attempt)
    except TrajoptLoaderError:
        raise
    except Exception as e:  # noqa: BLE001 - codec / blosc errors name no file: find the chunk
        for c in range(c0, c1):
            try:
                _decode(array, c * n, min((c + 1) * n, info.length), attempt)
            except TrajoptLoaderError:
                raise
            except Exception as e2:  # noqa: BLE001
                raise DataIntegrityError(
                    f"{where(store, info, key, c, n, array)} cannot be decoded: "
                    f"{type(e2).__name__}: {e2}. " + fix_hint(store)
                ) from e2
        raise DataIntegrityError(
            f"{store}: trajectory {info.path} key {key!r} rows [{lo}, {hi}) "
            f"cannot be read: {type(e).__name__}: {e}. " + fix_hint(store)
        ) from e
    crcs = info.crc32c.get(key)
    for c in range(c0, c1):
        if crcs is not None:
            if chunk_crc(rows[c * n - lo : min((c + 1) * n, info.length) - lo]) == crcs[c]:
                continue
            if attempt(lambda c=c: chunk_present(array, c)):
                raise DataIntegrityError(
                    f"{where(store, info, key, c, n, array)} fails its checksum: its rows are "
                    "not the ones exported (damaged, or a chunk of other data put in its place). "
                    + fix_hint(store)
                )
        elif attempt(lambda c=c: chunk_present(array, c)):
            continue
        raise DataIntegrityError(
            f"{where(store, info, key, c, n, array)} is missing from the store (file deleted or "
            "not served); zarr would read it as fill values."
            + (
                " Stores of format_version 1 do not write chunks that are all zeros; re-export "
                "into a new store to get checksummed chunks. "
                if crcs is None
                else " "
            )
            + fix_hint(store)
        )
    return rows[start - lo : stop - lo]
