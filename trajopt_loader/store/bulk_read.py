"""Bulk first touch: a key of many trajectories read as raw chunk files, checked, decoded.

Reading a small array through zarr costs ~1 ms of Python per call (metadata, indexing, event-loop
round trip) whatever its size, so a first touch of 15K clips x 2 keys spent ~30 s in zarr for
~0.9 GB of data. :func:`read_whole` fetches the stored chunk files of many trajectories at once
(local files from a thread pool; remote stores with one fsspec ``cat`` of all keys, which keeps
the requests in flight together) and decodes each with the store's codec chain as written by
``export_npz`` (format 2: ``bytes`` little-endian -> ``blosc`` -> ``crc32c``;
:mod:`trajopt_loader.store.export`).

Correctness does not rest on that assumption: a chunk is accepted only when (its 4-byte zarr
``crc32c`` trailer dropped) it decodes to exactly the rows the index describes and the CRC-32C of
the decoded rows equals the one the index recorded at export (:func:`.integrity.chunk_crc`), i.e.
the bytes are the exported ones. Any chunk that fails (missing file, other codecs, damage, a
format 1 store without checksums) makes its trajectory go through the checked zarr read
(:func:`.integrity.read_rows`), which returns the stored rows or raises the named
``DataIntegrityError``. A single-chunk trajectory may be decoded straight into the caller's rows
(``dest``), under the same checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from trajopt_loader.store import layout, parallel_io
from trajopt_loader.store.integrity import chunk_crc
from trajopt_loader.store.layout import TrajectoryInfo

#: trajectories whose chunk files are fetched together (bounds the raw bytes held at once).
BATCH = 1024
#: trajectories read and decoded by one task of the local thread pool.
GROUP = 32
#: threads reading and decoding a local store (1: in the calling thread). Blosc lz4 decodes a
#: 57 KB chunk in ~15 us, about the per-chunk Python around it, so more threads mostly wait for
#: the GIL: 15K-clip first batch on 2 cores 2.33-2.38 s with 1 thread vs 3.12-3.35 s with 2.
#: (For stores written with Blosc/zstd, whose decode is ~4x slower, 2 threads were faster:
#: 2.9-3.1 s vs 3.5-5.8 s; 8 threads 4.8-5.1 s, 16 ~1 s more CPU than 2.)
LOCAL_DECODE_THREADS = 1
_IN_PLACE = object()  # decoded into ``dest``


def chunk_keys(info: TrajectoryInfo, key: str) -> list[str]:
    """Store keys of the time-chunks of ``key`` of ``info`` (``src/mot/traj0/qpos/c/0/0`` ...,
    or ``.../qpos/c.0.0`` for ``"."`` chunk keys: :func:`.layout.chunk_key`)."""
    n = int(info.chunk_rows.get(key) or 0)
    if n <= 0:
        return []
    ndim, sep = len(info.keys[key][0]), info.chunk_key_separator.get(key, "/")
    return [
        f"{info.path}/{key}/{layout.chunk_key(c, ndim, sep)}" for c in range(-(-info.length // n))
    ]


def _blosc_frame(raw) -> memoryview | None:
    """The Blosc frame of a stored chunk (its 4-byte zarr ``crc32c`` trailer dropped), or None
    unless the frame's header says it is exactly that long.

    Blosc 1 header (16 bytes): version, versionlz, flags, typesize, then little-endian uint32
    ``nbytes`` (decoded size), ``blocksize`` and ``cbytes`` (frame size). Blosc reads ``cbytes``
    bytes whatever the buffer's length, so a truncated file must be refused before it decodes.
    """
    if not isinstance(raw, (bytes, bytearray)) or len(raw) < 20:
        return None
    src = memoryview(raw)[:-4]
    return src if int.from_bytes(src[12:16], "little") == len(src) else None


def decode_chunk(raw, info: TrajectoryInfo, key: str, c: int) -> np.ndarray | None:
    """Rows of time-chunk ``c`` from its stored bytes, or None unless every check passes."""
    from numcodecs import blosc

    shape, dtype = info.keys[key][0], np.dtype(info.keys[key][1]).newbyteorder("<")
    crcs, n = info.crc32c.get(key), int(info.chunk_rows[key])
    src = _blosc_frame(raw)
    if src is None or crcs is None:
        return None
    rows = min(n, info.length - c * n)
    try:  # the crc32c trailer is not checked: the CRC of the decoded rows below covers it
        data = blosc.decompress(src)
    except Exception:  # noqa: BLE001 - not blosc: the checked zarr read decodes or names it
        return None
    count = rows * int(np.prod(shape, dtype=np.int64))
    full = n * int(np.prod(shape, dtype=np.int64))  # zarr stores the last chunk whole (padded)
    if len(data) not in (count * dtype.itemsize, full * dtype.itemsize):
        return None
    out = np.frombuffer(data, dtype, count).reshape(rows, *shape)
    return out if chunk_crc(out) == crcs[c] else None


def decode_chunk_into(raw, info: TrajectoryInfo, key: str, out: np.ndarray) -> bool:
    """Decode the only chunk of ``key`` of ``info`` straight into ``out`` ``[length, *row]``
    (C-contiguous, the stored dtype); True when every check of :func:`decode_chunk` passes
    (``out`` may hold other bytes when False)."""
    from numcodecs import blosc

    crcs = info.crc32c.get(key)
    src = _blosc_frame(raw)
    if src is None or crcs is None or len(crcs) != 1:
        return False
    if out.dtype != np.dtype(info.keys[key][1]).newbyteorder("<") or len(out) != info.length:
        return False
    try:
        # Blosc header bytes 4..8: the uncompressed size (decompress only checks dest >= it)
        if int.from_bytes(src[4:8], "little") != out.nbytes:
            return False
        blosc.decompress(src, out)
    except Exception:  # noqa: BLE001 - not blosc: the checked zarr read decodes or names it
        return False
    return chunk_crc(out) == crcs[0]


def _fetch_remote(path: str, keys: list[str], storage_options, timeout_s: float) -> dict:
    """``{key: bytes or exception}`` of a remote store's files: one fsspec ``cat`` of all keys."""
    import fsspec

    from trajopt_loader.store import remote

    opts = remote.storage_options_for(path, storage_options, timeout_s)
    fs, base = fsspec.core.url_to_fs(path, **opts)
    base = base.rstrip("/")
    try:
        got = fs.cat([f"{base}/{k}" for k in keys], on_error="return")
    except Exception:  # noqa: BLE001 - the checked read retries and names the error
        return {}
    return {k: got.get(f"{base}/{k}") for k in keys}


def _read_local(root: str, k: str):
    try:
        with open(f"{root}/{k}", "rb") as f:
            return f.read()
    except OSError:
        return None


def read_whole(
    path: str,
    infos: Sequence[TrajectoryInfo],
    key: str,
    fallback: Callable[[int], np.ndarray],
    storage_options=None,
    timeout_s: float = 30.0,
    dest: Callable[[int], np.ndarray | None] | None = None,
):
    """Yield ``(traj_id, rows [length, *row] stored dtype)`` of ``key`` for every trajectory.

    Args:
      path: store path / URL. infos: the trajectories to read (each holds ``key``).
      fallback: ``fallback(traj_id)`` -> the checked zarr read of the whole key (raises
        ``DataIntegrityError`` / ``StoreReadError`` for a chunk that is damaged or unreachable).
      dest: optional ``dest(traj_id)`` -> the rows ``[length, *row]`` (C-contiguous, stored
        dtype) that trajectory goes to, or None; a single-chunk trajectory is decoded straight
        into it (no intermediate array) and yielded as ``(traj_id, None)``.
    Yields in ``infos`` order. Raises what ``fallback`` raises.
    """
    infos = list(infos)
    url = layout.is_url(path)
    root = layout.local_path(path).rstrip("/")

    def decode(t: TrajectoryInfo, raws):
        out = dest(t.traj_id) if dest is not None and len(raws) == 1 else None
        if out is not None and decode_chunk_into(raws[0], t, key, out):
            return _IN_PLACE
        rows = [decode_chunk(raw, t, key, c) for c, raw in enumerate(raws)]
        if not rows or any(r is None for r in rows):
            return None
        return rows[0] if len(rows) == 1 else np.concatenate(rows)

    for i in range(0, len(infos), BATCH):  # bounds the raw bytes held next to the cache
        part = infos[i : i + BATCH]
        if url:
            got = _fetch_remote(
                path, [k for t in part for k in chunk_keys(t, key)], storage_options, timeout_s
            )
            rows = (decode(t, [got.pop(k, None) for k in chunk_keys(t, key)]) for t in part)
        else:  # read + check + decode in threads, GROUP trajectories per task (few GIL handoffs)
            groups = [part[j : j + GROUP] for j in range(0, len(part), GROUP)]
            rows = (
                r
                for rs in parallel_io.ordered_map(
                    lambda g: [
                        decode(t, [_read_local(root, k) for k in chunk_keys(t, key)]) for t in g
                    ],
                    groups,
                    LOCAL_DECODE_THREADS,
                )
                for r in rs
            )
        for t, r in zip(part, rows, strict=True):
            if r is _IN_PLACE:
                yield t.traj_id, None
            else:
                yield t.traj_id, r if r is not None else fallback(t.traj_id)
