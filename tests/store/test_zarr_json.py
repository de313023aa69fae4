"""``store.zarr_json.dumps`` is ``json.dumps(doc, indent=..., allow_nan=True)``, byte for byte."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from trajopt_loader.store import zarr_json

_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too (orjson refuses them)
    st.floats(allow_nan=True, allow_infinity=True),  # 1e-05, NaN, -0.0, ...
    st.text(),  # non-ASCII and control characters
    st.text(st.characters(max_codepoint=127)),  # ASCII: orjson's path
)
_DOCS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=5), inner, max_size=4),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(doc=_DOCS, indent=st.sampled_from([2, None, 4]))
def test_bytes_are_the_standard_librarys(doc, indent):
    want = json.dumps(doc, indent=indent, allow_nan=True).encode()
    assert zarr_json.dumps(doc, indent) == want
    fast = zarr_json.fast(doc, indent)
    assert fast is None or fast == want


def test_an_index_entry_takes_the_fast_path():
    entry = {
        "name": "traj0",
        "length": 400,
        "dt": 1 / 30,
        "source_file": "c000.npz",
        "rows_in_file": 400,
        "keys": {"qpos": {"shape": [36], "dtype": "float32", "chunk_rows": 400, "crc32c": [7]}},
        "derived": {},
        "padded": {"action": 1},
        "scalars": {"speed": 1.5},
    }
    doc = {"attributes": entry, "zarr_format": 3, "node_type": "group"}
    want = json.dumps(doc, indent=2, allow_nan=True).encode()
    assert zarr_json.fast(doc, 2) == want
    # where orjson writes other tokens the standard library's bytes are kept
    for other in ({"scalars": {"x": float("nan")}}, {"source_file": "Lauf_ä.npz"}, {"t": 1e-05}):
        odd = dict(doc, attributes=dict(entry, **other))
        assert zarr_json.fast(odd, 2) is None
        assert zarr_json.dumps(odd, 2) == json.dumps(odd, indent=2, allow_nan=True).encode()
