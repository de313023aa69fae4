"""The root index read straight from the root ``zarr.json``, without building zarr's node tree.

``zarr.open_group`` parses the consolidated metadata of every node (3 per trajectory: ~0.2 ms of
Python each), which made opening a 15K-clip store take seconds although the reader only needs the
index (``layout.INDEX_KEY`` of the root attrs) at open; array handles are opened lazily, and the
bulk first touch (:mod:`.bulk_read`) needs none. :func:`read_root_index` fetches the one file
(one request for a URL, as ``open_root``) and decodes only its ``"attributes"`` object when the
file starts with it (as zarr writes it), the whole JSON otherwise. The attributes are decoded with
``orjson`` (about 1.5x the standard library's speed on a 15K-clip index, whose ~14 MB of JSON
objects are most of the open time); JSON that orjson refuses (``NaN``, integers beyond 64 bits)
is decoded by the standard library, so ``check_index`` names the bad field as before.

Decoding and checking a big index allocates about a million small objects; Python's cyclic
garbage collector would scan the whole heap several times meanwhile (with JAX imported that was
~4x the decode itself, 149 vs 32 ms on 15K clips), and none of these objects is garbage, so
:func:`gc_paused` holds it off for that time.

It returns None whenever that does not work (no file, not JSON, no attributes, a network
error other than a timeout, which raises ``StoreReadError`` as ``open_root`` does): the caller
then opens the root with zarr (:func:`.root.open_root`), which reads the same
attrs or raises the project's error for what is wrong.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re

import orjson

from trajopt_loader.errors import StoreReadError
from trajopt_loader.store import layout, remote

_ATTRS = re.compile(rb'\A\s*\{\s*"attributes"\s*:\s*')
_END = b'\n  },\n  "zarr_format"'


@contextlib.contextmanager
def gc_paused():
    """Hold off the cyclic garbage collector (process-wide) inside the block, if it was on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_attrs(raw: bytes) -> dict | None:
    """The ``"attributes"`` object of a zarr v3 group's ``zarr.json`` bytes, or None."""
    try:
        m = _ATTRS.match(raw)
        if m is not None:  # decode the attributes only, not the consolidated metadata after them
            attrs = None
            end = raw.find(_END)  # where zarr's indented JSON closes them (a guess, checked)
            if end > 0:
                try:
                    attrs = orjson.loads(memoryview(raw)[m.end() : end + 4])
                except orjson.JSONDecodeError:  # a guess cut inside the object, NaN, ...
                    attrs = None
            if attrs is None:  # the attributes object up to wherever it ends in the file
                try:
                    attrs, _ = json.JSONDecoder().raw_decode(raw[m.end() :].decode("utf-8"))
                except ValueError:
                    attrs = None
            if attrs is None:
                return None
        else:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("zarr_format") != 3:
                return None
            attrs = doc.get("attributes")
    except (UnicodeDecodeError, ValueError):
        return None
    return attrs if isinstance(attrs, dict) else None


def _read_attrs_part(file: str, block: int = 1 << 22) -> bytes:
    """The bytes of a local ``zarr.json`` up to where zarr closes its attributes (``_END``), or
    all of it: the consolidated metadata after them (most of a big store's file) is not read."""
    buf = bytearray()
    with open(file, "rb") as f:
        while chunk := f.read(block):
            start = max(0, len(buf) - len(_END))
            buf += chunk
            if buf.find(_END, start) >= 0:
                break
    return bytes(buf)


def read_root_index(path: str, storage_options: dict | None, timeout_s: float, retries: int):
    """The root attrs' index entry of the store at ``path`` (any JSON value; ``check_index``
    validates it), or None when the root ``zarr.json`` could not be read or parsed."""
    try:
        if layout.is_url(path):
            import fsspec

            opts = remote.storage_options_for(path, storage_options, timeout_s)
            fs, base = fsspec.core.url_to_fs(path, **opts)
            raw = remote.retrying(f"{path}/zarr.json", retries, timeout_s)(
                lambda: fs.cat_file(f"{base.rstrip('/')}/zarr.json")
            )
        else:
            head = _read_attrs_part(f"{layout.local_path(path).rstrip('/')}/zarr.json")
            attrs = parse_attrs(head)  # None when the guessed end was wrong: read it all
            if attrs is not None:
                return attrs.get(layout.INDEX_KEY)
            with open(f"{layout.local_path(path).rstrip('/')}/zarr.json", "rb") as f:
                raw = f.read()
    except StoreReadError as e:  # a stalled server: waiting again in open_root would double it
        if isinstance(e.__cause__, TimeoutError):
            raise
        return None
    except Exception:  # noqa: BLE001 - open_root reads it again and names the problem
        return None
    attrs = parse_attrs(raw)
    if attrs is None or layout.INDEX_KEY not in attrs:
        return None
    return attrs[layout.INDEX_KEY]
