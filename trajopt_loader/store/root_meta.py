"""The root ``zarr.json`` of a store around an export: read before it (:func:`read_existing`), and
for a local store written after it: the index plus consolidated metadata.

``zarr.consolidate_metadata`` re-reads the ``zarr.json`` of every node of the store (~1.9 s per
1,000 clips; about 40 % of a 15,000-clip export). An export already knows everything it would
read: the nodes it wrote (:mod:`trajopt_loader.store.direct_write` returns their metadata) and,
for every other node, the consolidated metadata of the root it replaces (kept current by every
commit and by crash recovery). :func:`root_bytes` assembles the same document zarr writes,
``GroupMetadata.to_dict()`` with the flat ``{"path": node}`` map sorted as zarr sorts it (depth,
then NFKC-casefolded path), serialized with zarr's ``json_indent``;
``tests/store/test_root_meta.py`` compares the bytes with ``zarr.consolidate_metadata``'s after a
first export, a second motion, a second source and an ``overwrite``.

A store whose root holds no consolidated metadata (:func:`flat_metadata` returns None) is
consolidated by zarr instead (:func:`trajopt_loader.store.commit.consolidate`).
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import zarr

from trajopt_loader.errors import ExportError
from trajopt_loader.store import commit, direct_write, layout, zarr_json
from trajopt_loader.store.direct_write import group_node


def read_root(out_dir: Path) -> dict | None:
    """The parsed root ``zarr.json`` of the local store ``out_dir``, or None when it has none.

    Raises:
      ValueError: the file is not JSON. OSError: it cannot be read.
    """
    try:
        return json.loads((out_dir / "zarr.json").read_bytes())
    except FileNotFoundError:
        return None


def flat_metadata(root: dict | None) -> dict | None:
    """``{"source/motion/...": node dict}`` of a parsed root ``zarr.json`` (a new dict; the node
    dicts are shared), ``{}`` for no root, or None when the root holds no consolidated metadata."""
    if root is None:
        return {}
    cm = root.get("consolidated_metadata")
    if not isinstance(cm, dict) or cm.get("kind") != "inline":
        return None
    meta = cm.get("metadata")
    return dict(meta) if isinstance(meta, dict) else None


def replace_motions(flat: dict, source: str, motions: dict) -> None:
    """Put the nodes of the exported ``motions`` ``{motion: {relative path: node}}`` (paths
    relative to the motion group) into ``flat``, in place: each motion's old subtree is removed
    first, and the ``source`` group is added when missing."""
    for k in [k for k in flat if k.startswith(f"{source}/")]:
        parts = k.split("/", 2)
        if parts[1] in motions:
            del flat[k]
    flat.setdefault(source, group_node({}))
    for m, nodes in motions.items():
        flat[f"{source}/{m}"] = group_node({})
        flat.update({f"{source}/{m}/{path}": node for path, node in nodes.items()})


def root_bytes(attributes: dict, flat: dict) -> bytes:
    """The root ``zarr.json`` zarr writes for a group with ``attributes`` whose consolidated
    metadata is ``flat`` (``{path: node dict}``, paths relative to the root).

    The document is ``json.dumps``'s, byte for byte: :mod:`.zarr_json`'s ``orjson`` bytes when
    they are the same, else (e.g. non-ASCII names) with an integer ``json_indent`` each node is
    dumped once per distinct node object (the array metadata of one length is one shared dict:
    :meth:`direct_write._Template.node`) and indented into place.
    """
    order = sorted(flat, key=lambda k: (k.count("/"), unicodedata.normalize("NFKC", k).casefold()))
    indent = zarr.config.get("json_indent")
    doc = {
        "attributes": attributes,
        "zarr_format": 3,
        "consolidated_metadata": {
            "kind": "inline",
            "must_understand": False,
            "metadata": {k: flat[k] for k in order},
        },
        "node_type": "group",
    }
    fast = zarr_json.fast(doc, indent)
    if fast is not None:
        return fast
    if not isinstance(indent, int) or not order:
        return json.dumps(doc, indent=indent, allow_nan=True).encode()
    doc["consolidated_metadata"]["metadata"] = {}
    text = json.dumps(doc, indent=indent, allow_nan=True)
    pad = "\n" + " " * (3 * indent)  # root > consolidated_metadata > metadata > node
    dumped: dict[int, str] = {}
    parts = []
    for k in order:
        node = flat[k]
        frag = dumped.get(id(node))  # ids stay unique: flat holds every node
        if frag is None:
            frag = dumped[id(node)] = json.dumps(node, indent=indent, allow_nan=True).replace(
                "\n", pad
            )
        parts.append(f"{json.dumps(k)}: {frag}")
    head, tail = text.rsplit('"metadata": {}', 1)
    body = ("," + pad).join(parts)
    return f'{head}"metadata": {{{pad}{body}{pad[:-indent]}}}{tail}'.encode()


def write_root(out_dir: Path, root: dict | None, index: dict, source: str, nodes) -> None:
    """Write the root ``zarr.json`` of the local store ``out_dir`` after an export: attributes
    of the old ``root`` (parsed, None for a new store) with the ``index``, and consolidated
    metadata (the old root's, with ``source``'s motions replaced by ``nodes``
    ``{motion: {path: node}}``). One atomic write (zarr's file writer): the commit point.

    ``nodes`` None (written through zarr) or an old root without consolidated metadata: the index
    is written and zarr consolidates the store (it reads every node).
    """
    flat = None if nodes is None else flat_metadata(root)
    if flat is None:
        group = zarr.open_group(str(out_dir), mode="a", use_consolidated=False)
        group.attrs[layout.INDEX_KEY] = index
        commit.consolidate(str(out_dir))
        return
    attrs = dict((root or {}).get("attributes") or {}, **{layout.INDEX_KEY: index})
    replace_motions(flat, source, nodes)
    direct_write.put(out_dir / "zarr.json", root_bytes(attrs, flat))


def store_arg(out: str, storage_options):
    """A zarr store argument for ``out``: the local path, or an fsspec store for a URL."""
    if not layout.is_url(out):
        return layout.local_path(out)
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(out, storage_options=storage_options or {})


def read_existing(out: str, storage_options) -> tuple[dict | None, dict | None]:
    """The existing root index of the export target ``out`` and, for a local store, its parsed
    root ``zarr.json``; ``(None, None)`` if no store is there yet.

    Raises:
      ExportError: ``out`` is not a trajopt-loader store of this format version.
    """
    root = None
    if not layout.is_url(out):
        p = Path(layout.local_path(out))
        if not p.exists() or (p.is_dir() and not any(p.iterdir())):
            return None, None
        try:
            root = read_root(p) if p.is_dir() else None
        except ValueError:
            root = None
        if not isinstance(root, dict) or root.get("node_type") != "group":
            raise ExportError(
                f"output {out!r} exists and is not a Zarr v3 store; expected a new "
                "or trajopt-loader store path. Fix: choose another output path."
            )
        attrs = root.get("attributes")
        index = attrs.get(layout.INDEX_KEY) if isinstance(attrs, dict) else None
    else:
        try:
            group = zarr.open_group(
                store_arg(out, storage_options), mode="r", use_consolidated=False
            )
        except FileNotFoundError:
            return None, None
        index = group.attrs.get(layout.INDEX_KEY)
    if not isinstance(index, dict) or index.get("format_version") != layout.FORMAT_VERSION:
        raise ExportError(
            f"output {out!r} is a Zarr store but not a trajopt-loader store of "
            f"format_version {layout.FORMAT_VERSION}; choose another output path."
        )
    return index, root
