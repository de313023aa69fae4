"""Trajectory groups written to a local store as files, byte for byte what zarr writes.

Writing a small array through zarr costs ~4 ms of Python per trajectory (metadata objects, the
event loop, one round trip per array), which bounded a many-clip export to ~25k frames/s.
:func:`write_traj` writes the same files directly: the group's ``zarr.json`` from zarr's own
``GroupMetadata`` serializer; each array's ``zarr.json`` from a template that zarr itself produced
once per (row shape, dtype, chunk rows) signature (only the length changes, and the template is
checked to re-serialize to zarr's bytes, else every array goes through zarr); each chunk encoded
with the codec chain of that metadata (``bytes`` little-endian -> numcodecs ``Blosc`` built from
zarr's evolved blosc configuration -> CRC-32C trailer as zarr's ``crc32c`` codec appends it),
every chunk written (zarr's ``write_empty_chunks=True``) through zarr's ``LocalStore`` file
writer (atomic, parents created), the last one padded with the fill value as zarr pads it.
``tests/store/test_direct_write.py`` proves the files equal zarr's.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, Crc32cCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import GroupMetadata
from zarr.storage import MemoryStore

from trajopt_loader.store import layout

ZARR_JSON = "zarr.json"


def create_array(group, key: str, a: np.ndarray, chunk_rows: int):
    """``key`` of a zarr ``group`` as the export stores it (codec and chunking: :mod:`.layout`);
    every chunk exists (``write_empty_chunks``). Returns the (empty) zarr array."""
    return group.create_array(
        key,
        shape=a.shape,
        dtype=a.dtype,
        chunks=(chunk_rows, *a.shape[1:]),
        compressors=(BloscCodec(**layout.BLOSC), Crc32cCodec()),
        config={"write_empty_chunks": True},
    )


class _Template:
    """zarr's array metadata of one signature, and the codecs it names."""

    def __init__(self, row_shape: tuple, dtype: np.dtype, chunk_rows: int):
        arr = create_array(
            zarr.open_group(MemoryStore(), mode="w"),
            "a",
            np.empty((chunk_rows, *row_shape), dtype),
            chunk_rows,
        )
        want = arr.metadata.to_buffer_dict(default_buffer_prototype())[ZARR_JSON].to_bytes()
        self.meta = json.loads(want)
        self.indent = zarr.config.get("json_indent")
        codecs = [c["name"] for c in self.meta["codecs"]]
        endian = self.meta["codecs"][0].get("configuration", {}).get("endian")
        fill = self.meta["fill_value"]
        # anything this writer does not reproduce exactly: every array of it goes through zarr
        self.ok = (
            codecs == ["bytes", "blosc", "crc32c"]
            and endian == "little"
            and self.meta["chunk_key_encoding"]
            == {"name": "default", "configuration": {"separator": "/"}}
            and isinstance(fill, (int, float))
            and not isinstance(fill, bool)
            and self._dumps(self.meta) == want
        )
        if self.ok:
            blosc = dict(self.meta["codecs"][1]["configuration"])
            blosc["shuffle"] = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[blosc["shuffle"]]
            self.blosc = Blosc.from_config(blosc)
            self.dtype = np.dtype(dtype).newbyteorder("<")
            self.fill = fill

    def _dumps(self, meta: dict) -> bytes:
        return json.dumps(meta, allow_nan=True, indent=self.indent).encode()

    def meta_bytes(self, length: int) -> bytes:
        meta = dict(self.meta, shape=[length, *self.meta["shape"][1:]])
        return self._dumps(meta)

    def chunk_bytes(self, rows: np.ndarray, chunk_rows: int) -> bytes:
        rows = np.ascontiguousarray(rows, self.dtype)
        if len(rows) < chunk_rows:  # zarr stores the last chunk whole, padded with the fill
            full = np.full((chunk_rows, *rows.shape[1:]), self.fill, self.dtype)
            full[: len(rows)] = rows
            rows = full
        data = self.blosc.encode(rows)
        return bytes(data) + np.uint32(google_crc32c.value(bytes(data))).astype("<u4").tobytes()


_TEMPLATES: dict = {}
_LOCK = threading.Lock()


def _template(row_shape: tuple, dtype, chunk_rows: int) -> _Template:
    sig = (tuple(row_shape), np.dtype(dtype).str, chunk_rows)
    t = _TEMPLATES.get(sig)
    if t is None:
        with _LOCK:  # zarr builds it once per signature
            t = _TEMPLATES.get(sig)
            if t is None:
                t = _TEMPLATES[sig] = _Template(*sig)
    return t


def group_bytes(attributes: dict) -> bytes:
    """The ``zarr.json`` zarr writes for a v3 group with ``attributes``."""
    meta = GroupMetadata(attributes=attributes, zarr_format=3)
    return meta.to_buffer_dict(default_buffer_prototype())[ZARR_JSON].to_bytes()


def local_dir(group) -> Path | None:
    """The directory of a zarr group of a local store (``LocalStore``), else None."""
    from zarr.storage import LocalStore

    if not isinstance(group.store, LocalStore):
        return None
    return Path(group.store.root) / group.path


def _put(path: Path, data: bytes) -> None:
    """Write one file as zarr's ``LocalStore`` does (parents created, written atomically)."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.storage import _local

    _local._put(path, default_buffer_prototype().buffer.from_bytes(data))


def write_traj(motion_dir: Path, name: str, entry: dict, arrays: dict) -> None:
    """Write group ``name`` (attributes ``entry``) with ``arrays`` ``{key: [T, *row]}`` under the
    local motion group directory ``motion_dir``, chunked as ``entry["keys"][key]["chunk_rows"]``.

    Raises OSError from the file system (the caller's commit protocol removes the partial tree).
    """
    tdir = motion_dir / name
    tdir.mkdir()
    (tdir / ZARR_JSON).write_bytes(group_bytes(entry))
    for key, a in arrays.items():
        rows = entry["keys"][key]["chunk_rows"]
        t = _template(a.shape[1:], a.dtype, rows)
        if not t.ok:
            create_array(zarr.open_group(str(tdir), mode="r+"), key, a, rows)[...] = a
            continue
        adir = tdir / key
        adir.mkdir()
        (adir / ZARR_JSON).write_bytes(t.meta_bytes(len(a)))
        zeros = "/0" * (a.ndim - 1)  # chunk key c/{c}/0/.../0: one chunk across the row axes
        for c in range(-(-len(a) // rows)):
            _put(adir / f"c/{c}{zeros}", t.chunk_bytes(a[c * rows : (c + 1) * rows], rows))
