"""trajopt_loader.pipeline.failure: an iterator stays failed after an error (no skipped batch, no
off-by-one position) until set_state rebuilds it. Integration with make_dataset and
device_iterator: tests/pipeline/test_fingerprint.py and tests/pipeline/test_device.py."""

from __future__ import annotations

from collections import Counter

import grain
import numpy as np
import pytest
from grain._src.python.dataset import dataset as grain_dataset

from trajopt_loader.pipeline.failure import FailStopIterator, raise_again

POOL = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)  # grain's read-ahead


class Plain(FailStopIterator):
    """The smallest user: states are the parent's."""

    def get_state(self):
        return self._position()

    def set_state(self, state):
        self._restore(state)


def flaky(n: int, fail_at: int, failures: int = 1):
    """Dataset of ints 0..n-1 (as ``{"k": array}``); element ``fail_at`` raises ``OSError`` on its
    first ``failures`` productions. Returns (dataset, calls per element)."""
    calls = Counter()

    def element(k):
        calls[k] += 1
        if k == fail_at and calls[k] <= failures:
            raise OSError(f"element {k} unreadable")
        return {"k": np.int64(k)}

    return grain.MapDataset.range(n).map(element).to_iter_dataset(POOL), calls


def test_grain_read_ahead_alone_skips_the_failed_element():
    """The behaviour guarded against (an oracle of grain itself): after a caught error the read
    pool hands out the element after the failed one, with a position one behind."""
    ds, _ = flaky(8, 3)
    it = ds.__iter__()
    assert [int(next(it)["k"]) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(OSError):
        next(it)
    assert int(next(it)["k"]) == 4 and it.get_state() == {"next_index": 4}


def test_fails_stops_then_set_state_rebuilds_and_retries():
    ds, calls = flaky(8, 3)
    it = Plain(ds.__iter__(), ds)
    assert [int(next(it)["k"]) for _ in range(3)] == [0, 1, 2] and not it.failed
    with pytest.raises(OSError) as first:
        next(it)
    assert str(first.value) == "element 3 unreadable"  # the original error, unchanged
    assert it.failed and it.get_state() == {"next_index": 3}
    assert grain_dataset.get_next_index(it) == 3
    for _ in range(2):
        with pytest.raises(OSError) as again:
            next(it)
        assert type(again.value) is OSError and again.value.__cause__ is first.value
        assert str(again.value) == (
            "OSError: element 3 unreadable (raised again: this iterator failed on the batch after "
            "the last one handed out and stays failed until set_state(); get_state() is the "
            "position after that last batch, next_index 3. Fix the cause, then "
            "it.set_state(it.get_state()) retries the failed batch; or restore a saved state "
            "into a new pipeline.)"
        )
    old_parent = it._parent
    it.set_state(it.get_state())
    assert it._parent is not old_parent and old_parent._closed  # rebuilt; the old one closed
    assert not it.failed and [int(b["k"]) for b in it] == [3, 4, 5, 6, 7]
    assert calls[3] == 2 and it.get_state() == {"next_index": 8}
    with pytest.raises(StopIteration):  # the end is not a failure
        next(it)
    assert not it.failed


def test_refused_restore_keeps_the_failure_and_next_index_moves_a_failed_iterator():
    ds, _ = flaky(8, 2)
    it = Plain(ds.__iter__(), ds)
    next(it), next(it)
    with pytest.raises(OSError):
        next(it)
    with pytest.raises(IndexError, match="out of range"):
        it.set_state({"next_index": 99})
    assert it.failed and it.get_state() == {"next_index": 2}
    grain_dataset.set_next_index(it, 5)  # grain's own positioning also rebuilds
    assert not it.failed and [int(b["k"]) for b in it] == [5, 6, 7]


def test_without_a_dataset_the_parent_is_restored_in_place():
    ds, _ = flaky(8, 1, failures=2)
    it = Plain(ds.__iter__())
    next(it)
    with pytest.raises(OSError):
        next(it)
    with pytest.raises(OSError, match="raised again"):
        next(it)
    it.set_state(it.get_state())
    with pytest.raises(OSError) as info:  # its second production fails too: a new error
        next(it)
    assert str(info.value) == "element 1 unreadable" and info.value.__cause__ is None
    it.set_state(it.get_state())
    assert [int(b["k"]) for b in it] == [1, 2, 3, 4, 5, 6, 7]


def test_an_error_type_not_built_from_one_message_is_raised_as_the_original():
    original = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    with pytest.raises(UnicodeDecodeError) as info:
        raise_again(original, {"next_index": 4})
    assert info.value is original
    with pytest.raises(KeyError, match="raised again: .*next_index 4") as info:
        raise_again(KeyError("qpos"), {"next_index": 4})
    assert info.value.__cause__.args == ("qpos",)
