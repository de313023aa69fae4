"""A hand-edited or damaged root index fails on open with StoreFormatError naming field and fix."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trajopt_loader.configs import load_config
from trajopt_loader.errors import StoreFormatError
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.store import TrajectoryStore, export_npz, index_check

ENTRY = "sources/s/motions/m/0"


@pytest.fixture
def store(make_npz_tree, tmp_path) -> Path:
    make_npz_tree(tmp_path / "npz", {"m": [12, 13]})
    export_npz(
        tmp_path / "npz", tmp_path / "s.zarr", source="s", progress=False, convention="mujoco"
    )
    return tmp_path / "s.zarr"


def _edit(store: Path, change) -> None:
    """Apply ``change(index)`` to the index in the root zarr.json, as a text editor would."""
    path = store / "zarr.json"
    meta = json.loads(path.read_text())
    change(meta["attributes"]["trajopt_loader"])
    path.write_text(json.dumps(meta))  # NaN is written as the bare token NaN


def _entry(index: dict) -> dict:
    return index["sources"]["s"]["motions"]["m"][0]


CASES = {
    "nan dt": (lambda i: _entry(i).update(dt=float("nan")), f"{ENTRY}/dt", "nan"),
    "negative dt": (lambda i: _entry(i).update(dt=-0.01), f"{ENTRY}/dt", "-0.01"),
    "text dt": (lambda i: _entry(i).update(dt="fast"), f"{ENTRY}/dt", "'fast'"),
    "no dt": (lambda i: _entry(i).pop("dt"), f"{ENTRY}/dt", "'<missing>'"),
    "absurd length": (lambda i: _entry(i).update(length=2**62), f"{ENTRY}/length", str(2**62)),
    "float length": (lambda i: _entry(i).update(length=12.5), f"{ENTRY}/length", "12.5"),
    "no keys": (lambda i: _entry(i).pop("keys"), f"{ENTRY}/keys", "None"),
    "shape text": (
        lambda i: _entry(i)["keys"]["qpos"].update(shape="9"),
        f"{ENTRY}/keys/qpos/shape",
        "'9'",
    ),
    "object dtype": (
        lambda i: _entry(i)["keys"]["qpos"].update(dtype="object"),
        f"{ENTRY}/keys/qpos/dtype",
        "'object'",
    ),
    "crc count": (
        lambda i: _entry(i)["keys"]["qvel"]["crc32c"].append(7),
        f"{ENTRY}/keys/qvel/crc32c",
        "[<crc>, 7]; expected 1 checksums",
    ),
    "chunk key separator": (
        lambda i: _entry(i)["keys"]["qvel"].update(chunk_key_separator="\\"),
        f"{ENTRY}/keys/qvel/chunk_key_separator",
        "'\\\\'; expected '/' or '.'",
    ),
    "no name": (lambda i: _entry(i).pop("name"), f"{ENTRY}/name", "None"),
    "path name": (lambda i: _entry(i).update(name="../../x"), f"{ENTRY}/name", "'../../x'"),
    "motions list": (
        lambda i: i["sources"]["s"].update(motions=["m"]),
        "sources/s/motions",
        "['m']",
    ),
    "order text": (lambda i: i.update(order="s/m"), "order", "'s/m'"),
}


@pytest.mark.parametrize("case", CASES)
def test_malformed_index_raises_store_format_error_naming_the_field(store, case):
    change, field, value = CASES[case]
    _edit(store, change)
    with pytest.raises(StoreFormatError) as e:
        TrajectoryStore(store)
    text = re.sub(r"\[\d{4,}", "[<crc>", str(e.value))
    assert f"index field {field!r} is {value}" in text, text
    assert str(store) in text and "re-export" in text and "\n" not in text


def test_nan_dt_fails_make_dataset_on_open_not_with_stop_iteration(store):
    _edit(store, lambda i: _entry(i).update(dt=float("nan")))
    config = load_config("default", {"num_envs": 2, "window_size": 4, "zarr_path": str(store)})
    with pytest.raises(StoreFormatError, match=f"'{ENTRY}/dt' is nan"):
        make_dataset(config, process_index=0, process_count=1)


def test_untouched_index_opens_and_null_dt_is_unknown(store):
    s = TrajectoryStore(store)
    assert [t.length for t in s.trajectories] == [12, 13] and s.dts.tolist() == [0.01, 0.01]
    _edit(store, lambda i: _entry(i).update(dt=None))  # what `--dt unknown` records
    assert np.isnan(TrajectoryStore(store).dts[0]) and TrajectoryStore(store).dts[1] == 0.01


_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 13),
    st.sampled_from([2**31 - 1, 2**31, 2**32, 2**63, -(2**64)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.sampled_from(["/", ".", "\\", "", "//"]),
    st.lists(st.integers(-3, 2**33), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_FIELDS = (
    ("name",),
    ("length",),
    ("dt",),
    ("keys",),
    ("padded",),
    ("keys", "qpos"),
    ("keys", "qpos", "shape"),
    ("keys", "qpos", "dtype"),
    ("keys", "qpos", "chunk_rows"),
    ("keys", "qpos", "chunk_key_separator"),
    ("keys", "qvel", "crc32c"),
)


@settings(max_examples=400, deadline=None)
@given(
    field=st.sampled_from(_FIELDS),
    value=_JSON_VALUES,
    drop=st.booleans(),
    version=st.sampled_from((1, 2)),
)
def test_fast_column_check_never_passes_an_entry_the_field_check_refuses(
    field, value, drop, version
):
    """``_columns_ok`` (one pass over all entries) is only a shortcut: when it says "fine", the
    per-entry check that names the bad field must agree, for any value in any field."""
    entry = {
        "name": "traj0",
        "length": 12,
        "dt": 0.01,
        "keys": {
            "qpos": {"shape": [9], "dtype": "float64", "chunk_rows": 12, "crc32c": [5]},
            "qvel": {"shape": [8], "dtype": "float64", "chunk_rows": 12, "crc32c": [6]},
        },
        "padded": {},
    }
    assert index_check._columns_ok([entry], version)  # the untouched entry is proven fine
    bad = copy.deepcopy(entry)
    parent = bad
    for name in field[:-1]:
        parent = parent[name]
    if drop:
        parent.pop(field[-1], None)  # chunk_key_separator is optional
    else:
        parent[field[-1]] = value
    entries = [copy.deepcopy(entry), bad]
    try:
        for i, e in enumerate(entries):
            index_check._check_entry(index_check._Checker("s.zarr"), f"m/{i}", e, version)
        refused = False
    except StoreFormatError:
        refused = True
    if refused:
        assert not index_check._columns_ok(entries, version)
