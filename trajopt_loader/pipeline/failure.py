"""Iterators that stay failed after an error, so a caught error neither skips nor repeats a batch.

grain's read-ahead iterators lose the element whose production raised: the error comes out of
``next()``, the element is already taken off the read-ahead buffer, and the next ``next()`` returns
the element after it, while ``get_state()`` stays one element behind (a restore would repeat one).
A caller that catches the error and goes on would silently skip a batch and save a wrong position.
:class:`FailStopIterator` (the base of
:class:`~trajopt_loader.pipeline.stream_iterators.StreamIterator` and
:class:`~trajopt_loader.pipeline.device.DeviceIterator`) makes the iterator *failed* instead:

* the ``next()`` that fails raises the original error, unchanged;
* every later ``next()`` raises an error of the same type chained to the original
  (``__cause__``), whose message repeats it and says how to go on (:func:`raise_again`);
* the position (``get_state()``) is the state from before the failed ``next()``: right after the
  last batch handed to the consumer;
* ``set_state(state)`` rebuilds the underlying grain iterator from its dataset at ``state`` and
  clears the failure: ``it.set_state(it.get_state())`` retries the failed batch once its cause is
  fixed, and a saved ``get_state()`` resumes there in a new pipeline.
"""

from __future__ import annotations

import copy
from typing import Any, NoReturn

import grain

from trajopt_loader.pipeline.grain_adapter import get_next_index, replace_parent, set_next_index


def raise_again(error: BaseException, state: Any) -> NoReturn:
    """Raise ``type(error)(message)`` from ``error`` for a ``next()`` after the failed one.

    The message repeats ``error`` and names the position ``state`` (``{"next_index": k, ...}``).
    An error type that cannot be built from one message is re-raised as the original object.
    """
    k = state.get("next_index") if isinstance(state, dict) else state
    message = (
        f"{type(error).__name__}: {error} (raised again: this iterator failed on the "
        "batch after the last one handed out and stays failed until set_state(); "
        f"get_state() is the position after that last batch, next_index {k}. Fix the "
        "cause, then it.set_state(it.get_state()) retries the failed batch; or restore a "
        "saved state into a new pipeline.)"
    )
    try:
        again = type(error)(message)
    except Exception:  # noqa: BLE001 - an error type built from other arguments
        again = None
    if again is None or type(again) is not type(error):
        raise error
    raise again from error


class FailStopIterator(grain.DatasetIterator):
    """A grain iterator over one ``parent`` iterator that stays failed after an error.

    Args:
      parent: the grain ``DatasetIterator`` batches come from.
      dataset: the grain ``IterDataset`` ``parent`` iterates; a failed iterator's parent is
        rebuilt from it on :meth:`_restore` (None: ``parent.set_state`` is used instead).

    ``next()`` as the module docstring says; subclasses build ``get_state`` / ``set_state`` on
    :meth:`_position` and :meth:`_restore`.
    """

    _MUTATES_ELEMENT_SPEC = False

    def __init__(self, parent: grain.DatasetIterator, dataset: grain.IterDataset | None = None):
        super().__init__(parent)
        self._dataset = dataset
        self._error: BaseException | None = None
        self._failed_state: Any = None

    @property
    def failed(self) -> bool:
        """True from a ``next()`` that raised (other than ``StopIteration``) until a restore."""
        return self._error is not None

    def __next__(self) -> Any:
        if self._error is not None:
            raise_again(self._error, self._failed_state)
        state = self._parent.get_state()
        try:
            return next(self._parent)
        except StopIteration:
            raise
        except BaseException as e:
            self._error, self._failed_state = e, copy.deepcopy(state)
            raise

    def _position(self) -> Any:
        """The parent's state; while failed, its state from before the failed ``next()``."""
        return self._failed_state if self._error is not None else self._parent.get_state()

    def _restore(self, state: Any) -> None:
        """``parent.set_state(state)``; while failed, a parent rebuilt from the dataset at ``state``
        (the old one closed). Clears the failure; if ``set_state`` raises, nothing changes."""
        if self._error is None or self._dataset is None:
            self._parent.set_state(state)
        else:
            fresh = self._dataset.__iter__()
            try:
                fresh.set_state(state)
            except BaseException:
                fresh.close()
                raise
            for parent in replace_parent(self, fresh):
                parent.close()
        self._error = self._failed_state = None

    def _get_next_index(self) -> int:
        if self._error is not None:
            return int(self._failed_state["next_index"])
        return get_next_index(self._parent)

    def _set_next_index(self, index: int) -> None:
        if self._error is not None:
            self._restore(self._failed_state)
        set_next_index(self._parent, index)
