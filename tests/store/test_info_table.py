"""The columnar trajectory table and the column-wise index check agree with per-entry oracles."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from trajopt_loader.store import TrajectoryStore, layout
from trajopt_loader.store.index_check import _check_entry, _Checker, _columns_ok


@pytest.fixture(scope="module")
def index(cassie_store) -> dict:
    return json.loads((cassie_store / "zarr.json").read_text())["attributes"][layout.INDEX_KEY]


def test_table_matches_per_entry_infos(cassie_store, index):
    store = TrajectoryStore(cassie_store)
    oracle = layout.infos_from_index(index)  # one TrajectoryInfo per entry, built eagerly
    table = store.trajectories
    assert len(table) == len(oracle) == 24
    assert table == oracle and list(table) == list(oracle)
    assert table[-1] == oracle[-1] and table[3:6] == oracle[3:6]
    assert store.lengths.dtype == np.int32 and store.lengths.tolist() == [t.length for t in oracle]
    np.testing.assert_array_equal(store.dts, [t.dt for t in oracle])
    for t in oracle:
        assert store.info(t.path) == t and store.info(t.path).crc32c == t.crc32c
    assert store.keys == tuple(sorted(set.intersection(*(set(t.keys) for t in oracle))))
    walk = [t.traj_id for t in oracle if t.motion == "aslip_walk"]
    assert store.select(motions=["aslip_walk"]).tolist() == walk
    assert store.select(motions=["cassie/aslip_walk"]).tolist() == walk
    assert store.select(sources=["cassie"]).tolist() == list(range(24))
    with pytest.raises(IndexError):
        table[24]


def _per_entry_ok(entries, version) -> bool:
    try:
        for i, e in enumerate(entries):
            _check_entry(_Checker("x"), f"m/{i}", e, version)
    except Exception:
        return False
    return True


def _motion(index):
    return index["sources"]["cassie"]["motions"]["agility_reference"]


def _key(index):
    return _motion(index)[1]["keys"]["qpos"]


EDITS = {
    "untouched": lambda i: None,
    "bool length": lambda i: _motion(i)[1].update(length=True),
    "huge length": lambda i: _motion(i)[2].update(length=2**70),
    "zero length": lambda i: _motion(i)[0].update(length=0),
    "inf dt": lambda i: _motion(i)[0].update(dt=float("inf")),
    "null dt": lambda i: _motion(i)[0].update(dt=None),
    "crc too big": lambda i: _key(i)["crc32c"].__setitem__(0, 2**32),
    "crc huge": lambda i: _key(i)["crc32c"].__setitem__(0, 2**80),
    "crc float": lambda i: _key(i)["crc32c"].__setitem__(0, 1.0),
    "crc missing one": lambda i: _key(i)["crc32c"].pop(),
    "chunk_rows zero": lambda i: _key(i).update(chunk_rows=0),
    "shape negative": lambda i: _key(i).update(shape=[-1]),
    "dtype text": lambda i: _key(i).update(dtype="U4"),
    "padded list": lambda i: _motion(i)[0].update(padded=[]),
    "name unhashable": lambda i: _motion(i)[0].update(name=["a"]),
}


@pytest.mark.parametrize("edit", EDITS)
def test_column_check_accepts_exactly_what_the_per_entry_check_accepts(index, edit):
    index = copy.deepcopy(index)
    EDITS[edit](index)
    entries = _motion(index)
    ok = _per_entry_ok(entries, index["format_version"])
    assert ok == (edit in ("untouched", "null dt"))
    assert _columns_ok(entries, index["format_version"]) == ok
