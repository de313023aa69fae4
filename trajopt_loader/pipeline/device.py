"""Double-buffered transfer of host batches onto the JAX device(s).

Stages (the same as ``grain.experimental.device_put``, with a per-leaf sharding and an index check
in the middle stage)::

    dataset ──▶ ThreadPrefetch(host_buffer) ──▶ map(check ints + device_put)
                 host thread: produce batches     runs in the device thread
            ──▶ ThreadPrefetch(device_buffer) ──▶ consumer
                 batches already on device

So the next batch is produced on the host and copied to the device while the consumer's jitted step
runs on the current one. With several JAX processes (``jax.process_count() > 1``) each process holds
a different slice of the env axis, and the device stage builds the global array with
``jax.make_array_from_process_local_data(sharding, local_leaf)`` instead of ``jax.device_put``.

Checkpointing: each grain ``ThreadPrefetch`` stage stores the state of its parent *together with*
every element it buffers and reports, from ``get_state()``, the state recorded with the last element
it handed out. The two stages nest, so :meth:`DeviceIterator.get_state` is the state right after the
last batch the consumer received — batches waiting in either buffer are neither skipped nor repeated
on restore (``tests/pipeline/test_device.py`` checks this at every position). After a batch that
failed to be produced the iterator stays failed until ``set_state``
(:mod:`~trajopt_loader.pipeline.failure`), so catching the error and calling ``next()`` again never
skips that batch.
"""

from __future__ import annotations

import atexit
import copy
import weakref
from collections.abc import Mapping
from typing import Any

import grain
import jax
import numpy as np
from grain.experimental import ThreadPrefetchIterDataset
from jax.sharding import Sharding

from trajopt_loader.errors import CheckpointError
from trajopt_loader.pipeline.failure import FailStopIterator
from trajopt_loader.pipeline.placement import PutOnDevice, local_rows
from trajopt_loader.pipeline.stream_iterators import report_to, with_feedback

_OPEN: weakref.WeakSet[DeviceIterator] = weakref.WeakSet()


@atexit.register
def _close_open_iterators() -> None:
    """Joins the threads of iterators still open at exit, while the modules they use still exist."""
    for it in list(_OPEN):
        it.close()


class DeviceIterator(FailStopIterator):
    """Iterator over batches already on the device; a grain ``DatasetIterator`` (checkpointable).

    Every ``next()`` returns the batch pytree of ``jax.Array``s (dtypes as
    :func:`to_device_dtypes`). Errors raised while producing (in the prefetch threads) are re-raised
    here on ``next()`` with their original type. ``close()``, leaving a ``with`` block, garbage
    collection or interpreter exit stops and joins the prefetch threads.

    ``get_state()`` returns a JSON-serializable dict: the pipeline position right after the last
    batch handed to the caller (for a ``make_dataset`` pipeline ``{"next_index": k, "stream":
    {...}}``, the stream fingerprint nested unchanged); ``set_state(state)`` resumes there (the next
    batch is the one after it), or raises ``CheckpointError`` and stays put.
    Works with ``grain.checkpoint.CheckpointSave/CheckpointRestore`` (see ``pipeline.checkpoint``).

    After an error: the ``next()`` that raised gives the original error; the iterator is then
    failed (:mod:`~trajopt_loader.pipeline.failure`): every later ``next()`` raises an error of the
    same type chained to the original (the read-ahead stages would otherwise skip the failed batch),
    ``get_state()`` stays the position after the last batch handed out, and ``set_state(state)``
    rebuilds all stages (threads included) from ``dataset`` at ``state``, clearing the failure:
    ``it.set_state(it.get_state())`` retries the failed batch once its cause is fixed.
    """

    def __init__(
        self, parent: grain.DatasetIterator, dataset: grain.IterDataset | None = None, feedback=None
    ):
        super().__init__(parent, dataset)
        self._final_state: dict | None = None
        #: the stream's start sampler (``adaptive`` / ``motion_weights`` streams), else None
        self.feedback = feedback
        _OPEN.add(self)

    def __next__(self) -> Any:
        self._assert_not_closed()
        return super().__next__()

    def get_state(self) -> dict[str, Any]:
        if self._closed:
            return copy.deepcopy(self._final_state)
        return with_feedback(copy.deepcopy(self._position()), self.feedback)

    def report_failures(self, failed, fail_step, *, batch_index: int | None = None) -> None:
        """Report which envs of a delivered batch failed, and at which window step.

        Args:
          failed: bool ``[E]`` global array (or this process's ``[E_local]`` rows); each
            process reports its own rows (its addressable shards), and the statistics sum the
            reports of all processes (:mod:`~trajopt_loader.pipeline.feedback`).
          fail_step: int ``[E]`` (or ``[E_local]``) window step in ``[0, W)`` of each failure.
          batch_index: the batch (default: the last one handed out).

        Raises:
          ConfigError: not an adaptive stream, or a bad report
            (:meth:`~trajopt_loader.pipeline.stream_iterators.StreamIterator.report_failures`).
        """
        report_to(
            self.feedback,
            self._position(),
            local_rows(failed),
            local_rows(fail_step),
            batch_index,
        )

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume right after the batch ``state`` was taken at (batches buffered now are dropped).

        A refused state leaves the iterator where it was (buffered batches are produced again; a
        failed iterator stays failed). A failed iterator's stages are rebuilt from its dataset.

        Raises:
          CheckpointError: the pipeline refuses ``state`` (e.g. a ``make_dataset`` stream
            fingerprint that differs, see :mod:`~trajopt_loader.pipeline.fingerprint`), or it does
            not fit the pipeline at all (grain's ``KeyError`` / ``IndexError`` ... as the cause).
        """
        self._assert_not_closed()
        before = None if self.failed else copy.deepcopy(self._parent.get_state())
        live = None if self.feedback is None else self.feedback.state()
        if self.feedback is not None:
            self.feedback.interrupt()  # waiting draws give up, so the threads stop now
        try:
            self._restore(copy.deepcopy(state))
        except (CheckpointError, KeyError, IndexError, TypeError, ValueError) as e:
            if before is not None:
                self._parent.set_state(before)
            if live is not None:
                self.feedback.load(live)
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(
                f"iterator state {str(state)[:200]} does not fit this pipeline "
                f"({type(e).__name__}: {e}); expected a state from get_state() of the same "
                "pipeline, e.g. {'next_index': k}. The iterator stays where it was."
            ) from e

    def close(self) -> None:
        """Stops and joins the prefetch threads; idempotent. ``get_state()`` still works
        afterwards."""
        if self._closed:
            return
        self._final_state = with_feedback(copy.deepcopy(self._position()), self.feedback)
        if self.feedback is not None:
            self.feedback.interrupt()
        super().close()
        self._parents = ()  # release the stages now, while the interpreter is fully alive.
        _OPEN.discard(self)

    def __enter__(self) -> DeviceIterator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __str__(self) -> str:
        return "DeviceIterator"


def device_iterator(
    dataset: grain.IterDataset | grain.MapDataset,
    sharding: Sharding | Mapping[str, Sharding] | None = None,
    *,
    host_buffer: int = 2,
    device_buffer: int = 2,
) -> DeviceIterator:
    """Streams ``dataset``'s batches onto the device(s), double-buffered.

    Args:
      dataset: grain dataset whose elements are pytrees (dicts) of numpy arrays, e.g.
        ``make_dataset(config)``: ``qpos [E, W, nq]`` float, ``step [E, W]`` int32, ``env_id
        [E]``... A ``MapDataset`` is turned into an ``IterDataset`` first.
      sharding: where each batch goes. ``None``: the default device (one process), or the env axis
        split over all devices (several processes). A ``NamedSharding`` such as
        ``NamedSharding(mesh, P("env"))`` applies to every leaf truncated to the leaf's rank
        (``[E]`` leaves split along env, 0-d leaves replicated). A dict maps top-level batch keys to
        shardings.
      host_buffer: batches produced ahead on the host (``>= 0``; 0 = no host thread).
      device_buffer: batches already on the device waiting for the consumer (``>= 0``).

    Returns:
      :class:`DeviceIterator`; ``for batch in it`` or ``next(it)``; use ``with`` or ``close()``.

    Raises:
      TypeError: ``dataset`` is not a grain dataset.
      ValueError: a buffer size is negative; an adaptive stream (``config.adaptive``) whose
        ``lag`` is below ``host_buffer + device_buffer``.
      ShardingError: bad ``sharding`` (on ``next()`` if it only shows on a batch's shapes).
      IndexOverflowError: on ``next()``, an int64 leaf does not fit int32 with x64 off (never
        truncated silently).
    """
    if isinstance(dataset, grain.MapDataset):
        dataset = dataset.to_iter_dataset()
    if not isinstance(dataset, grain.IterDataset):
        raise TypeError(
            f"device_iterator expects a grain IterDataset/MapDataset (e.g. make_dataset(config)), "
            f"got {type(dataset).__name__}."
        )
    for name, value in (("host_buffer", host_buffer), ("device_buffer", device_buffer)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an int >= 0 (batches buffered), got {value!r}.")
    feedback = getattr(dataset, "feedback", None)
    if feedback is not None and feedback.enabled and feedback.lag < host_buffer + device_buffer:
        raise ValueError(
            f"adaptive.lag={feedback.lag} is below host_buffer + device_buffer = "
            f"{host_buffer + device_buffer}: read-ahead batches would wait for "
            "reports of batches not handed out. Fix: raise adaptive.lag or lower "
            "the buffers."
        )
    put = PutOnDevice(sharding, multiprocess=jax.process_count() > 1)
    ds = ThreadPrefetchIterDataset(dataset, prefetch_buffer_size=int(host_buffer))
    ds = ds.map(put)
    ds = ThreadPrefetchIterDataset(ds, prefetch_buffer_size=int(device_buffer))
    return DeviceIterator(ds.__iter__(), ds, feedback)
