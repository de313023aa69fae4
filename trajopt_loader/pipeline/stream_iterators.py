"""The dataset and iterator whose states carry and check the stream record.

:class:`StreamDataset` wraps the grain pipeline of :func:`~trajopt_loader.pipeline.make_dataset`;
its :class:`StreamIterator` returns ``{"next_index": k, "stream": record}`` from ``get_state()``
and refuses, in ``set_state``, a state saved for another stream (the record and the check:
:mod:`trajopt_loader.pipeline.fingerprint`). A :class:`StreamIterator` stays failed after an
error (:mod:`trajopt_loader.pipeline.failure`).
"""

from __future__ import annotations

from typing import Any

import grain

from trajopt_loader.pipeline.failure import FailStopIterator
from trajopt_loader.pipeline.fingerprint import STATE_KEY, check_state
from trajopt_loader.pipeline.grain_adapter import get_element_spec

__all__ = ["StreamDataset", "StreamIterator"]


class StreamIterator(FailStopIterator):
    """Iterator of a :class:`StreamDataset`: batches of its parent; states carry the stream.
    Stays failed after a ``next()`` that raised until ``set_state``, which rebuilds the parent
    from ``dataset`` (:class:`~trajopt_loader.pipeline.failure.FailStopIterator`)."""

    def __init__(self, parent: grain.DatasetIterator, stream: dict, num_batches: int | None,
                 dataset: grain.IterDataset | None = None):
        super().__init__(parent, dataset)
        self._stream, self._num_batches = stream, num_batches

    def get_state(self) -> dict[str, Any]:
        """``{"next_index": k, "stream": record}`` (the record is shared; copy before editing)."""
        return {**self._position(), STATE_KEY: self._stream}

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume at ``state`` (clears a failure); checked first, so a refused state leaves the
        position (and a failure) unchanged.

        Raises:
          CheckpointError: see :func:`check_state`.
        """
        self._restore(check_state(state, self._stream, num_batches=self._num_batches))

    def __str__(self) -> str:
        return f"StreamIterator(fingerprint={self._stream['fingerprint']}, parent={self._parent})"


class StreamDataset(grain.IterDataset):
    """``parent`` (a grain ``IterDataset``) whose iterators' states carry and check ``stream``.

    Attributes:
      stream: the ``"stream"`` record (:func:`describe_stream`); ``stream["fingerprint"]`` is a
        16-hex-digit id of the config fields and played trajectories.
    """

    def __init__(self, parent: grain.IterDataset, stream: dict, num_batches: int | None = None):
        super().__init__(parent)
        self.stream, self._num_batches = stream, num_batches

    def __iter__(self) -> StreamIterator:
        return StreamIterator(self._parent.__iter__(), self.stream, self._num_batches,
                              self._parent)

    @property
    def _element_spec(self) -> Any:
        return get_element_spec(self._parent)

    def __str__(self) -> str:
        return f"StreamDataset(fingerprint={self.stream['fingerprint']})"
