"""Store inspection: tree, lengths, dt, conventions, key statistics, and data-quality flags.

Flags:

* **frozen recordings**: the number of distinct rows of every float array per trajectory; a
  trajectory whose array has one distinct row (T > 1) is flagged, and ``qpos`` / ``qvel`` with fewer
  than ``FEW_DISTINCT`` x T distinct rows (T >= 20) are flagged as nearly frozen.
* **velocity vs position / dt**: :mod:`trajopt_loader.store.velocity`; layouts it cannot
  address without a model are skipped with a note.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np

from trajopt_loader.errors import ModelError
from trajopt_loader.store.layout import TrajectoryInfo
from trajopt_loader.store.time_step import DT_FIX, dt_known
from trajopt_loader.store.velocity import (  # noqa: F401  (re-exported)
    MIN_CORRELATION,
    SCALE_TOLERANCE,
    VelocityCheck,
    check_velocity_consistency,
    model_joint_addresses,
)

FEW_DISTINCT = 0.1


def distinct_rows(a: np.ndarray) -> int:
    """Number of distinct rows of ``a`` ``[T, ...]`` (bitwise equality)."""
    if a.shape[0] == 0:
        return 0
    return int(np.unique(np.ascontiguousarray(a).reshape(a.shape[0], -1), axis=0).shape[0])


@dataclasses.dataclass
class KeyStats:
    """Store-wide statistics of one key: row shapes / dtypes seen, trajectories, min, max, mean."""

    shapes: set = dataclasses.field(default_factory=set)
    dtypes: set = dataclasses.field(default_factory=set)
    n_traj: int = 0
    min: float = math.inf
    max: float = -math.inf
    total: float = 0.0
    count: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


@dataclasses.dataclass
class TrajectoryReport:
    """One trajectory: ``distinct_rows`` per key, flags (strings), velocity check (or None)."""

    info: TrajectoryInfo
    distinct_rows: dict
    flags: list
    velocity: VelocityCheck | None = None
    velocity_note: str = ""


@dataclasses.dataclass
class StoreReport:
    """Result of :func:`inspect_store`; ``str(report)`` is the text the ``inspect`` command prints.

    Attributes:
      path: the store's path or URL.
      conventions: ``{source: Convention}`` as recorded in the store.
      trajectories: one :class:`TrajectoryReport` per trajectory, in ``store.trajectories`` order
        (``distinct_rows`` per key, ``flags`` such as frozen recordings or a qvel that is not
        the derivative of qpos, and the :class:`VelocityCheck` when it could run).
      keys: ``{key: KeyStats}`` over all trajectories (row shapes, dtypes, count, min, max, mean).
      notes: store-wide remarks, e.g. why the velocity check was skipped.
      layouts: ``{source: model layout or None}`` recorded at export (``store.model_layout``).
    """

    path: str
    conventions: dict
    trajectories: list
    keys: dict
    notes: list
    layouts: dict = dataclasses.field(default_factory=dict)

    @property
    def flags(self) -> list[tuple[str, str]]:
        """``[(trajectory path, flag text), ...]``."""
        return [(t.info.path, f) for t in self.trajectories for f in t.flags]

    def __str__(self) -> str:
        return format_report(self)


def inspect_store(store, *, model_path: str | None = None, keys=None) -> StoreReport:
    """Read every trajectory of ``store`` and build a :class:`StoreReport`.

    Runs the frozen-recording and velocity checks.

    Args:
      store: an open ``TrajectoryStore``; every trajectory is read whole (host memory: the
        largest trajectory).
      model_path: optional MuJoCo XML giving hinge/slide joint addresses for the velocity check;
        without it the check runs only for a free-joint layout (``nq - nv == 1``). Sources with
        a recorded model layout are also checked against it (``store.check_model``); a
        difference becomes a note.
      keys: keys to analyse (default: every key of every trajectory).

    Returns:
      The report; ``report.flags`` lists ``(trajectory path, flag text)``.

    Raises:
      ModelNotFoundError / ModelError: ``model_path`` missing or not loadable.
      StoreNotFoundError / StoreFormatError: from opening the store.
    """
    addr, notes = None, []
    if model_path is not None:
        addr = model_joint_addresses(model_path)
    stats: dict[str, KeyStats] = {}
    reports = []
    for info in store.trajectories:
        data = {k: store.read(info.traj_id, k) for k in info.keys if keys is None or k in keys}
        counts, flags = {}, []
        for k, a in data.items():
            s = stats.setdefault(k, KeyStats())
            s.shapes.add(tuple(a.shape[1:]))
            s.dtypes.add(str(a.dtype))
            s.n_traj += 1
            if a.size:
                s.min, s.max = min(s.min, float(a.min())), max(s.max, float(a.max()))
                s.total += float(a.sum(dtype=np.float64))
                s.count += a.size
            if a.dtype.kind != "f":
                continue
            counts[k] = n = distinct_rows(a)
            if info.length > 1 and n == 1:
                flags.append(f"{k} frozen: 1 distinct row of {info.length}")
            elif k in ("qpos", "qvel") and info.length >= 20 and n < FEW_DISTINCT * info.length:
                flags.append(f"{k} nearly frozen: {n} distinct rows of {info.length}")
        rep = TrajectoryReport(info, counts, flags)
        if "qpos" in data and "qvel" in data and info.length >= 2 and not dt_known(info.dt):
            rep.velocity_note = f"dt unknown: {DT_FIX}, to check qvel against qpos"
        elif "qpos" in data and "qvel" in data and info.length >= 2:
            nq, nv = data["qpos"].shape[1], data["qvel"].shape[1]
            try:
                if addr is not None and (addr[0], addr[1]) == (nq, nv):
                    rep.velocity = check_velocity_consistency(
                        data["qpos"], data["qvel"], info.dt, addr[2], addr[3]
                    )
                elif addr is not None:
                    rep.velocity_note = f"model has nq={addr[0]}, nv={addr[1]}; data {nq}, {nv}"
                else:
                    rep.velocity = check_velocity_consistency(data["qpos"], data["qvel"], info.dt)
            except ValueError:
                rep.velocity_note = f"nq={nq}, nv={nv}: pass --model to check qvel against qpos"
            if rep.velocity is not None and rep.velocity.flagged:
                flags.append(f"velocity: {rep.velocity.reason}")
        reports.append(rep)
    convs = {s: store.convention(s) for s in store.sources}
    if any(r.velocity_note for r in reports):
        notes.append(
            "qvel/qpos check skipped for some trajectories: "
            + sorted({r.velocity_note for r in reports if r.velocity_note})[0]
        )
    layouts = {s: store.model_layout(s) for s in store.sources}
    if model_path is not None and any(layouts.values()):
        try:
            store.check_model(model_path, [s for s, lay in layouts.items() if lay])
        except ModelError as e:
            notes.append(str(e))
    return StoreReport(store.path, convs, reports, stats, notes, layouts)


def _layout_text(lay: dict | None) -> str:
    """The model layout recorded for a source, as a suffix of its convention line."""
    if not lay:
        return "; model layout not recorded (exported without --model)"
    return (
        f"; model layout nq {lay['nq']}, nv {lay['nv']}, {len(lay['joint_names'])} joints, "
        f"{lay['nbody']} bodies, fingerprint {lay['fingerprint'][:12]}"
    )


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
    lines = [
        f"store {report.path}: {len(trajs)} trajectories, "
        f"{sum(t.info.length for t in trajs)} frames"
    ]
    by_motion = defaultdict(list)
    for t in trajs:
        by_motion[(t.info.source, t.info.motion)].append(t)
    for source, conv in report.conventions.items():
        lines.append(
            f"{source}/  convention {conv.name} (quat {conv.quat_order}, linear velocity "
            f"{conv.lin_vel_frame} frame, angular velocity {conv.ang_vel_frame} frame)"
            + _layout_text(report.layouts.get(source))
        )
        for (src, motion), items in by_motion.items():
            if src != source:
                continue
            lengths = [t.info.length for t in items]
            dts = [t.info.dt for t in items if dt_known(t.info.dt)]
            n_unknown = len(items) - len(dts)
            rates = [f"{_rng(dts, '{:.6g}')} s"] if dts else []
            rates += [f"unknown ({n_unknown})" if dts else "unknown"] if n_unknown else []
            keys = sorted(set.intersection(*(set(t.info.keys) for t in items)))
            lines.append(
                f"  {motion}/  {len(items)} trajectories, length {_rng(lengths)}, "
                f"dt {', '.join(rates)}, keys {', '.join(keys)}"
            )
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
                    extra.append(
                        ", ".join(
                            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in i.scalars.items()
                        )
                    )
                if t.velocity is not None:
                    v = t.velocity
                    extra.append(f"qvel vs dq/dt: r={v.correlation:.4f} scale={v.scale:.4g}")
                if "qpos" in t.distinct_rows:
                    extra.append(f"distinct qpos rows {t.distinct_rows['qpos']}")
                flag = ("  !! " + "; ".join(t.flags)) if t.flags else ""
                lines.append(
                    f"    {i.name:<8} {i.source_file:<16} T={i.length:<6} "
                    f"dt={f'{i.dt:.6g}' if dt_known(i.dt) else 'unknown'}  "
                    + "  ".join(extra)
                    + flag
                )
            if len(items) > shown:
                lines.append(f"    ... {len(items) - shown} more (not flagged)")
    lines.append("keys (row shape, dtype, trajectories, min / max / mean over all values):")
    for k in sorted(report.keys):
        s = report.keys[k]
        shapes = " | ".join(str(x) for x in sorted(s.shapes))
        lines.append(
            f"  {k:<16} {shapes:<10} {'|'.join(sorted(s.dtypes)):<8} "
            f"{s.n_traj:>4}  {s.min:.6g} / {s.max:.6g} / {s.mean:.6g}"
        )
    flags = report.flags
    lines.append(f"flags: {len(flags)}")
    lines += [f"  {path}: {text}" for path, text in flags]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
