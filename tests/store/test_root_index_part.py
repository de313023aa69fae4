"""The root index is read from the head of the root zarr.json, equal to zarr's attrs."""

from __future__ import annotations

import json

import zarr

from trajopt_loader.store import layout
from trajopt_loader.store.root_index import _END, _read_attrs_part, read_root_index


def test_head_read_stops_after_the_attributes_and_equals_zarrs_index(cassie_store, tmp_path):
    raw = (cassie_store / "zarr.json").read_bytes()
    end = raw.find(_END)
    assert 0 < end < len(raw) // 2  # the consolidated metadata follows the attributes
    for block in (7, 64, 1 << 22):  # _END split across blocks, and one block for all
        head = _read_attrs_part(str(cassie_store / "zarr.json"), block)
        assert raw.startswith(head) and end + len(_END) <= len(head) < end + len(_END) + block
    want = zarr.open_group(str(cassie_store), mode="r").attrs[layout.INDEX_KEY]
    assert read_root_index(str(cassie_store), None, 5.0, 0) == want
    # attributes after zarr_format (no _END): the whole file is read and parsed
    doc = json.loads(raw)
    moved = tmp_path / "m.zarr"
    moved.mkdir()
    reordered = {"zarr_format": 3, "node_type": "group", "attributes": doc["attributes"]}
    (moved / "zarr.json").write_text(json.dumps(reordered, indent=2))
    assert read_root_index(str(moved), None, 5.0, 0) == want
