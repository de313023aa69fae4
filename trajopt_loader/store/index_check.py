"""Validation of a store's root index (``layout.INDEX_KEY`` in the root attrs), once, on open.

The index is JSON in the root ``zarr.json``; a hand edit or a damaged file must not surface later
as a ``KeyError``, ``TypeError``, ``OverflowError`` or a stream that stops with ``StopIteration``.
:func:`check_index` checks every field the reader uses (layout: :mod:`.layout`) and raises
:class:`StoreFormatError` naming the field (a path such as ``sources/cassie/motions/walk/0/dt``),
its value, what was expected and the fix.
"""

from __future__ import annotations

import math
from types import NoneType

import numpy as np

from trajopt_loader.errors import StoreFormatError
from trajopt_loader.store import layout

#: Largest trajectory length the reader accepts (lengths are held as int32).
MAX_LENGTH = 2**31 - 1


class _Checker:
    def __init__(self, path: str):
        self.path = path

    def fail(self, field: str, value, expected: str):
        text = repr(value)
        text = text if len(text) <= 80 else text[:77] + "..."
        raise StoreFormatError(
            f"{self.path}: index field {field!r} is {text}; expected {expected}. The index (root "
            f"zarr.json attrs {layout.INDEX_KEY!r}) was edited or damaged: restore it or "
            "re-export the data with `trajopt-loader export`."
        )

    def typed(self, field: str, value, kind: type, expected: str):
        if not isinstance(value, kind) or isinstance(value, bool):
            self.fail(field, value, expected)
        return value

    def name(self, field: str, value) -> None:
        try:
            layout.check_node_name(value, "node", ValueError)
        except ValueError:
            self.fail(field, value, "a group name (letters, digits, '_', '-', '.'; no '/')")

    def int_in(self, field: str, value, lo: int, hi: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            self.fail(field, value, f"an integer in [{lo}, {hi}]")
        return value


_NUMERIC: dict = {}


def _numeric_dtype(name) -> bool:
    """Whether ``name`` is a numeric dtype name (memoized: a store repeats a few names)."""
    if not isinstance(name, str):
        return False
    ok = _NUMERIC.get(name)
    if ok is None:
        try:
            ok = np.dtype(name).kind in "biuf"
        except (TypeError, ValueError):
            ok = False
        _NUMERIC[name] = ok
    return ok


def _check_entry(ck: _Checker, at: str, entry, version: int) -> None:
    ck.typed(at, entry, dict, "an object with name, length, dt and keys")
    ck.name(f"{at}/name", entry.get("name"))
    length = ck.int_in(f"{at}/length", entry.get("length"), 1, MAX_LENGTH)
    dt = entry.get("dt", "<missing>")
    if dt is not None and (
        not isinstance(dt, (int, float)) or isinstance(dt, bool) or not math.isfinite(dt) or dt <= 0
    ):
        ck.fail(f"{at}/dt", dt, "a finite time step > 0 in seconds, or null (unknown)")
    keys = ck.typed(f"{at}/keys", entry.get("keys"), dict, "an object {key: {shape, dtype, ...}}")
    if not keys:
        ck.fail(f"{at}/keys", keys, "at least one key (qpos)")
    for key, spec in keys.items():
        kat = f"{at}/keys/{key}"
        ck.typed(kat, spec, dict, "an object with shape and dtype")
        shape = ck.typed(f"{kat}/shape", spec.get("shape"), list, "a list of row dimensions")
        for i, d in enumerate(shape):
            ck.int_in(f"{kat}/shape/{i}", d, 0, MAX_LENGTH)
        if not _numeric_dtype(spec.get("dtype")):
            ck.fail(f"{kat}/dtype", spec.get("dtype"), "a numeric dtype name such as 'float64'")
        rows = spec.get("chunk_rows", 1)
        ck.int_in(f"{kat}/chunk_rows", rows, 0 if version == 1 else 1, MAX_LENGTH)
        sep = spec.get("chunk_key_separator", "/")
        if sep not in layout.CHUNK_KEY_SEPARATORS or type(sep) is not str:
            ck.fail(f"{kat}/chunk_key_separator", sep, "'/' or '.' (absent: '/')")
        if version >= 2 or "crc32c" in spec:
            crcs = ck.typed(
                f"{kat}/crc32c", spec.get("crc32c"), list, "a list of one CRC-32C per chunk"
            )
            n_chunks = -(-length // max(1, rows or length))
            if len(crcs) != n_chunks:
                ck.fail(
                    f"{kat}/crc32c",
                    crcs,
                    f"{n_chunks} checksums (length {length}, chunk_rows {rows})",
                )
            if not all(type(c) is int and 0 <= c <= 0xFFFFFFFF for c in crcs):  # one pass
                for i, c in enumerate(crcs):  # name the first bad one
                    ck.int_in(f"{kat}/crc32c/{i}", c, 0, 2**32 - 1)
    for name in _OBJECTS:
        if name in entry:
            ck.typed(f"{at}/{name}", entry[name], dict, "an object")


_OBJECTS = ("padded", "derived", "scalars")
_GOOD_NAMES: set = set()  # names that passed check_node_name (a store repeats "traj0"...)


def _columns_ok(entries: list, version: int) -> bool:
    """Whether every entry passes :func:`_check_entry`, proven in one pass that collects columns
    (numpy then checks the lengths, dts, chunk counts and checksums of all entries; each distinct
    name and (shape, dtype, chunk_rows, chunk_key_separator) signature is checked once).

    False means "not proven here": the caller reruns :func:`_check_entry` per entry, which names
    the first bad field. Strict types (``type(x) is int``) keep this a subset of that check.
    """
    if not entries:
        return True
    names, signatures, types = set(), set(), set()
    lengths, dts, spec_lengths, spec_rows, n_crc, crcs_flat = [], [], [], [], [], []
    extend, objects = crcs_flat.extend, _OBJECTS
    need_crc = version >= 2
    try:
        for e in entries:
            names.add(e["name"])
            length = e["length"]
            lengths.append(length)
            dts.append(e["dt"])
            keys = e["keys"]
            if not keys or type(keys) is not dict:
                return False
            for n in objects:
                if n in e and type(e[n]) is not dict:
                    return False
            for spec in keys.values():
                rows = spec.get("chunk_rows", 1)
                shape = spec["shape"]
                sep = spec.get("chunk_key_separator", "/")
                signatures.add(
                    (type(shape), tuple(shape), spec["dtype"], rows, type(rows), sep, type(sep))
                )
                crcs = spec.get("crc32c")
                if crcs is None and not need_crc and "crc32c" not in spec:
                    continue
                types.add(type(crcs))
                spec_lengths.append(length)
                spec_rows.append(rows)
                n_crc.append(len(crcs))
                extend(crcs)
    except (TypeError, KeyError, AttributeError):  # not a dict, a missing field, unhashable...
        return False
    if types - {list} or {s[0] for s in signatures} - {list}:
        return False
    for name in names - _GOOD_NAMES:
        try:
            layout.check_node_name(name, "node", ValueError)
        except (TypeError, ValueError):
            return False
        if len(_GOOD_NAMES) < 100_000:
            _GOOD_NAMES.add(name)
    if set(map(type, lengths)) != {int} or not set(map(type, dts)) <= {int, float, NoneType}:
        return False
    try:
        lens = np.array(lengths, np.int64)
        steps = np.array([d for d in dts if d is not None], np.float64)
    except OverflowError:
        return False
    if lens.min() < 1 or lens.max() > MAX_LENGTH or not np.all(np.isfinite(steps) & (steps > 0)):
        return False
    lo_rows = 0 if version == 1 else 1
    for _, shape, dtype, rows, rows_type, sep, sep_type in signatures:
        if rows_type is not int or not lo_rows <= rows <= MAX_LENGTH or not _numeric_dtype(dtype):
            return False
        if sep_type is not str or sep not in layout.CHUNK_KEY_SEPARATORS:
            return False
        if any(type(d) is not int or not 0 <= d <= MAX_LENGTH for d in shape):
            return False
    if spec_rows:
        lens, rows = np.array(spec_lengths, np.int64), np.array(spec_rows, np.int64)
        n_chunks = -(-lens // np.maximum(1, np.where(rows == 0, lens, rows)))
        if not np.array_equal(n_chunks, np.array(n_crc, np.int64)):
            return False
    if crcs_flat:
        if set(map(type, crcs_flat)) != {int}:
            return False
        try:
            flat = np.array(crcs_flat, np.int64)
        except OverflowError:
            return False
        if flat.min() < 0 or flat.max() > 0xFFFFFFFF:
            return False
    return True


def check_index(index, path: str) -> dict:
    """Check the root index read from the store at ``path``; returns it.

    Raises:
      StoreFormatError: no index, a format_version this version does not read, or a field that
        is missing or of the wrong type / range (names the field, the value and the fix).
    """
    if not isinstance(index, dict):
        raise StoreFormatError(
            f"{path!r} is a Zarr store but has no {layout.INDEX_KEY!r} index "
            "in its root attrs; it was not written by `trajopt-loader export`."
        )
    version = index.get("format_version")
    if version not in layout.READ_FORMAT_VERSIONS:
        raise StoreFormatError(
            f"{path!r} has format_version {version!r}; this version reads "
            f"{', '.join(map(str, layout.READ_FORMAT_VERSIONS))}. Re-export "
            "the data."
        )
    ck = _Checker(path)
    sources = ck.typed("sources", index.get("sources"), dict, "an object {source: {...}}")
    for item in ck.typed("order", index.get("order", []), list, "a list of 'source/motion'"):
        ck.typed("order", item, str, "a list of 'source/motion' strings")
    lists = []  # (path, entries) of every motion: the entries are checked together
    for src, body in sources.items():
        ck.name(f"sources/{src}", src)
        ck.typed(f"sources/{src}", body, dict, "an object with convention and motions")
        ck.typed(
            f"sources/{src}/convention",
            body.get("convention"),
            dict,
            "the source's convention object",
        )
        motions = ck.typed(
            f"sources/{src}/motions",
            body.get("motions"),
            dict,
            "an object {motion: [trajectory, ...]}",
        )
        for motion, entries in motions.items():
            at = f"sources/{src}/motions/{motion}"
            ck.name(at, motion)
            lists.append((at, ck.typed(at, entries, list, "a list of trajectories")))
    if not _columns_ok([e for _, entries in lists for e in entries], version):
        for at, entries in lists:  # per entry, to name the first bad field
            for i, entry in enumerate(entries):
                _check_entry(ck, f"{at}/{i}", entry, version)
    return index
