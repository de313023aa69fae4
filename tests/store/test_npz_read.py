"""``store.npz_read.read_arrays`` returns what ``np.load(allow_pickle=False)`` returns, or None."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from trajopt_loader.store import npz_read
from trajopt_loader.store.validate import load_trajectory

RNG = np.random.default_rng(3)
ARRAYS = {
    "qpos": RNG.standard_normal((40, 9)).astype(np.float32),
    "qvel": RNG.standard_normal((40, 8)),
    "fortran": np.asfortranarray(RNG.standard_normal((40, 3))),
    "big_endian": RNG.standard_normal((40, 2)).astype(">f8"),
    "body_quat": RNG.standard_normal((40, 3, 4)).astype(np.float16),
    "contact": RNG.integers(0, 2, (40, 2)).astype(bool),
    "ids": RNG.integers(-5, 5, (40,)).astype(np.int64),
    "empty": np.zeros((0, 3)),
    "record": np.zeros(4, dtype=[("a", "<f4"), ("b", "<i2", (2,))]),
    "dt": np.float64(0.01),
    "true_length": np.int32(39),
}


def _load(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for k, w in want.items():
        g = got[k]
        assert g.dtype == w.dtype and g.shape == w.shape, k
        assert g.tobytes(order="A") == w.tobytes(order="A"), k
        assert g.flags.f_contiguous == w.flags.f_contiguous, k
        assert g.flags.c_contiguous == w.flags.c_contiguous and g.flags.writeable, k


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_arrays_equal_np_load(tmp_path, save):
    path = tmp_path / "t.npz"
    save(path, **ARRAYS)
    got = npz_read.read_arrays(path)
    assert got is not None
    _same(got, _load(path))
    for k, a in ARRAYS.items():  # the saved values themselves
        assert np.asarray(a).dtype == got[k].dtype and np.array_equal(got[k], a), k


def test_format_2_header_is_read(tmp_path):
    path = tmp_path / "t.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for k in ("qpos", "qvel"):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, ARRAYS[k], version=(2, 0))
            zf.writestr(f"{k}.npy", buf.getvalue())
    with zipfile.ZipFile(path) as zf:
        assert zf.read("qpos.npy")[6:8] == b"\x02\x00"  # format 2.0
    got = npz_read.read_arrays(path)
    assert got is not None
    _same(got, _load(path))


def _damaged(tmp_path, how: str):
    path = tmp_path / f"{how}.npz"
    if how == "object":
        with zipfile.ZipFile(path, "w") as zf:
            buf = io.BytesIO()
            # writes (never loads) the pickled object array the reader must refuse
            np.lib.format.write_array(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
            zf.writestr("qpos.npy", buf.getvalue())
        return path
    if how == "single_npy":
        with open(path, "wb") as f:  # np.save(path) would add ".npy" to the name
            np.save(f, ARRAYS["qpos"])
        return path
    np.savez(path, **ARRAYS)
    raw = bytearray(path.read_bytes())
    if how == "flip":  # a data byte of the first member: its CRC-32 no longer matches
        raw[200] ^= 0xFF
    elif how == "truncate":
        raw = raw[: len(raw) // 2]
    elif how == "short_data":  # the .npy header promises more rows than it holds; CRCs fine
        buf = io.BytesIO()
        np.lib.format.write_array(buf, ARRAYS["qpos"])
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("qpos.npy", buf.getvalue()[:-8])
        return path
    elif how == "other_member":
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("notes.txt", "hello")
        return path
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    "how", ["object", "single_npy", "flip", "truncate", "short_data", "other_member"]
)
def test_anything_else_is_left_to_np_load(tmp_path, how):
    """None, so ``np.load`` reads it (or raises the error ``store.validate`` names)."""
    assert npz_read.read_arrays(_damaged(tmp_path, how)) is None


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("object", "needs pickle to load"),
        ("single_npy", "is a single .npy array"),
        ("flip", "is corrupt (BadZipFile: Bad CRC-32"),
        ("truncate", "cannot be read as .npz"),
        ("short_data", "key 'qpos': is corrupt (EOF: reading array data"),
    ],
)
def test_export_still_names_the_problem(tmp_path, how, message):
    from trajopt_loader.errors import ExportError

    path = _damaged(tmp_path, how)
    with pytest.raises(ExportError) as e:
        load_trajectory(path, dt=0.01)
    assert f"{path.name}" in str(e.value) and message in str(e.value), str(e.value)


def test_a_file_over_max_bytes_is_left_to_np_load(tmp_path, monkeypatch):
    """Big files go to ``np.load`` (it holds less memory at once); the arrays are the same."""
    path = tmp_path / "t.npz"
    np.savez(path, qpos=ARRAYS["qpos"], qvel=ARRAYS["qvel"], dt=ARRAYS["dt"])
    assert npz_read.read_arrays(path) is not None
    monkeypatch.setattr(npz_read, "MAX_BYTES", path.stat().st_size - 1)
    assert npz_read.read_arrays(path) is None
    t = load_trajectory(path)
    assert t.dt == 0.01 and list(t.arrays) == ["qpos", "qvel"]
    for k in ("qpos", "qvel"):
        assert t.arrays[k].dtype == ARRAYS[k].dtype
        np.testing.assert_array_equal(t.arrays[k], ARRAYS[k])
