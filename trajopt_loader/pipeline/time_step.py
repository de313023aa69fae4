"""One time step per stream: the trajectories a config plays must share one dt.

A window of ``W`` steps must mean the same duration in every env, so :func:`check_uniform_dt`
refuses (unless ``config.allow_mixed_dt``) selections whose time steps differ by more than
:data:`DT_TOLERANCE`, or that mix known and unknown dt, with a message naming each motion's
rates and the fixes. With ``config.control_dt`` set the rule is met by construction: every
window samples the stored frames every ``control_dt`` seconds (``transforms.interpolate``), so
trajectories of any known dt stream together, and an unknown dt is refused
(:func:`~trajopt_loader.transforms.interpolate.control_lengths`). How a file's dt is read and
recorded (``UNKNOWN_DT``, ``DT_FIX``) is :mod:`trajopt_loader.store.validate`.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.errors import ConfigError
from trajopt_loader.store.time_step import DT_FIX

__all__ = ["DT_TOLERANCE", "check_uniform_dt", "rate_groups"]

#: ``config.allow_mixed_dt``: ``max(dt) / min(dt) <= 1 + DT_TOLERANCE`` over the trajectories a
#: config plays. 5% admits the per-trajectory periods of one motion (Cassie ``aslip_walk``: one
#: cycle per speed, dt 0.02462-0.02540 s, 3.2%) and refuses rates that differ in kind (Cassie
#: ``agility_reference``: 0.0005 s and 0.0344 s), where a window of ``W`` steps would span
#: 16 ms in one env and 1.1 s in another.
DT_TOLERANCE = 0.05


def rate_groups(ids: np.ndarray, dts: np.ndarray) -> list[np.ndarray]:
    """``ids`` split into groups of compatible dt (sorted by dt; a group spans <= DT_TOLERANCE)."""
    order = np.argsort(dts, kind="stable")
    groups, first = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or dts[order[i]] > dts[order[first]] * (1 + DT_TOLERANCE):
            groups.append(np.sort(ids[order[first:i]]))
            first = i
    return groups


def check_uniform_dt(config, store, eligible) -> None:
    """Refuse to stream trajectories of different time steps together (``config.allow_mixed_dt``
    lifts it; with ``config.control_dt`` every known dt is accepted and an unknown one refused,
    module docstring). ``eligible``: int ``[n]`` traj ids; ``store.dts``: float64 ``[n_traj]``
    seconds, NaN for an unknown dt: trajectories all of unknown dt stream (their rate is one,
    unknown); a mix of known and unknown is refused like a mix of rates.

    Raises:
      ConfigError: with ``control_dt``, a trajectory of unknown dt (names it and the fix);
        without it: known and unknown dt mixed (names the fix: re-export with ``dt=``); or
        ``max(dt) / min(dt) > 1 + DT_TOLERANCE`` over ``eligible``; names each motion
        with its trajectories' dt range, the groups of compatible rate, and the fixes (resample at
        export, restrict ``motions`` / ``traj_ids``, or ``allow_mixed_dt=True``).
    """
    ids = np.unique(np.asarray(eligible, np.int64))
    if config.get("control_dt") is not None:  # one rate by construction: control_dt
        from trajopt_loader.transforms.interpolate import control_lengths

        control_lengths(store, config.control_dt, ids)  # raises for an unknown dt
        return
    if config.allow_mixed_dt or ids.size == 0:
        return
    dts = np.asarray(store.dts, np.float64)[ids]
    unknown = ~np.isfinite(dts)  # unknown dt (NaN, store.validate): one rate of its own
    selection = (
        f"{ids.size} trajectories selected in {store.path!r} (sources="
        f"{tuple(config.sources)}, motions={tuple(config.motions)}"
        + (f", traj_ids={tuple(config.traj_ids)}" if config.assignment == "explicit" else "")
        + ")"
    )
    if unknown.all() or (not unknown.any() and dts.max() <= dts.min() * (1 + DT_TOLERANCE)):
        return
    compose = _unknown_dt_message if unknown.any() else _mixed_dt_message
    raise ConfigError(compose(config, store, ids, dts, selection))


def _unknown_dt_message(config, store, ids, dts, selection: str) -> str:
    """Known and unknown (NaN) dt in one selection: which motions are unknown, and the fixes."""
    unknown = ~np.isfinite(dts)
    kinds = {
        f"{store.trajectories[int(i)].source}/{store.trajectories[int(i)].motion}"
        for i in ids[unknown]
    }
    return (
        f"{int(unknown.sum())} of the {selection} have an unknown dt ({', '.join(sorted(kinds))}"
        f") and {int((~unknown).sum())} a known one ({dts[~unknown].min():.4g}-"
        f"{dts[~unknown].max():.4g} s): a window of {config.window_size} steps would not "
        f"mean one duration. Fix one of: {DT_FIX}; play only one kind (--config.motions / "
        "--config.traj_ids); or stream them mixed on purpose with "
        "--config.allow_mixed_dt=True."
    )


def _mixed_dt_message(config, store, ids, dts, selection: str) -> str:
    """Known rates beyond DT_TOLERANCE: each motion's groups of one rate, and the fixes."""
    infos = [store.trajectories[int(i)] for i in ids]
    by_id = dict(zip(ids.tolist(), infos, strict=True))

    def names(group, total) -> str:
        if len(group) == total:
            return f"{total} trajectories" if total > 1 else by_id[int(group[0])].name
        listed = ", ".join(by_id[int(i)].name for i in group[:4])
        return listed + (f" and {len(group) - 4} more" if len(group) > 4 else "")

    def span(d) -> str:
        lo, hi = f"{d.min():.4g}", f"{d.max():.4g}"
        return f"{lo} s" if lo == hi else f"{lo}-{hi} s"

    motions = {}
    for info, dt in zip(infos, dts, strict=True):
        motions.setdefault(f"{info.source}/{info.motion}", []).append((info.traj_id, dt))
    lines = []
    for motion, rows in motions.items():
        m_ids, m_dts = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        parts = [
            f"{names(g, len(rows))} at dt {span(store.dts[g])}" for g in rate_groups(m_ids, m_dts)
        ]
        lines.append(f"  {motion}: " + "; ".join(parts))
    best = max(rate_groups(ids, dts), key=len)
    whole = [m for m, rows in motions.items() if {r[0] for r in rows} <= set(best.tolist())]
    if config.assignment == "explicit":
        keep = tuple(int(t) for t in config.traj_ids if t in set(best.tolist()))
        restrict = f'--config.traj_ids="{keep!r}"'
    elif sum(len(motions[m]) for m in whole) == len(best):
        restrict = f'--config.motions="{tuple(whole)!r}"'
    else:
        restrict = (
            f'--config.assignment=explicit --config.traj_ids="{tuple(best.tolist())!r}"'
            if len(best) <= 16
            else "--config.assignment=explicit with traj_ids of one rate"
        )
    other = next(i for i in infos if i.traj_id not in set(best.tolist()))
    src, motion = other.source, other.motion
    return (
        f"the {selection} have time steps from {dts.min():.4g} s to {dts.max():.4g} s (x"
        f"{dts.max() / dts.min():.3g}; at most x{1 + DT_TOLERANCE:g} is streamed together): a "
        f"window of {config.window_size} steps would span {config.window_size * dts.min():.4g} s "
        f"in some envs and {config.window_size * dts.max():.4g} s in others.\n"
        + "\n".join(lines)
        + "\nFix one of: resample at export to one rate (`trajopt-loader "
        f"export ROOT {store.path} --source {src} --motion {motion} --model MODEL.xml "
        f"--resample-dt {float(np.median(store.dts[best])):.4g} --overwrite`); play trajectories "
        f"of one rate ({restrict}); sample all of them at one control rate, interpolated "
        "(--config.control_dt=SECONDS); or stream them mixed on purpose with "
        "--config.allow_mixed_dt=True and read each env's rate as store.dts[batch['traj_id']]."
    )
