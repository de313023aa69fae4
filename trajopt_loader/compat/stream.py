"""``DoubleBufferStreamer`` (seed API): a producer thread that calls ``window_fn`` and puts the
result on the device while the consumer computes on the previous window.

::

    producer thread: window_fn() ─▶ to_device_dtypes ─▶ jax.device_put ─▶ block_until_ready ─▶ queue
    consumer:        next_window() ◀─ queue
    slots:           queue_size windows at most: the one the consumer holds + queue_size - 1 ahead

Why not :func:`trajopt_loader.pipeline.device_iterator`: that stage prefetches a *grain dataset*,
whose elements are a pure function of their index, through two grain prefetch buffers (host and
device), so several elements are in flight and cannot be dropped on demand. Here ``window_fn`` is a
stateful callable (it usually advances env cursors), so the producer must run a known, small number
of windows ahead and :meth:`DoubleBufferStreamer.reset` must be able to drop them. Placement is
that stage's own code (``pipeline.placement.PutOnDevice``): the same dtype rules
(:func:`~trajopt_loader.pipeline.placement.to_device_dtypes`), per-leaf sharding, divisibility
checks and errors.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import jax
from jax.sharding import Sharding, SingleDeviceSharding

from trajopt_loader.pipeline.placement import PutOnDevice

__all__ = ["DoubleBufferStreamer"]


def _make_put(device) -> Callable[[Any], Any]:
    """``window (pytree of numpy) -> pytree of jax.Array`` on ``device``, transfer finished: the
    device stage of ``device_iterator`` (``pipeline.placement.PutOnDevice``: dtype rules, per-leaf
    sharding, divisibility checks and ``ShardingError`` messages, multi-process assembly)."""
    if isinstance(device, jax.Device):
        device = SingleDeviceSharding(device)
    elif device is not None and not isinstance(device, (Sharding, Mapping)):
        raise TypeError(
            f"device={device!r}: expected None, a jax.Device or a jax.sharding.Sharding "
            "(e.g. NamedSharding(Mesh(jax.devices(), ('env',)), P('env')))."
        )
    put = PutOnDevice(device, multiprocess=jax.process_count() > 1)
    return lambda window: jax.block_until_ready(put(window))


class _Producer:
    """One producer thread; holds no reference to the streamer (so the streamer can be
    collected)."""

    def __init__(self, window_fn: Callable[[], Any], put: Callable[[Any], Any], slots: int):
        self._fn, self._put = window_fn, put
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._slots = threading.Semaphore(slots)  # one per window produced and not yet given back
        self._holding = False  # the consumer holds a window (its slot returns on the next get)
        self._stop = threading.Event()
        self.produced = 0
        self.consumed = 0
        self.thread = threading.Thread(target=self._run, name="DoubleBufferStreamer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self._slots.acquire()
            if self._stop.is_set():
                return
            try:
                item = (True, self._put(self._fn()))
                self.produced += 1
            except BaseException as e:  # handed to the consumer, re-raised there
                item = (False, e)
            if self._stop.is_set():
                return
            self._queue.put(item)
            if not item[0]:
                return

    def get(self, timeout: float | None) -> tuple[bool, Any]:
        if self._holding:  # asking for the next window = done with the previous one
            self._holding = False
            self._slots.release()
        waited = 0.0
        while True:
            try:
                ok, value = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self.thread.is_alive() and self._queue.empty():
                    raise RuntimeError(
                        "the streamer was stopped while waiting for a window; call "
                        "next_window() again to restart it."
                    ) from None
                waited += 0.1
                if timeout is not None and waited >= timeout:
                    raise TimeoutError(
                        f"no window within {timeout} s; window_fn is still running."
                    ) from None
                continue
            if ok:
                self.consumed += 1
                self._holding = True
            return ok, value

    def close(self) -> int:
        """Stops and joins the thread (after an in-flight ``window_fn`` returns); drops queued
        windows; returns how many produced windows were never taken."""
        self._stop.set()
        self._slots.release()  # wake the thread if it waits for a free slot
        if self.thread is not threading.current_thread():
            self.thread.join()
        while not self._queue.empty():
            self._queue.get_nowait()
        return self.produced - self.consumed


class DoubleBufferStreamer:
    """Streams windows from ``window_fn`` to the device from a background thread.

    ``window_fn() -> dict[str, np.ndarray]`` (any pytree of arrays, fixed shapes, e.g. ``qpos
    [E, W, nq]``) runs in the producer thread; its result is converted with
    :func:`~trajopt_loader.pipeline.placement.to_device_dtypes` (with ``jax_enable_x64`` off:
    float64 -> float32, int64 -> int32 range-checked, as JAX would otherwise do silently), put on
    the device and waited for, while the consumer computes on the window it took before.

    **window_fn runs one window ahead** (default ``queue_size=2``, a double buffer): at most
    ``queue_size`` windows exist at once — the one the consumer holds (the last one
    :meth:`next_window` returned; it counts as held until the next call) and ``queue_size - 1``
    prepared ahead. The producer waits for a free slot *before* calling ``window_fn``, so while the
    consumer computes on window ``k``, ``window_fn`` has already run for ``k + 1`` (for up to
    ``k + queue_size - 1``; ``queue_size=1`` = no prefetch, synchronous). Before the first
    ``next_window`` it fills all ``queue_size`` slots. Cursor changes made by the consumer while it
    holds window ``k`` therefore reach window ``k + queue_size`` — unless it calls :meth:`reset`
    first, then changes cursors, then calls :meth:`next_window`.

    Args:
      window_fn: zero-argument callable returning the next host window.
      device: None (default device; with several processes the env axis over all devices, as
        ``device_iterator``), a ``jax.Device``, a ``jax.sharding.Sharding`` applied to each leaf
        truncated to its rank (``NamedSharding(mesh, P("env"))`` splits the env axis), or a dict
        of them keyed like the window (as ``device_iterator``'s ``sharding``).
      queue_size: windows on the device at once, held + prefetched (>= 1; 2 = double buffer).

    Raises:
      TypeError: bad ``device``. ValueError: ``queue_size < 1``. ShardingError (from
      :meth:`next_window`): a leaf's axis does not split over the mesh, as ``device_iterator``.
    """

    def __init__(self, window_fn: Callable[[], Any], device=None, queue_size: int = 2):
        if not callable(window_fn):
            raise TypeError(
                f"window_fn={window_fn!r} is not callable; pass a function returning a "
                "dict of numpy arrays."
            )
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size={queue_size!r}; expected an int >= 1.")
        self._window_fn = window_fn
        self._put = _make_put(device)
        self.queue_size = queue_size
        self._producer: _Producer | None = None
        self._finalizer = None

    @property
    def running(self) -> bool:
        """True while a producer thread is alive."""
        return self._producer is not None and self._producer.thread.is_alive()

    def start(self) -> DoubleBufferStreamer:
        """Starts the producer thread (no-op if running). Returns ``self``."""
        if self._producer is None:
            self._producer = _Producer(self._window_fn, self._put, self.queue_size)
            self._finalizer = weakref.finalize(self, self._producer.close)
            self._finalizer.atexit = False
        return self

    def next_window(self, timeout: float | None = None) -> Any:
        """The next window, already on the device (pytree of ``jax.Array``).

        Starts the producer if it is not running (also after :meth:`stop`, :meth:`reset` or an
        error).

        Raises:
          whatever ``window_fn`` (or the device transfer) raised, same exception object; the
          producer is stopped then. TimeoutError: nothing arrived within ``timeout`` seconds.
          RuntimeError: :meth:`stop` was called from another thread while waiting.
        """
        producer = self.start()._producer
        ok, value = producer.get(timeout)
        if not ok:
            self.stop()
            raise value
        return value

    def stop(self) -> int:
        """Stops and joins the producer thread, also when it waits for a free slot; if ``window_fn``
        is running it is let finish first. Drops prefetched windows. Idempotent.

        Returns:
          int: windows produced (``window_fn`` called) but never returned by :meth:`next_window`.
        """
        producer, self._producer = self._producer, None
        if producer is None:
            return 0
        if self._finalizer is not None:
            self._finalizer.detach()
        return producer.close()

    def reset(self) -> int:
        """Drops the prefetched window(s) and pauses the producer until the next
        :meth:`next_window`.

        Use it to make cursor changes apply to the very next window: ``streamer.reset()``, then
        change the cursors (e.g. ``ds.update_references(...)``), then ``streamer.next_window()``.
        The dropped windows already ran ``window_fn``, so cursors it advances have moved past them.

        Returns:
          int: number of dropped windows (e.g. to rewind cursors by ``dropped * window``).
        """
        return self.stop()

    def __enter__(self) -> DoubleBufferStreamer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __iter__(self) -> DoubleBufferStreamer:
        return self

    def __next__(self) -> Any:
        return self.next_window()
