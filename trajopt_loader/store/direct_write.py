"""Trajectory groups written to a local store as files, byte for byte what zarr writes.

Writing a small array through zarr costs ~4 ms of Python per trajectory (metadata objects, the
event loop, one round trip per array), which bounded a many-clip export to ~25k frames/s.
:func:`write_traj` writes the same files directly: the group's ``zarr.json`` as zarr's
``GroupMetadata`` serializes it (the same document dumped directly when that gives zarr's bytes);
each array's ``zarr.json`` from a template that zarr itself produced once per (row shape, dtype,
chunk rows) signature (only the length changes, and the template is checked to re-serialize to
zarr's bytes, else every array goes through zarr); each chunk encoded
with the codec chain of that metadata (``bytes`` little-endian -> numcodecs ``Blosc`` built from
zarr's evolved blosc configuration -> CRC-32C trailer as zarr's ``crc32c`` codec appends it),
every chunk written (zarr's ``write_empty_chunks=True``), the last one padded with the fill value
as zarr pads it. ``tests/store/test_direct_write.py`` proves the files equal zarr's.

The files are created in the export's staged motion directory with one ``open(O_EXCL)`` + write
each, not through zarr's atomic writer (temporary file + rename): atomicity per file protects
readers of a live store from torn files, and no reader sees a staged directory before the commit
moves it in whole, after every write of the export has returned
(:mod:`trajopt_loader.store.commit`). A crash mid-write leaves a partial file only inside the
temporary directory, which the next export deletes (journal phase ``"writing"``). Durability is
the same: neither writer calls ``fsync``. A clip of two ``[T, n]`` keys with ``"/"`` chunk keys
creates 7 directories and 5 files, with ``"."`` chunk keys 3 and 5 (:func:`.layout.chunk_key`).
On the benchmark machine's ext4 a directory cost ~17 us of kernel time in a good state and
~350 us right after many files were deleted (a file with its data ~25-35 us): the file system's
state, more than the bytes, sets an export of many small clips (``benchmarks/README.md``).
"""

from __future__ import annotations

import functools
import json
import os
import struct
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

from trajopt_loader.store import layout, zarr_json

ZARR_JSON = "zarr.json"


def create_array(group, key: str, a: np.ndarray, chunk_rows: int, separator: str = "/"):
    """``key`` of a zarr ``group`` as the export stores it (codec, chunking and chunk keys with
    ``separator``: :mod:`.layout`); every chunk exists (``write_empty_chunks``). Returns the
    (empty) zarr array."""
    return group.create_array(
        key,
        shape=a.shape,
        dtype=a.dtype,
        chunks=(chunk_rows, *a.shape[1:]),
        compressors=(BloscCodec(**layout.BLOSC), Crc32cCodec()),
        chunk_key_encoding={"name": "default", "separator": separator},
        config={"write_empty_chunks": True},
    )


class _Template:
    """zarr's array metadata of one signature, and the codecs it names."""

    def __init__(self, row_shape: tuple, dtype: np.dtype, chunk_rows: int, separator: str):
        arr = create_array(
            zarr.open_group(MemoryStore(), mode="w"),
            "a",
            np.empty((chunk_rows, *row_shape), dtype),
            chunk_rows,
            separator,
        )
        want = arr.metadata.to_buffer_dict(default_buffer_prototype())[ZARR_JSON].to_bytes()
        self.meta = json.loads(want)
        self._meta_bytes: dict[int, bytes] = {}
        self._nodes: dict[int, dict] = {}
        self.indent = zarr.config.get("json_indent")
        codecs = [c["name"] for c in self.meta["codecs"]]
        endian = self.meta["codecs"][0].get("configuration", {}).get("endian")
        fill = self.meta["fill_value"]
        # anything this writer does not reproduce exactly: every array of it goes through zarr
        self.ok = (
            codecs == ["bytes", "blosc", "crc32c"]
            and endian == "little"
            and self.meta["chunk_key_encoding"]
            == {"name": "default", "configuration": {"separator": separator}}
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
        return zarr_json.dumps(meta, self.indent)

    def node(self, length: int) -> dict:
        """The metadata of an array of ``length`` rows (what its ``zarr.json`` holds; one shared
        dict per length: do not modify)."""
        node = self._nodes.get(length)
        if node is None:
            node = self._nodes[length] = dict(self.meta, shape=[length, *self.meta["shape"][1:]])
        return node

    def meta_bytes(self, length: int) -> bytes:
        b = self._meta_bytes.get(length)
        if b is None:  # clips of one length share the bytes
            b = self._meta_bytes[length] = self._dumps(self.node(length))
        return b

    def chunk_bytes(self, rows: np.ndarray, chunk_rows: int) -> bytes:
        rows = np.ascontiguousarray(rows, self.dtype)
        if len(rows) < chunk_rows:  # zarr stores the last chunk whole, padded with the fill
            full = np.full((chunk_rows, *rows.shape[1:]), self.fill, self.dtype)
            full[: len(rows)] = rows
            rows = full
        data = bytes(self.blosc.encode(rows))
        return data + struct.pack("<I", google_crc32c.value(data))


_TEMPLATES: dict = {}
_LOCK = threading.Lock()


def _template(row_shape: tuple, dtype, chunk_rows: int, separator: str) -> _Template:
    sig = (tuple(row_shape), np.dtype(dtype).str, chunk_rows, separator)
    t = _TEMPLATES.get(sig)
    if t is None:
        with _LOCK:  # zarr builds it once per signature
            t = _TEMPLATES.get(sig)
            if t is None:
                t = _TEMPLATES[sig] = _Template(*sig)
    return t


def _zarr_group_bytes(attributes: dict) -> bytes:
    meta = GroupMetadata(attributes=attributes, zarr_format=3)
    return meta.to_buffer_dict(default_buffer_prototype())[ZARR_JSON].to_bytes()


def _plain_group_bytes(attributes: dict) -> bytes:
    doc = {"attributes": attributes, "zarr_format": 3, "node_type": "group"}
    return zarr_json.dumps(doc, zarr.config.get("json_indent"))


_SAMPLE = {"a": [1, 2.5, float("nan"), None, "x", True], "b": {"c": {}, "d": []}, "e": -0.0}


def group_bytes(attributes: dict) -> bytes:
    """The ``zarr.json`` zarr writes for a v3 group with ``attributes`` (JSON values).

    ``GroupMetadata.to_dict()`` deep-copies the attributes (~0.2 ms for a trajectory's entry);
    the same document is dumped directly when that gives zarr's bytes for a sample.
    """
    return (_plain_group_bytes if _plain_is_zarrs() else _zarr_group_bytes)(attributes)


@functools.cache
def _plain_is_zarrs() -> bool:
    return _plain_group_bytes(_SAMPLE) == _zarr_group_bytes(_SAMPLE)


#: The consolidated-metadata entry of a group node (zarr lists every group with an empty one).
_NO_CHILDREN = {"kind": "inline", "must_understand": False, "metadata": {}}


def group_node(attributes: dict) -> dict:
    """The consolidated metadata entry zarr writes for a v3 group with ``attributes``."""
    return {
        "attributes": attributes,
        "zarr_format": 3,
        "consolidated_metadata": _NO_CHILDREN,
        "node_type": "group",
    }


def local_dir(group) -> Path | None:
    """The directory of a zarr group of a local store (``LocalStore``), else None."""
    from zarr.storage import LocalStore

    if not isinstance(group.store, LocalStore):
        return None
    return Path(group.store.root) / group.path


def put(path: Path, data: bytes) -> None:
    """Write one file as zarr's ``LocalStore`` does (parents created, written atomically)."""
    from zarr.storage import _local

    _local._put(path, default_buffer_prototype().buffer.from_bytes(data))


def write_new(path: str | Path, data: bytes) -> int:
    """Create the file ``path`` (which must not exist) holding ``data``; returns its size.

    Not atomic: for files of a directory no reader sees until it is complete (an export's
    temporary directory, moved into the store whole by :mod:`trajopt_loader.store.commit`).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return len(data)


def write_traj(motion_dir: str | Path, name: str, entry: dict, arrays: dict) -> tuple[dict, int]:
    """Write group ``name`` (attributes ``entry``) with ``arrays`` ``{key: [T, *row]}`` under the
    local motion group directory ``motion_dir``, chunked as ``entry["keys"][key]["chunk_rows"]``.

    ``motion_dir`` must be staged (not yet in a store): its files are created directly, not
    through zarr's atomic writer (see :func:`write_new`); that saves a rename per file, and the
    bytes are the same.

    Returns:
      ``({path: node metadata}, bytes written)``: the consolidated metadata entries zarr would
      read back for the group and its arrays (paths relative to ``motion_dir``: ``name``,
      ``name/key``; :mod:`trajopt_loader.store.root_meta`) and the size of the files written.
    Raises:
      OSError from the file system (the caller's commit protocol removes the partial tree).
    """
    tdir = os.path.join(motion_dir, name)  # str paths: pathlib costs ~0.1 ms per clip here
    os.mkdir(tdir)
    nbytes = write_new(f"{tdir}/{ZARR_JSON}", group_bytes(entry))
    nodes = {name: group_node(entry)}
    for key, a in arrays.items():
        rows = entry["keys"][key]["chunk_rows"]
        sep = entry["keys"][key].get("chunk_key_separator", "/")
        t = _template(a.shape[1:], a.dtype, rows, sep)
        adir = f"{tdir}/{key}"
        if not t.ok:
            create_array(zarr.open_group(tdir, mode="r+"), key, a, rows, sep)[...] = a
            meta = Path(adir, ZARR_JSON).read_bytes()
            nodes[f"{name}/{key}"] = json.loads(meta)
            nbytes += sum(f.stat().st_size for f in Path(adir).rglob("*") if f.is_file())
            continue
        os.mkdir(adir)
        nbytes += write_new(f"{adir}/{ZARR_JSON}", t.meta_bytes(len(a)))
        nodes[f"{name}/{key}"] = t.node(len(a))
        if sep == "/":
            os.mkdir(f"{adir}/c")
        for c in range(-(-len(a) // rows)):
            path = f"{adir}/{layout.chunk_key(c, a.ndim - 1, sep)}"
            for i in range(a.ndim - 1 if sep == "/" else 0):  # parents c/{c}, c/{c}/0, ...
                os.mkdir(path.rsplit("/", a.ndim - 1 - i)[0])
            nbytes += write_new(path, t.chunk_bytes(a[c * rows : (c + 1) * rows], rows))
    return nodes, nbytes
