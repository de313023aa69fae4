"""The dataset and iterator whose states carry and check the stream record.

:class:`StreamDataset` wraps the grain pipeline of :func:`~trajopt_loader.pipeline.make_dataset`;
its :class:`StreamIterator` returns ``{"next_index": k, "stream": record}`` from ``get_state()``
and refuses, in ``set_state``, a state saved for another stream (the record and the check:
:mod:`trajopt_loader.pipeline.fingerprint`). A :class:`StreamIterator` stays failed after an
error (:mod:`trajopt_loader.pipeline.failure`). A stream with a start sampler
(:class:`~trajopt_loader.pipeline.feedback.FailureFeedback`: ``adaptive`` / ``motion_weights``)
adds its statistics to the state (``"feedback"``) and takes failure reports
(:meth:`StreamIterator.report_failures`). Iterate an adaptive dataset with one iterator at a time:
its iterators share the statistics.
"""

from __future__ import annotations

from typing import Any

import grain

from trajopt_loader.errors import CheckpointError
from trajopt_loader.pipeline.failure import FailStopIterator
from trajopt_loader.pipeline.fingerprint import FEEDBACK_KEY, STATE_KEY
from trajopt_loader.pipeline.grain_adapter import get_element_spec
from trajopt_loader.pipeline.state_check import check_state

__all__ = ["StreamDataset", "StreamIterator", "report_to", "with_feedback"]


def with_feedback(state: dict, feedback) -> dict:
    """``state`` with the live ``feedback.state()`` under ``"feedback"`` (None: unchanged)."""
    return state if feedback is None else {**state, FEEDBACK_KEY: feedback.state()}


def report_to(feedback, position: dict, failed, fail_step, batch_index: int | None) -> None:
    """Hand a failure report to ``feedback`` for the iterator at ``position``.

    Raises:
      ConfigError: the stream takes no reports (not adaptive), or a bad report (feedback.py).
    """
    if feedback is None:
        from trajopt_loader.errors import ConfigError

        raise ConfigError(
            "report_failures needs a stream built with config.adaptive.enabled="
            "True and schedule='random'"
        )
    n = int(position["next_index"])
    feedback.report(n - 1 if batch_index is None else int(batch_index), failed, fail_step, n)


class StreamIterator(FailStopIterator):
    """Iterator of a :class:`StreamDataset`: batches of its parent; states carry the stream.
    Stays failed after a ``next()`` that raised until ``set_state``, which rebuilds the parent
    from ``dataset`` (:class:`~trajopt_loader.pipeline.failure.FailStopIterator`)."""

    def __init__(
        self,
        parent: grain.DatasetIterator,
        stream: dict,
        num_batches: int | None,
        dataset: grain.IterDataset | None = None,
        feedback=None,
    ):
        super().__init__(parent, dataset)
        self._stream, self._num_batches = stream, num_batches
        self.feedback = feedback

    def get_state(self) -> dict[str, Any]:
        """``{"next_index": k, "stream": record}`` (the record is shared; copy before editing),
        plus ``"feedback"``: the failure statistics (adaptive / weighted streams)."""
        return with_feedback({**self._position(), STATE_KEY: self._stream}, self.feedback)

    def report_failures(self, failed, fail_step, *, batch_index: int | None = None) -> None:
        """Report which envs of a delivered batch failed, and at which window step.

        Args:
          failed: bool ``[E_local]`` (this process's env rows, batch order).
          fail_step: int ``[E_local]`` window step in ``[0, W)`` of each failure (any value
            where not failed).
          batch_index: the batch (default: the last one handed out, ``next_index - 1``).

        Raises:
          ConfigError: not an adaptive stream; a batch not handed out yet or reported twice;
            wrong shapes or steps. See :mod:`trajopt_loader.pipeline.feedback`.
        """
        report_to(self.feedback, self._position(), failed, fail_step, batch_index)

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume at ``state`` (clears a failure); checked first, so a refused state leaves the
        position (and a failure) unchanged.

        Raises:
          CheckpointError: see :func:`check_state`; an adaptive stream's state without (or with
            a malformed) ``"feedback"``.
        """
        bare = check_state(state, self._stream, num_batches=self._num_batches)
        if self.feedback is None:
            return self._restore(bare)
        if FEEDBACK_KEY not in state:
            raise CheckpointError(
                f"iterator state {{'next_index': {bare['next_index']}, ...}} has "
                "no 'feedback' statistics, which this adaptive stream draws "
                "from. Fix: pass the full state saved by it.get_state()."
            )
        parsed = self.feedback.parse(state[FEEDBACK_KEY])
        self.feedback.interrupt()  # waiting draws give up, so the threads stop now
        try:
            self._restore(bare)
        finally:
            self.feedback.apply(parsed)

    def close(self) -> None:
        """Closes the pipeline; draws waiting for reports give up."""
        if self.feedback is not None:
            self.feedback.abandon()
        super().close()

    def __str__(self) -> str:
        return f"StreamIterator(fingerprint={self._stream['fingerprint']}, parent={self._parent})"


class StreamDataset(grain.IterDataset):
    """``parent`` (a grain ``IterDataset``) whose iterators' states carry and check ``stream``.

    Attributes:
      stream: the ``"stream"`` record (:func:`describe_stream`); ``stream["fingerprint"]`` is a
        16-hex-digit id of the config fields and played trajectories.
      feedback: the start sampler (:class:`~trajopt_loader.pipeline.feedback.FailureFeedback`)
        of ``adaptive`` / ``motion_weights`` streams, else None.
    """

    def __init__(
        self, parent: grain.IterDataset, stream: dict, num_batches: int | None = None, feedback=None
    ):
        super().__init__(parent)
        self.stream, self._num_batches, self.feedback = stream, num_batches, feedback

    def __iter__(self) -> StreamIterator:
        return StreamIterator(
            self._parent.__iter__(), self.stream, self._num_batches, self._parent, self.feedback
        )

    @property
    def _element_spec(self) -> Any:
        return get_element_spec(self._parent)

    def __str__(self) -> str:
        return f"StreamDataset(fingerprint={self.stream['fingerprint']})"
