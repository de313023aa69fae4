"""Failure reports of a closed-loop consumer, and the window starts drawn from them.

:class:`FailureFeedback` is the random schedule's start sampler when ``config.adaptive.enabled``
or ``config.motion_weights`` is set, and the sequential schedule's episode-start sampler with
``adaptive.enabled`` (each episode's first step, within the env's trajectory) (the update rule and
distribution: :mod:`trajopt_loader.pipeline.adaptive`). Its reports come from the iterators'
``report_failures`` (:class:`~trajopt_loader.pipeline.stream_iterators.StreamIterator`,
:class:`~trajopt_loader.pipeline.device.DeviceIterator`).

Determinism. Batch ``k`` draws from the statistics after folding the reports of batches
``0 .. k - lag`` (snapshot ``m = max(0, k - lag + 1)``), folded strictly in batch order, so the
stream is a pure function of (config, seed, report history), whatever the threads do: a grain
worker producing batch ``k`` reads the immutable snapshot ``m``. If the report of a batch below
``m`` has not arrived, the worker waits up to ``adaptive.report_timeout_s`` seconds, then raises
:class:`FeedbackTimeoutError` naming both batches (the iterator then stays failed, it never skips).
``lag >= host_prefetch + device_prefetch`` (``validate_config``): the consumer's read-ahead
never waits for a report of a batch it has not been given yet.

Several processes: each reports its env rows; the per-bin failure counts are summed over all
processes (``jax.experimental.multihost_utils.process_allgather``, a collective: every process
reports every batch, in the same order), so every process folds the same totals and holds the
same statistics.

State (``get_state()["feedback"]``, JSON, :mod:`~trajopt_loader.pipeline.feedback_state`): the
statistics at the oldest snapshot a coming batch may draw from, bit-exact, plus the failure
counts of the batches folded since and reports received ahead of order. Save after reporting
every delivered batch; a batch delivered but not reported at saving time must be reported after
the restore.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from trajopt_loader.errors import (
    CheckpointError,
    ConfigError,
    FeedbackTimeoutError,
    TrajoptLoaderError,
)
from trajopt_loader.pipeline.adaptive import (
    BinLayout,
    draw_starts,
    draw_within,
    fold,
    start_distribution,
)
from trajopt_loader.pipeline.feedback_state import pack_state, parse_state
from trajopt_loader.pipeline.schedules import keyed_rng

__all__ = ["FailureFeedback", "FeedbackTimeoutError"]

_DRAW = 5  # spawn_key purpose of the adaptive draws (schedules' purposes are 1..4)


class _Superseded(TrajoptLoaderError, RuntimeError):
    """A draw waiting for a report was abandoned by ``set_state`` / ``close``."""


class FailureFeedback:
    """Failure statistics, reports and adaptive draws of one stream (module docstring).

    Args:
      layout: :class:`~trajopt_loader.pipeline.adaptive.BinLayout` of the played trajectories.
      weights: float ``[n]`` static weight per played trajectory.
      lengths: int ``[n]`` lengths (steps) of the played trajectories; window_size: ``W``;
        end_policy: ``wrap`` | ``clamp`` (maps a window step to a trajectory step).
      adaptive: ``config.adaptive`` (``enabled``, ``lag``, ``ema_rate``, ``kernel_size``,
        ``kernel_decay``, ``uniform_mix``, ``report_timeout_s``); disabled: static weights only.
      seed, num_envs, lo, hi: the schedule's seed and env shard ``[lo, hi)`` of ``num_envs``.
      process_count: processes that report (> 1: counts are all-gathered).

    Sequential schedules set ``episode_chunks`` (chunks per episode) and ``element`` (``k ->
    (position, start)`` of batch ``k``): :meth:`episode_starts` draws each episode's first step
    within the env's own trajectory from the snapshot of the episode's first chunk.
    """

    def __init__(
        self,
        layout: BinLayout,
        weights,
        lengths,
        window_size: int,
        end_policy: str,
        adaptive,
        *,
        seed: int,
        num_envs: int,
        lo: int,
        hi: int,
        process_count: int = 1,
    ):
        self.layout, self.weights = layout, np.asarray(weights, np.float64)
        self.lengths = np.asarray(lengths, np.int64)
        self.window_size, self.end_policy = int(window_size), end_policy
        self.enabled = bool(adaptive.enabled)
        self.lag = int(adaptive.lag)
        self.rate, self.mix = float(adaptive.ema_rate), float(adaptive.uniform_mix)
        self.kernel = (int(adaptive.kernel_size), float(adaptive.kernel_decay))
        self.timeout_s = float(adaptive.report_timeout_s)
        self.seed, self.num_envs, self.lo, self.hi = int(seed), int(num_envs), int(lo), int(hi)
        self.process_count = int(process_count)
        self.episode_chunks: int | None = None
        self.element = None  # sequential: k -> (position [E_local], start [E_local])
        self._cond = threading.Condition()
        self._generation, self._stopping = 0, False
        self._reset()

    def _reset(self) -> None:
        self._folded = 0
        self._stats = {0: np.zeros(self.layout.total, np.float64)}  # m -> stats after m folds
        self._counts: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # j -> (bins, counts)
        self._pending: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cdf: dict[int, np.ndarray] = {}
        self._produced: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # --- drawing (grain worker threads) ----------------------------------------------------
    def snapshot_index(self, k: int) -> int:
        """Folds batch ``k`` draws from: ``max(0, k - lag + 1)`` (0 when not adaptive)."""
        return max(0, k - self.lag + 1) if self.enabled else 0

    def _cdf_for(self, k: int) -> np.ndarray:
        m = self.snapshot_index(k)
        with self._cond:
            generation, deadline = self._generation, time.monotonic() + self.timeout_s
            while self._folded < m:
                left = deadline - time.monotonic()
                if self._generation != generation or self._stopping:
                    raise _Superseded(f"draw of batch {k} abandoned by set_state/close")
                if left <= 0:
                    raise FeedbackTimeoutError(
                        f"batch {k} draws from the failure reports of batches 0..{k - self.lag} "
                        f"(adaptive.lag={self.lag}), but the report of batch {self._folded} did "
                        f"not arrive within adaptive.report_timeout_s={self.timeout_s} s. Fix: "
                        f"call it.report_failures(...) for every batch handed out (batch "
                        f"{self._folded} first) before asking for batch {self._folded + self.lag}"
                        "; or raise adaptive.lag / report_timeout_s."
                    )
                self._cond.wait(min(left, 0.1))
            cdf = self._cdf.get(m)
            stats = self._stats.get(m)
        if cdf is None:
            if stats is None:
                raise CheckpointError(
                    f"batch {k} needs the statistics after {m} reports, no "
                    "longer held (the stream was moved back past the lag)"
                )
            cdf = np.cumsum(
                start_distribution(stats, self.layout, self.weights, *self.kernel, self.mix)
            )
            with self._cond:
                self._cdf[m] = cdf
        return cdf

    def episode_starts(self, k0: int, position) -> np.ndarray:
        """int64 ``[E_local]`` first steps of the episodes beginning at chunk ``k0``, drawn
        within each env's trajectory ``position`` (int ``[E_local]``).

        Raises:
          FeedbackTimeoutError: a report it depends on did not arrive in time.
        """
        cdf = self._cdf_for(k0)
        rng = keyed_rng(self.seed, _DRAW, k0)
        u, v = rng.random(self.num_envs), rng.random(self.num_envs)
        return draw_within(cdf, self.layout, position, u[self.lo : self.hi], v[self.lo : self.hi])

    def record(self, k: int, position, start) -> None:
        """Remember batch ``k``'s ``(position, start)`` ``[E_local]`` to map its report."""
        with self._cond:
            if self.enabled and k >= self._folded:
                self._produced[k] = (np.asarray(position), np.asarray(start))

    def draw(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(position [E_local] int64 into eligible, start [E_local] int64)`` of batch ``k``.

        Raises:
          FeedbackTimeoutError: a report it depends on did not arrive in time (names batches).
        """
        cdf = self._cdf_for(k)
        rng = keyed_rng(self.seed, _DRAW, k)
        u, v = rng.random(self.num_envs), rng.random(self.num_envs)
        position, start = draw_starts(cdf, self.layout, u[self.lo : self.hi], v[self.lo : self.hi])
        self.record(k, position, start)
        return position, start

    # --- reports (consumer thread) ---------------------------------------------------------
    def report(self, k: int, failed, fail_step, next_index: int) -> None:
        """Fold (in batch order) which envs of batch ``k`` failed, and at which window step.

        Args:
          k: batch index (< ``next_index``, the iterator's position: only delivered batches).
          failed: bool ``[E_local]`` this process's env rows; fail_step: int ``[E_local]`` window
            step in ``[0, W)`` of the failure (read where ``failed``).

        Raises:
          ConfigError: a batch not delivered yet or already reported, wrong shapes or steps.
        """
        k, n = int(k), self.hi - self.lo
        if not self.enabled:
            raise ConfigError(
                "report_failures needs config.adaptive.enabled=True (this stream "
                "draws from static motion_weights only)"
            )
        failed = np.asarray(failed).astype(bool).reshape(-1)
        fail_step = np.asarray(fail_step).astype(np.int64).reshape(-1)
        if failed.shape != (n,) or fail_step.shape != (n,):
            raise ConfigError(
                f"report of batch {k}: failed and fail_step must have this "
                f"process's {n} env rows, got {failed.shape} and {fail_step.shape}"
            )
        if not 0 <= k < next_index:
            raise ConfigError(
                f"report of batch {k}: only batches handed out (0..{next_index - 1})"
                " can be reported"
            )
        with self._cond:
            if k < self._folded or k in self._pending:
                raise ConfigError(f"batch {k} was already reported; report each batch once")
            produced = self._produced.get(k)
        bad = failed & ((fail_step < 0) | (fail_step >= self.window_size))
        if bad.any():
            e = int(np.flatnonzero(bad)[0])
            raise ConfigError(
                f"report of batch {k}: env row {e} failed at window step "
                f"{int(fail_step[e])}, outside [0, {self.window_size})"
            )
        if produced is None:  # handed out before a restore: the element again
            produced = self.element(k) if self.element is not None else self.draw(k)
        position, start = produced
        rows = np.flatnonzero(failed)
        step = start[rows] + fail_step[rows]
        length = self.lengths[position[rows]]
        step = step % length if self.end_policy == "wrap" else np.minimum(step, length - 1)
        dense = np.bincount(self.layout.bin_of(position[rows], step), minlength=self.layout.total)
        if self.process_count > 1:
            from jax.experimental import multihost_utils

            dense = np.asarray(multihost_utils.process_allgather(dense)).sum(axis=0)
        bins = np.flatnonzero(dense).astype(np.int64)
        with self._cond:
            self._pending[k] = (bins, dense[bins].astype(np.int64))
            self._fold_pending()
            self._cond.notify_all()

    def _fold_pending(self) -> None:
        while self._folded in self._pending:
            j = self._folded
            bins, counts = self._counts[j] = self._pending.pop(j)
            dense = np.zeros(self.layout.total, np.float64)
            dense[bins] = counts
            self._stats[j + 1] = fold(self._stats[j], dense, self.rate)
            self._folded = j + 1
        # the oldest snapshot a batch >= folded may draw from (its episode's first chunk)
        first = (
            self._folded - self._folded % self.episode_chunks
            if self.episode_chunks
            else self._folded
        )
        keep = self.snapshot_index(first) if self.enabled else self._folded
        for table in (self._stats, self._counts, self._cdf):
            for m in [m for m in table if m < keep]:
                del table[m]
        for m in [m for m in self._produced if m < self._folded]:
            del self._produced[m]

    @property
    def folded(self) -> int:
        """Reports folded so far (batches ``0 .. folded - 1``)."""
        return self._folded

    def statistics(self) -> np.ndarray:
        """float64 ``[n_bins]`` failure EMA after every report folded so far (a copy)."""
        with self._cond:
            return self._stats[self._folded].copy()

    def probabilities(self) -> np.ndarray:
        """float64 ``[n_bins]`` bin probabilities of the newest statistics."""
        return start_distribution(
            self.statistics(), self.layout, self.weights, *self.kernel, self.mix
        )

    # --- state -----------------------------------------------------------------------------
    def abandon(self) -> None:
        """Abandon the draws waiting for reports now (later draws wait as usual)."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def interrupt(self) -> None:
        """Abandon draws waiting for reports, and refuse to wait, until :meth:`load` (the
        iterators call it before stopping their threads in ``set_state`` / ``close``)."""
        with self._cond:
            self._generation += 1
            self._stopping = True
            self._cond.notify_all()

    def state(self) -> dict:
        """The JSON state (:mod:`~trajopt_loader.pipeline.feedback_state`); equal states give
        bit-identical continuations."""
        with self._cond:
            base = min(self._stats)
            return pack_state(
                self.layout.total,
                self._folded,
                base,
                self._stats[base],
                self._counts,
                self._pending,
            )

    def load(self, state: dict) -> None:
        """Replace the statistics with ``state`` (from :meth:`state`); ends an :meth:`interrupt`.

        Raises:
          CheckpointError: ``state`` is malformed or of another bin layout; nothing changes.
        """
        self.apply(self.parse(state))

    def parse(self, state: dict) -> tuple:
        """Validate ``state`` for :meth:`apply`. Raises CheckpointError (names what is wrong)."""
        return parse_state(state, self.layout.total)

    def apply(self, parsed: tuple) -> None:
        """Install a :meth:`parse` result; ends an :meth:`interrupt`."""
        base_index, base, reports = parsed
        with self._cond:
            self._generation += 1
            self._stopping = False
            self._reset()
            self._stats, self._folded = {base_index: base.copy()}, base_index
            self._pending = dict(reports)
            self._fold_pending()
            self._cond.notify_all()
