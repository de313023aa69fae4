"""Failure-adaptive start distribution: per (trajectory, time-bin) failure statistics, their
update rule, and the window starts drawn from them (``config.adaptive``, ``motion_weights``).

Bins. Trajectory ``i`` of the played selection (position ``i`` in ``eligible``) with ``c_i``
valid window starts (:func:`~trajopt_loader.pipeline.marching.valid_start_counts`) is cut into
``ceil(c_i / B_i)`` bins of ``B_i = max(1, round(bin_s / dt_i))`` starts (``adaptive.bin_s``
seconds, default 1.0 s as BeyondMimic); the last bin may hold fewer. A trajectory of unknown dt
(NaN, ``store.validate``) has no seconds: ``adaptive.bin_steps`` then gives ``B`` in steps for
every trajectory, and without it :func:`bin_steps_of` refuses adaptive mode. A failure at
trajectory step ``s`` counts in the bin of start ``min(s, c_i - 1)`` (under ``clamp`` the steps
past the last valid start belong to the last bin).

Update rule (one fold per reported batch ``j``, in batch order)::

    f <- (1 - a) * f + a * n_j          # float64 [n_bins], a = adaptive.ema_rate

``n_j`` = number of envs (all processes) of batch ``j`` whose episode failed in each bin.
Start distribution from ``f`` (``w_b`` = static weight of the bin's trajectory, ``motion_weights``;
``u_b`` = valid starts in the bin)::

    g_b = sum_{t<K} d^t f_{min(b+t, last bin of its trajectory)} / sum_{t<K} d^t
    U_b = w_b u_b / sum(w u)        G_b = w_b g_b / sum(w g)
    p_b = (1 - r) G_b + r U_b       (p = U while sum(w g) = 0: no failure yet)

``K`` = ``adaptive.kernel_size``, ``d`` = ``adaptive.kernel_decay``, ``r`` =
``adaptive.uniform_mix``. A draw picks bin ``b`` with probability ``p_b`` and a start uniformly
among its ``u_b`` starts; with ``r = 1`` (or no failure) a draw is uniform over all valid
(trajectory, start) pairs weighted by ``w``, the plain random schedule's distribution.

Sources of the rule and defaults: BeyondMimic (Liao et al. 2025, "BeyondMimic: From Motion
Tracking to Versatile Humanoid Control via Guided Diffusion", Sec. III-F "adaptive sampling";
code github.com/HybridRobotics/whole_body_tracking, ``tasks/tracking/mdp/commands.py``,
``MotionCommandCfg``): 1 s bins, failures counted in the bin of the step they happen at, an EMA
of per-bin failure counts (``adaptive_alpha = 0.001`` per control step), a non-causal kernel
``lambda^t`` looking ahead (``adaptive_kernel_size = 1``, ``adaptive_lambda = 0.8``) with the last
bin replicated, and a uniform term (``adaptive_uniform_ratio = 0.1``). Differences, on purpose:
one fold per batch of ``W`` steps, so the default ``ema_rate = 0.03 ~ 1 - 0.999**32`` matches
0.001 per step at ``W = 32``; the uniform term is a mixture weight (BeyondMimic adds
``ratio / n_bins`` to the raw EMA, whose scale grows with the number of envs), so ``r`` keeps
its meaning at any env count; bins span all played trajectories, each weighted by its static
weight (ProtoMotions-style per-motion weights; ProtoMotions / PHC reweight whole motions).
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.errors import ConfigError

__all__ = [
    "BinLayout",
    "bin_steps_of",
    "draw_starts",
    "draw_within",
    "fold",
    "smooth",
    "start_distribution",
    "trajectory_weights",
]


def bin_steps_of(dts, bin_s: float, bin_steps: int | None) -> np.ndarray:
    """Bin length in steps per played trajectory, int64 ``[n]``.

    Args:
      dts: float64 ``[n]`` time steps (s) of the played trajectories; NaN = unknown.
      bin_s: bin length in seconds (used when ``bin_steps`` is None).
      bin_steps: bin length in steps for every trajectory, or None.

    Raises:
      ConfigError: ``bin_steps`` is None and a dt is unknown or not > 0.
    """
    dts = np.asarray(dts, np.float64)
    if bin_steps:
        return np.full(dts.shape, int(bin_steps), np.int64)
    bad = ~(np.isfinite(dts) & (dts > 0))
    if bad.any():
        raise ConfigError(
            f"adaptive.bin_s={bin_s} s needs each played trajectory's dt, but {int(bad.sum())} of "
            f"{dts.size} have an unknown dt (NaN): seconds cannot be turned into steps. Fix: set "
            "--config.adaptive.bin_steps=N (bin length in steps), or re-export with dt=."
        )
    return np.maximum(1, np.rint(bin_s / dts)).astype(np.int64)


class BinLayout:
    """The bins of the played trajectories, flattened in ``eligible`` order.

    Args:
      counts: int ``[n]`` valid window starts per played trajectory (>= 1).
      bin_steps: int ``[n]`` starts per bin (>= 1), :func:`bin_steps_of`.

    Attributes:
      offset: int64 ``[n + 1]`` first bin of each trajectory; ``total = offset[-1]`` bins.
      owner: int64 ``[total]`` trajectory position of each bin; first: int64 ``[total]`` its first
        start step; width: int64 ``[total]`` its valid starts (>= 1); last: int64 ``[total]`` the
        last bin of its trajectory.
    """

    def __init__(self, counts, bin_steps):
        self.counts = np.asarray(counts, np.int64)
        self.bin_steps = np.asarray(bin_steps, np.int64)
        nbins = -(-self.counts // self.bin_steps)
        self.offset = np.concatenate([[0], np.cumsum(nbins)]).astype(np.int64)
        self.total = int(self.offset[-1])
        self.owner = np.repeat(np.arange(self.counts.size, dtype=np.int64), nbins)
        local = np.arange(self.total, dtype=np.int64) - self.offset[self.owner]
        self.first = local * self.bin_steps[self.owner]
        self.width = np.minimum(self.bin_steps[self.owner], self.counts[self.owner] - self.first)
        self.last = self.offset[self.owner + 1] - 1

    def bin_of(self, position, step) -> np.ndarray:
        """Bin (int64, same shape) of trajectory-local ``step`` of trajectory ``position``."""
        position = np.asarray(position, np.int64)
        step = np.minimum(np.asarray(step, np.int64), self.counts[position] - 1)
        return self.offset[position] + step // self.bin_steps[position]


def fold(stats: np.ndarray, counts: np.ndarray, rate: float) -> np.ndarray:
    """One EMA step ``(1 - rate) * stats + rate * counts`` (float64 ``[n_bins]``, new array)."""
    return (1.0 - rate) * stats + rate * np.asarray(counts, np.float64)


def smooth(stats: np.ndarray, layout: BinLayout, kernel_size: int, decay: float) -> np.ndarray:
    """Non-causal kernel ``decay**t``, ``t < kernel_size``, normalized, within each trajectory
    (its last bin replicated past its end). float64 ``[n_bins]``."""
    if kernel_size <= 1:
        return np.asarray(stats, np.float64)
    index = np.arange(layout.total, dtype=np.int64)
    weights = float(decay) ** np.arange(kernel_size)
    out = np.zeros(layout.total, np.float64)
    for t, w in enumerate(weights):
        out += w * stats[np.minimum(index + t, layout.last)]
    return out / weights.sum()


def start_distribution(
    stats, layout: BinLayout, weights, kernel_size: int, decay: float, uniform_mix: float
) -> np.ndarray:
    """Bin probabilities ``p`` float64 ``[n_bins]`` (module docstring).

    Args:
      stats: float64 ``[n_bins]`` failure EMA ``f``; weights: float ``[n]`` per trajectory.
    """
    w = np.asarray(weights, np.float64)[layout.owner]
    uniform = w * layout.width
    uniform = uniform / uniform.sum()
    failed = w * smooth(np.asarray(stats, np.float64), layout, kernel_size, decay)
    total = failed.sum()
    if not total > 0:
        return uniform
    return (1.0 - uniform_mix) * (failed / total) + uniform_mix * uniform


def draw_starts(
    cdf: np.ndarray, layout: BinLayout, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Starts from uniforms: bin by ``u`` on ``cdf`` (``cumsum(p)``), start by ``v`` within it.

    Args:
      cdf: float64 ``[n_bins]`` cumulative bin probabilities; u, v: float64 ``[E]`` in [0, 1).
    Returns:
      ``(position [E] int64 into eligible, start [E] int64 trajectory-local)``.
    """
    b = np.searchsorted(cdf, u * cdf[-1], side="right")
    b = np.minimum(b, int(np.flatnonzero(np.diff(np.r_[0.0, cdf]) > 0)[-1]))
    start = layout.first[b] + (v * layout.width[b]).astype(np.int64)
    return layout.owner[b], start


def draw_within(
    cdf: np.ndarray, layout: BinLayout, position, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Starts drawn within given trajectories: bin ``b`` of trajectory ``position`` with
    probability ``p_b / sum of p over its bins`` (uniform over its starts if that sum is 0).

    Args:
      cdf: float64 ``[n_bins]`` ``cumsum(p)``; position: int ``[E]`` trajectory positions;
        u, v: float64 ``[E]`` uniforms in [0, 1).
    Returns:
      int64 ``[E]`` trajectory-local starts.
    """
    position = np.asarray(position, np.int64)
    first, last = layout.offset[position], layout.offset[position + 1] - 1
    c = np.r_[0.0, cdf]
    lo, hi = c[first], c[last + 1]
    b = np.searchsorted(cdf, lo + u * (hi - lo), side="right")
    b = np.clip(b, first, last)
    uniform = np.floor(u * layout.counts[position]).astype(np.int64)
    start = layout.first[b] + (v * layout.width[b]).astype(np.int64)
    return np.where(hi > lo, start, uniform)


def trajectory_weights(motion_weights, store, eligible) -> np.ndarray:
    """float64 ``[n]`` static weight of each played trajectory from ``motion_weights``.

    Args:
      motion_weights: pairs ``(name, weight)``, name ``"motion"`` or ``"source/motion"``
        (as ``config.motions``); trajectories no name matches weigh 1; a later pair wins.
      store: the TrajectoryStore; eligible: int ``[n]`` played traj ids.

    Raises:
      ConfigError: a name that matches no played trajectory, a weight < 0 or not finite, or
        all weights 0.
    """
    eligible = np.asarray(eligible, np.int64)
    out = np.ones(eligible.size, np.float64)
    for name, weight in motion_weights:
        weight = float(weight)
        if not (np.isfinite(weight) and weight >= 0):
            raise ConfigError(f"motion_weights[{name!r}]={weight}: expected a finite weight >= 0")
        hit = np.isin(eligible, store.select(motions=(name,)) if _known(store, name) else [])
        if not hit.any():
            raise ConfigError(
                f"motion_weights names {name!r}, which matches none of the "
                f"{eligible.size} played trajectories of {store.path!r} (motions: "
                f"{store.motions()}). Fix: use a played motion's name."
            )
        out[hit] = weight
    if not out.sum() > 0:
        raise ConfigError(
            f"motion_weights={tuple(motion_weights)} gives every played trajectory "
            "weight 0; nothing could be drawn. Fix: give some motion a weight > 0."
        )
    return out


def _known(store, name: str) -> bool:
    return any(name in (t.motion, f"{t.source}/{t.motion}") for t in store.trajectories)
