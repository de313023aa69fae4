"""The one place trajopt-loader touches grain internals (private API, ``grain._src`` and ``_``
attributes of grain's dataset classes).

The pipeline relies on exactly these, all in grain's ``grain._src.python.dataset.dataset``:

* :func:`get_next_index` / :func:`set_next_index` -- ``DatasetIterator._get_next_index`` /
  ``_set_next_index``: the position protocol grain's own transforms forward to their parent, which
  the fail-stop and stream iterators (``pipeline/failure.py``, ``pipeline/stream_iterators.py``)
  must forward too.
* :func:`get_element_spec` -- ``IterDataset._element_spec`` of a wrapped dataset.
* :func:`replace_parent` -- ``DatasetIterator._parents`` (the iterator tree) and ``_ctx`` (the
  context grain shares across a tree), to swap a failed parent iterator for a fresh one.

grain is pinned below its next minor release (``pyproject.toml``). On a grain upgrade,
``tests/pipeline/test_grain_adapter.py`` checks each of these still exists and behaves as relied
on; if it fails, change this module only (its failure message names what moved).
"""

from __future__ import annotations

from typing import Any

import grain
from grain._src.python.dataset import dataset as _grain_dataset

__all__ = ["get_element_spec", "get_next_index", "replace_parent", "set_next_index"]


def get_next_index(iterator: grain.DatasetIterator) -> int:
    """The index of the next element ``iterator`` (a grain ``DatasetIterator``) produces."""
    return _grain_dataset.get_next_index(iterator)


def set_next_index(iterator: grain.DatasetIterator, index: int) -> None:
    """Move ``iterator`` so that its next element is number ``index`` (int >= 0)."""
    _grain_dataset.set_next_index(iterator, index)


def get_element_spec(dataset: grain.IterDataset) -> Any:
    """The element spec (a pytree of shape/dtype structs) ``dataset`` declares, without reading."""
    return _grain_dataset.get_element_spec(dataset)


def replace_parent(iterator: grain.DatasetIterator, fresh: grain.DatasetIterator) -> tuple:
    """Make ``fresh`` the only parent of ``iterator`` and give ``fresh``'s whole tree
    ``iterator``'s context, as grain arranges it when it builds a tree. Returns the old parents
    (the caller closes them)."""
    old, iterator._parents = iterator._parents, (fresh,)  # pylint: disable=protected-access
    to_visit = [fresh]
    while to_visit:
        current = to_visit.pop()
        current._ctx = iterator._ctx  # pylint: disable=protected-access
        to_visit.extend(current._parents)  # pylint: disable=protected-access
    return old
