"""The bytes of a ``zarr.json`` document as zarr writes them, ``json.dumps(doc, indent=...,
allow_nan=True)``, computed with ``orjson`` where that gives the same bytes.

The standard library's encoder runs in Python whenever it indents (its C encoder only writes
compact JSON), ~30 us per trajectory group and ~1.4 s for the root of a 15K-clip store, most of an
export's commit. ``orjson``'s two-space indent follows the same layout rules; its tokens differ in
a few cases (non-ASCII text unescaped, ``NaN`` as ``null``, some float spellings such as
``0.00001`` for ``1e-05``, integers beyond 64 bits refused). :func:`dumps` therefore compares the
compact form of both encoders (the standard library's in C) and uses ``orjson``'s indented
output only when they are equal, i.e. every token is the same; otherwise, or for another
``indent``, it returns the standard library's bytes. Either way the result is
``json.dumps(doc, indent=indent, allow_nan=True).encode()`` (``tests/store/test_zarr_json.py``).
"""

from __future__ import annotations

import json

import orjson

_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=True)


def fast(doc, indent) -> bytes | None:
    """``orjson``'s bytes of ``doc`` when they are the standard library's (see the module
    docstring), else None."""
    if indent != 2:
        return None
    try:
        if orjson.dumps(doc) != _COMPACT.encode(doc).encode():
            return None
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    except (TypeError, ValueError, orjson.JSONEncodeError):  # not JSON orjson writes
        return None


def dumps(doc, indent) -> bytes:
    """``json.dumps(doc, indent=indent, allow_nan=True).encode()``, computed faster when it can
    be (see the module docstring). ``doc``: JSON values (dicts with string keys)."""
    out = fast(doc, indent)
    return out if out is not None else json.dumps(doc, indent=indent, allow_nan=True).encode()
