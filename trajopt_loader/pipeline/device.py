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
from jax.sharding import NamedSharding, PartitionSpec, Sharding

from trajopt_loader.choices import INT32_MAX, INT32_MIN
from trajopt_loader.errors import CheckpointError, IndexOverflowError, ShardingError
from trajopt_loader.pipeline.failure import FailStopIterator
from trajopt_loader.pipeline.stream_iterators import report_to, with_feedback

_OPEN: weakref.WeakSet[DeviceIterator] = weakref.WeakSet()


@atexit.register
def _close_open_iterators() -> None:
    """Joins the threads of iterators still open at exit, while the modules they use still exist."""
    for it in list(_OPEN):
        it.close()


def _leaf_name(path) -> str:
    return jax.tree_util.keystr(path) or "<batch>"


def to_device_dtypes(batch: Any) -> Any:
    """Returns ``batch`` (a pytree of arrays) with the dtypes JAX keeps when ``jax_enable_x64`` is
    off.

    With x64 off (JAX's default), a 64-bit array entering JAX is silently narrowed to 32 bits, which
    wraps integers ≥ 2**31 (e.g. a global frame index). Here, instead:

    * ``int64`` / ``uint64`` leaves are range-checked and cast to ``int32``;
    * ``float64`` leaves are cast to ``float32`` (what JAX would do, done explicitly).

    With x64 on, leaves are returned unchanged (as numpy arrays). Other dtypes pass through.

    Raises:
      IndexOverflowError: an integer leaf holds a value outside ``[-2**31, 2**31 - 1]``; the message
        names the leaf, the value and its position.
    """
    x64 = bool(jax.config.jax_enable_x64)

    def fix(path, leaf):
        arr = np.asarray(leaf)
        if x64:
            return arr
        if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
            if arr.size:
                lo, hi = arr.min(), arr.max()
                if lo < INT32_MIN or hi > INT32_MAX:
                    bad = np.unravel_index(
                        int(np.argmax((arr < INT32_MIN) | (arr > INT32_MAX))), arr.shape
                    )
                    raise IndexOverflowError(
                        f"batch leaf {_leaf_name(path)} ({arr.dtype}, shape {arr.shape}) holds "
                        f"{arr[bad]} at index {tuple(int(i) for i in bad)}, outside int32 "
                        f"[{INT32_MIN}, {INT32_MAX}]; with jax_enable_x64 off JAX would silently "
                        "truncate it. Fix: keep step indices trajectory-local (int32), or enable "
                        "x64 (jax.config.update('jax_enable_x64', True))."
                    )
            return arr.astype(np.int32)
        if arr.dtype == np.float64:
            return arr.astype(np.float32)
        return arr

    return jax.tree_util.tree_map_with_path(fix, batch)


def _local_rows(x) -> np.ndarray:
    """This process's rows of ``x``: a global ``jax.Array`` spanning processes gives its
    addressable shards in row order; anything else as a numpy array."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
        return np.concatenate([np.asarray(s.data) for s in shards])
    return np.asarray(x)


def leaf_sharding(sharding: Sharding, ndim: int) -> Sharding:
    """Returns the sharding of one ``ndim``-dimensional leaf derived from the batch ``sharding``.

    A :class:`~jax.sharding.NamedSharding` keeps the first ``ndim`` entries of its
    ``PartitionSpec``: with ``P("env")``, a ``[E, W, nq]`` leaf and an ``[E]`` leaf are split along
    env, a 0-d leaf is replicated. Any other sharding (e.g. ``SingleDeviceSharding``) is used as is
    for every leaf.
    """
    if isinstance(sharding, NamedSharding):
        spec = tuple(sharding.spec)[:ndim]
        return NamedSharding(sharding.mesh, PartitionSpec(*spec), memory_kind=sharding.memory_kind)
    return sharding


def default_sharding() -> NamedSharding:
    """Env axis split over every device of every process, in (process index, device id) order:
    ``distributed.env_sharding()``, ``NamedSharding(Mesh(devices, ("env",)), P("env"))``.

    Raises:
      RuntimeError: (from ``jax.devices()``) no JAX backend could be initialized.
    """
    from trajopt_loader.pipeline.distributed import env_sharding

    return env_sharding()


class _PutOnDevice:
    """The device stage: check/cast dtypes, then place every leaf with its sharding."""

    def __init__(self, sharding: Sharding | Mapping[str, Sharding] | None, multiprocess: bool):
        if multiprocess and sharding is None:
            sharding = default_sharding()
        if sharding is not None and not isinstance(sharding, (Sharding, Mapping)):
            raise ShardingError(
                "sharding must be a jax.sharding.Sharding, a dict of them keyed like the batch, "
                f"or None; got {type(sharding).__name__}. Fix: e.g. "
                "NamedSharding(Mesh(jax.devices(), ('env',)), P('env'))."
            )
        self._sharding = sharding
        self._multiprocess = multiprocess

    def _for_leaf(self, path, arr: np.ndarray) -> Sharding | None:
        s = self._sharding
        if isinstance(s, Mapping):
            key = getattr(path[0], "key", None) if path else None
            if key not in s:
                raise ShardingError(
                    f"sharding dict has no entry for batch key {key!r} (has {sorted(s)}). "
                    "Fix: give a sharding for every top-level key of the batch."
                )
            s = s[key]
        if s is None:
            return None
        s = leaf_sharding(s, arr.ndim)
        if isinstance(s, NamedSharding) and not self._multiprocess:
            for dim, axes in enumerate(s.spec):
                names = (axes,) if isinstance(axes, str) else tuple(axes or ())
                parts = int(np.prod([s.mesh.shape[n] for n in names])) if names else 1
                if arr.shape[dim] % parts:
                    raise ShardingError(
                        f"batch leaf {_leaf_name(path)} has shape {arr.shape}; axis {dim} "
                        f"({arr.shape[dim]}) does not split evenly over mesh axes {names} of size "
                        f"{parts}. Fix: choose num_envs as a multiple of {parts}, or a mesh that "
                        "divides it."
                    )
        return s

    def __call__(self, batch: Any) -> Any:
        host = to_device_dtypes(batch)
        if self._sharding is None:
            return jax.device_put(host)
        shardings = jax.tree_util.tree_map_with_path(self._for_leaf, host)
        if not self._multiprocess:
            return jax.device_put(host, shardings)
        try:
            return jax.tree.map(jax.make_array_from_process_local_data, shardings, host)
        except ValueError as e:
            raise ShardingError(
                f"cannot assemble the global batch from this process's local batch "
                f"(process {jax.process_index()} of {jax.process_count()}): {e}. Fix: every "
                "process must hold the same number of envs, and the env axis must split over the "
                "mesh."
            ) from e


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
            _local_rows(failed),
            _local_rows(fail_step),
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
    put = _PutOnDevice(sharding, multiprocess=jax.process_count() > 1)
    ds = ThreadPrefetchIterDataset(dataset, prefetch_buffer_size=int(host_buffer))
    ds = ds.map(put)
    ds = ThreadPrefetchIterDataset(ds, prefetch_buffer_size=int(device_buffer))
    return DeviceIterator(ds.__iter__(), ds, feedback)
