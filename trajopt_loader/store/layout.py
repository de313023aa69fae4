"""On-disk layout of a trajopt-loader Zarr store, and the names and rules shared by export and read.

Layout (Zarr v3)::

    <store>.zarr/                       root group; attrs["trajopt_loader"] = consolidated index
      <source>/                         one group per data source (robot / dataset); one convention
        <motion>/                       one group per motion (a directory of .npz files)
          traj{i}/                      the i-th input file in natural order; attrs = its metadata
            qpos  [T, nq]  qvel [T, nv]  action [T, nu]  ...  arrays chunked along time

The root attrs hold the whole index under ``INDEX_KEY`` so a store opens without listing (e.g. over
plain HTTP)::

    {"format_version": 2,
     "order": ["src/motion", ...],      # global motion order, appended to by every export
     "sources": {src: {"convention": Convention.to_attrs(),
                       "model_layout": {...},   # only when exported with --model
                       "motions": {motion: [{"name": "traj0", "length": T, "dt": s,
                                             "source_file": "traj_0.npz",
                                             "keys": {key: {"shape": [row dims], "dtype": "float64",
                                                            "chunk_rows": n,
                                                            "crc32c": [c0, c1, ...],
                                                            # only when ".":
                                                            "chunk_key_separator": "."}},
                                             "derived": {...}, "padded": {key: 1},
                                             "scalars": {name: value}}, ...]}}}}

``model_layout`` (:mod:`trajopt_loader.kinematics.model_layout`): nq, nv, joint names / types /
qpos and dof addresses and body names / parents of the export's model, recorded and checked
against an environment's model (``TrajectoryStore.check_model``) by
:mod:`trajopt_loader.store.model_record`.

Order and trajectory ids: ``TrajectoryStore.trajectories`` lists the motions in the order they
were first exported, whatever their source, then each motion's trajectories in natural file
order; ``traj_id`` is the position in that list. The index records that order in ``"order"``
(:func:`motion_order`): export appends a new motion at the end (the motions of one export in
sorted name order, so a fresh store lists sorted names), and a motion replaced with ``overwrite``
keeps its place. Appending a motion or a source never renumbers the trajectories already there.
Stores written before ``"order"`` existed list motions in the index's nesting order.

Chunking: every array is chunked along time only, whole rows per chunk, ``chunk_rows`` chosen so
one chunk holds about ``CHUNK_BYTES`` (512 KiB) uncompressed: big enough that a whole Cassie
trajectory (1682 x 35 float64 = 460 KiB) is one chunk and decoding is cheap, small enough that the
host cache can work on time-chunks of long trajectories. Codec: Blosc with lz4 level 5 and byte
shuffle, then zarr's ``crc32c`` codec (a checksum of the compressed bytes: a damaged chunk fails
to decode instead of decoding to other numbers). lz4 over zstd level 3 (the codec of earlier
stores, still read: the codec is recorded in each array's ``zarr.json``), measured
on the real Cassie qpos / qvel / action (float64): ratio 2.34 vs 2.40, decode 6.7 vs 1.9 GB/s,
encode 3.0 vs 0.7 GB/s on one core; decoding is most of a first touch of many clips. Floats
keep their input dtype, so a round trip is bit-exact.

Chunk keys: zarr v3's ``default`` chunk key encoding, time-chunk ``c`` of an array with ``d``
row dimensions stored at ``c/{c}/0/...`` (``"/"``, zarr's default) or ``c.{c}.0...`` (``"."``,
export option ``chunk_key_separator``: one file per chunk directly in the array's directory, where
``"/"`` makes ``1 + d`` directories per array: 3 instead of 7 directories per two-key clip).
On the benchmark machine's ext4 a directory cost ~17 us of kernel time in a good state and
~350 us right after many files were deleted; there ``"."`` exported 1.0-1.24x faster (four pairs
of 3K and 15K clips), elsewhere the two are within noise (``benchmarks/README.md``, "Scale").
Both are plain Zarr; each array's ``zarr.json`` names its encoding, and the index records
``"chunk_key_separator"`` for a key only when it is ``"."`` (:func:`chunk_key`). The groups
(``<source>/<motion>/traj{i}/{key}``) are the same either way.

Integrity (format_version 2): every chunk is written, even one equal to the fill value, and the
index records per trajectory and key ``"crc32c"``, the CRC-32C of each chunk's *decoded* rows
(:func:`trajopt_loader.store.integrity.chunk_crc`). A read checks it when the host cache loads a
key or a chunk, so a missing chunk (zarr would return fill values), a chunk swapped with another
trajectory's and damaged bytes all raise ``DataIntegrityError``. Stores of format_version 1
(no checksums, all-zero chunks not written) stay readable; there a read checks that each chunk
it loads exists.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Any

import numpy as np

INDEX_KEY = "trajopt_loader"
FORMAT_VERSION = 2
#: format versions this version reads (1: no chunk checksums, see the module docstring)
READ_FORMAT_VERSIONS = (1, 2)
CHUNK_BYTES = 512 * 1024
BLOSC = {"cname": "lz4", "clevel": 5, "shuffle": "shuffle"}
#: Separators of zarr's ``default`` chunk key encoding an export may choose (see :func:`chunk_key`).
CHUNK_KEY_SEPARATORS = ("/", ".")
#: Store keys of body states written by an export with ``--bodies`` (kinematics/bodies.py):
#: ``[T, nb, 3]``, ``[T, nb, 4]`` (wxyz), ``[T, nb, 3]``, ``[T, nb, 3]``; world frame.
BODY_KEYS = ("body_pos", "body_quat", "body_lin_vel", "body_ang_vel")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
#: Names zarr gives a meaning inside a group directory (compared with :func:`name_key`).
RESERVED_NAMES = ("zarr.json",)


def natural_key(name: str) -> tuple:
    """Sort key giving natural order: ``traj_2`` before ``traj_10`` (digit runs compare as ints)."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts), name


def chunk_rows(row_shape: tuple[int, ...], dtype: Any, length: int) -> int:
    """Rows per time-chunk: about ``CHUNK_BYTES`` uncompressed, at least 1, at most ``length``."""
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    return int(max(1, min(max(length, 1), CHUNK_BYTES // row_bytes)))


def chunk_key(c: int, row_ndim: int, separator: str = "/") -> str:
    """The key of time-chunk ``c`` inside its array (zarr v3 ``default`` chunk key encoding):
    ``c/{c}/0/...`` for ``"/"``, ``c.{c}.0...`` for ``"."``, one ``0`` per row dimension (the
    chunk spans the whole row)."""
    return separator.join(("c", str(c), *("0",) * row_ndim))


def check_node_name(name: str, what: str, exc: type[Exception]) -> str:
    """Check that ``name`` is usable as a Zarr group name (no ``/``, no leading ``.``).

    Raises:
      exc: naming ``what`` (e.g. "source") and the offending value.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith("__"):
        raise exc(
            f"{what} name {name!r} is not valid; use letters, digits, '_', '-', '.' "
            "(not starting with '.' or '__', no '/')."
        )
    if name_key(name) in RESERVED_NAMES:
        raise exc(
            f"{what} name {name!r} is reserved by the Zarr format (a group's metadata "
            "file); rename it."
        )
    return name


def name_key(name: str) -> str:
    """The form in which two names count as the same: Unicode NFC, then case-folded.

    Stores live on case-insensitive file systems too (macOS, Windows), where ``Walk`` and
    ``walk`` are one directory; export refuses a name whose key equals another's.
    """
    return unicodedata.normalize("NFC", name).casefold()


def check_name_clash(name: str, existing, what: str, exc: type[Exception]) -> None:
    """Refuse ``name`` when one of ``existing`` differs from it but has the same :func:`name_key`.

    Raises:
      exc: naming both names and ``what`` (e.g. "motion in source 'cassie' of out.zarr").
    """
    for other in existing:
        if other != name and name_key(other) == name_key(name):
            raise exc(
                f"{what} {name!r} clashes with {other!r} already there (names are compared "
                f"ignoring case and Unicode normalization); use {other!r} (with "
                "overwrite to replace it) or another name."
            )


@dataclasses.dataclass(frozen=True)
class TrajectoryInfo:
    """Metadata of one stored trajectory (from the root index; no array data).

    Attributes:
      traj_id: position in ``TrajectoryStore.trajectories`` (global order: motions in the order
        first exported, then natural file order). Stable when motions or sources are appended.
      source: source group name. motion: motion group name. name: ``"traj{i}"``.
      path: ``"source/motion/traj{i}"`` inside the store.
      length: number of real time steps T (after ``true_length`` truncation).
      dt: time step in seconds; NaN when unknown (index ``null``; ``store.time_step.dt_known``).
      source_file: name of the ``.npz`` file it came from.
      keys: ``{key: (row_shape, dtype_str)}``; an array ``key`` has shape ``(length, *row_shape)``.
      chunk_rows: ``{key: rows per stored time-chunk}``.
      chunk_key_separator: ``{key: "."}`` for keys stored with ``"."`` chunk keys; keys absent
        use ``"/"`` (:func:`chunk_key`).
      crc32c: ``{key: (CRC-32C of each chunk's decoded rows, ...)}`` (format 2; ``{}`` in format 1).
      padded: ``{key: rows added}`` by the one-action-per-interval padding rule.
      derived: provenance recorded by an export preprocess (e.g. qvel from finite differences).
      scalars: 0-d values of the input file (e.g. ``speed``), as Python numbers.
    """

    traj_id: int
    source: str
    motion: str
    name: str
    path: str
    length: int
    dt: float
    source_file: str
    keys: dict
    chunk_rows: dict = dataclasses.field(default_factory=dict, compare=False)
    chunk_key_separator: dict = dataclasses.field(default_factory=dict, compare=False)
    crc32c: dict = dataclasses.field(default_factory=dict, compare=False)
    padded: dict = dataclasses.field(default_factory=dict, compare=False)
    derived: dict = dataclasses.field(default_factory=dict, compare=False)
    scalars: dict = dataclasses.field(default_factory=dict, compare=False)

    def __hash__(self) -> int:
        return hash((self.traj_id, self.path))


def motion_order(index: dict) -> list[tuple[str, str]]:
    """``(source, motion)`` of every motion of the index, in global order.

    The pairs listed in ``index["order"]`` (``"source/motion"`` strings; names never hold ``/``)
    come first, in that order; pairs it does not list follow in the index's nesting order (all
    of them for stores written before ``"order"`` existed). Listed pairs absent from
    ``index["sources"]`` are skipped.
    """
    sources = index.get("sources", {})
    present = [(s, m) for s in sources for m in sources[s].get("motions", {})]
    known, out = set(present), {}
    for item in index.get("order", ()):
        pair = tuple(str(item).split("/", 1))
        if pair in known:
            out[pair] = None
    out.update((p, None) for p in present if p not in out)
    return list(out)


def info_from_entry(traj_id: int, source: str, motion: str, entry: dict) -> TrajectoryInfo:
    """The :class:`TrajectoryInfo` of one checked index entry (``.index_check``)."""
    keys = entry["keys"]
    return TrajectoryInfo(
        traj_id=traj_id,
        source=source,
        motion=motion,
        name=entry["name"],
        path=f"{source}/{motion}/{entry['name']}",
        length=int(entry["length"]),
        dt=float("nan") if entry["dt"] is None else float(entry["dt"]),
        source_file=str(entry.get("source_file", "")),
        keys={k: (tuple(int(d) for d in v["shape"]), str(v["dtype"])) for k, v in keys.items()},
        chunk_rows={k: int(v.get("chunk_rows", 0)) for k, v in keys.items()},
        chunk_key_separator={
            k: v["chunk_key_separator"] for k, v in keys.items() if "chunk_key_separator" in v
        },
        crc32c={k: tuple(int(c) for c in v["crc32c"]) for k, v in keys.items() if "crc32c" in v},
        padded=dict(entry.get("padded", {})),
        derived=dict(entry.get("derived", {})),
        scalars=dict(entry.get("scalars", {})),
    )


def infos_from_index(index: dict) -> tuple[TrajectoryInfo, ...]:
    """Flatten the root index into ``TrajectoryInfo`` in global order (traj_id = position).

    Global order: motions in :func:`motion_order` (as first exported; see the module docstring),
    then the entries of a motion (natural file order). Never re-sorted, so appended motions and
    sources get ids after the existing ones.
    """
    out: list[TrajectoryInfo] = []
    for source, motion in motion_order(index):
        for entry in index["sources"][source]["motions"][motion]:
            out.append(info_from_entry(len(out), source, motion, entry))
    return tuple(out)


def is_url(path: str) -> bool:
    """True for fsspec URLs (``s3://``, ``http://``...); ``file://`` and plain paths are local."""
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    """Plain filesystem path of a local store path or ``file://`` URL."""
    return path[len("file://") :] if path.startswith("file://") else path
