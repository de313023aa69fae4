"""Text rendering of a :class:`~trajopt_loader.store.inspect.StoreReport` (the ``inspect`` output)."""

from __future__ import annotations

from collections import defaultdict


def _rng(values, fmt: str = "{:g}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}..{fmt.format(hi)}"


def format_report(report, max_trajs: int = 30) -> str:
    """Tree of sources / motions / trajectories, key table, flags and notes.

    Args:
      report: a StoreReport. max_trajs: per motion, list at most this many trajectories
        (flagged ones are always listed).
    """
    trajs = report.trajectories
    lines = [f"store {report.path}: {len(trajs)} trajectories, "
             f"{sum(t.info.length for t in trajs)} frames"]
    by_motion = defaultdict(list)
    for t in trajs:
        by_motion[(t.info.source, t.info.motion)].append(t)
    for source, conv in report.conventions.items():
        lines.append(f"{source}/  convention {conv.name} (quat {conv.quat_order}, linear velocity "
                     f"{conv.lin_vel_frame} frame, angular velocity {conv.ang_vel_frame} frame)")
        for (src, motion), items in by_motion.items():
            if src != source:
                continue
            lengths = [t.info.length for t in items]
            dts = [t.info.dt for t in items]
            keys = sorted(set.intersection(*(set(t.info.keys) for t in items)))
            lines.append(f"  {motion}/  {len(items)} trajectories, length {_rng(lengths)}, "
                         f"dt {_rng(dts, '{:.6g}')} s, keys {', '.join(keys)}")
            shown = 0
            for t in items:
                if shown >= max_trajs and not t.flags:
                    continue
                shown += 1
                i = t.info
                extra = []
                if i.padded:
                    extra.append(f"padded {i.padded}")
                if i.scalars:
                    extra.append(", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in i.scalars.items()))
                if t.velocity is not None:
                    v = t.velocity
                    extra.append(f"qvel vs dq/dt: r={v.correlation:.4f} scale={v.scale:.4g}")
                if "qpos" in t.distinct_rows:
                    extra.append(f"distinct qpos rows {t.distinct_rows['qpos']}")
                flag = ("  !! " + "; ".join(t.flags)) if t.flags else ""
                lines.append(f"    {i.name:<8} {i.source_file:<16} T={i.length:<6} "
                             f"dt={i.dt:.6g}  " + "  ".join(extra) + flag)
            if len(items) > shown:
                lines.append(f"    ... {len(items) - shown} more (not flagged)")
    lines.append("keys (row shape, dtype, trajectories, min / max / mean over all values):")
    for k in sorted(report.keys):
        s = report.keys[k]
        shapes = " | ".join(str(x) for x in sorted(s.shapes))
        lines.append(f"  {k:<16} {shapes:<10} {'|'.join(sorted(s.dtypes)):<8} "
                     f"{s.n_traj:>4}  {s.min:.6g} / {s.max:.6g} / {s.mean:.6g}")
    flags = report.flags
    lines.append(f"flags: {len(flags)}")
    lines += [f"  {path}: {text}" for path, text in flags]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
