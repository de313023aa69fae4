"""grain internals the pipeline relies on (trajopt_loader/pipeline/grain_adapter.py), checked
against grain's own behaviour. A failure here after a grain upgrade means grain moved or changed
one of them: adapt pipeline/grain_adapter.py (and only it), then widen the grain bound in
pyproject.toml."""

from __future__ import annotations

import grain

from trajopt_loader.pipeline import grain_adapter

UPGRADE = (
    "grain {version}: {what}. trajopt_loader/pipeline/grain_adapter.py relies on it; "
    "adapt that module to the new grain before widening the grain bound in pyproject.toml."
)


def _explain(what: str) -> str:
    return UPGRADE.format(version=grain.__version__, what=what)


def test_private_names_exist():
    from grain._src.python.dataset import dataset as internals

    for name in ("get_next_index", "set_next_index", "get_element_spec"):
        assert callable(getattr(internals, name, None)), _explain(
            f"grain._src.python.dataset.dataset.{name} is gone"
        )
    it = grain.MapDataset.range(4).to_iter_dataset().__iter__()
    for attr in ("_parents", "_ctx"):
        assert hasattr(it, attr), _explain(f"DatasetIterator.{attr} is gone")


def test_next_index_moves_the_iterator():
    it = grain.MapDataset.range(10).map(lambda x: 10 * x).to_iter_dataset().__iter__()
    assert [next(it), next(it)] == [0, 10]
    assert grain_adapter.get_next_index(it) == 2, _explain("_get_next_index is not the position")
    grain_adapter.set_next_index(it, 7)
    assert next(it) == 70, _explain("_set_next_index does not move the iterator")
    assert it.get_state() == {"next_index": 8}, _explain("iterator states changed shape")


def test_element_spec_of_a_dataset():
    ds = grain.MapDataset.range(3).to_iter_dataset()
    try:
        spec = grain_adapter.get_element_spec(ds)
    except NotImplementedError:  # grain declares no spec for this dataset: the call still works
        return
    assert spec is not None, _explain("_element_spec returned None")


def test_replace_parent_swaps_the_tree_and_shares_the_context():
    ds = grain.MapDataset.range(6).to_iter_dataset().map(lambda x: x + 1)
    it = ds.__iter__()
    assert next(it) == 1
    fresh = ds._parent.__iter__()  # a new parent tree at position 0
    old = grain_adapter.replace_parent(it, fresh)
    assert len(old) == 1 and old[0] is not fresh
    assert it._parents == (fresh,), _explain("DatasetIterator._parents is not the parent tuple")
    seen, todo = [], [fresh]
    while todo:
        node = todo.pop()
        seen.append(node._ctx is it._ctx)
        todo.extend(node._parents)
    assert all(seen), _explain("a replaced tree does not share the iterator's context")
    assert [next(it) for _ in range(3)] == [1, 2, 3], _explain("the replaced parent is not read")
    assert grain_adapter.get_next_index(it) == 3, _explain("positions do not follow the new parent")
