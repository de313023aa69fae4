"""Store inspection: tree, lengths, dt, conventions, key statistics, and data-quality flags.

Flags:

* **frozen recordings**: the number of distinct rows of every float array per trajectory; a
  trajectory whose array has one distinct row (T > 1) is flagged, and ``qpos`` / ``qvel`` with fewer
  than ``FEW_DISTINCT`` x T distinct rows (T >= 20) are flagged as nearly frozen.
* **velocity vs position / dt**: for hinge and slide coordinates, ``qvel[t, dof]`` is compared with
  the forward difference ``(qpos[t+1, adr] - qpos[t, adr]) / dt`` (see
  :func:`check_velocity_consistency`). Addresses come from a MuJoCo model (``jnt_qposadr`` /
  ``jnt_dofadr`` of hinge and slide joints), or, without a model, from the free/ball-base layout when
  ``nq - nv == 1`` (qpos ``7 + j`` vs qvel ``6 + j``). Other layouts need a model and are skipped.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np

from trajopt_loader.store.layout import TrajectoryInfo

FEW_DISTINCT = 0.1
MIN_CORRELATION = 0.9
SCALE_TOLERANCE = 0.2


@dataclasses.dataclass(frozen=True)
class VelocityCheck:
    """Agreement of ``qvel`` with finite differences of ``qpos`` over hinge/slide coordinates.

    Attributes:
      correlation: Pearson correlation over all (t, joint) samples; nan if a side is constant.
      scale: least-squares ``s`` in ``qvel ~= s * dq/dt`` (1 when velocities and dt are right;
        ``k`` when the stored dt is ``k`` times too small; 0 for all-zero qvel).
      n_joints, n_samples: coordinates and samples compared. flagged: see ``reason``.
    """

    correlation: float
    scale: float
    n_joints: int
    n_samples: int
    flagged: bool
    reason: str = ""


def check_velocity_consistency(qpos, qvel, dt: float, qpos_adr=None, dof_adr=None, *,
                               min_correlation: float = MIN_CORRELATION,
                               scale_tolerance: float = SCALE_TOLERANCE) -> VelocityCheck:
    """Compare ``qvel[t, dof_adr]`` with ``(qpos[t+1, qpos_adr] - qpos[t, qpos_adr]) / dt``.

    Args:
      qpos: float ``[T, nq]``. qvel: float ``[T, nv]``. dt: time step (s).
      qpos_adr, dof_adr: int ``[J]`` addresses of hinge/slide joints; default: free/ball base layout
        (``nq - nv == 1``): ``qpos_adr = 7 + j``, ``dof_adr = 6 + j`` for ``j < nv - 6``.
    Returns:
      a :class:`VelocityCheck`; flagged when correlation < ``min_correlation`` or
      ``|scale - 1| > scale_tolerance``, or when qpos moves and qvel is zero (or the reverse).
    Raises:
      ValueError: ``T < 2``, rows differ, or no addresses and ``nq - nv != 1``.
    """
    qpos, qvel = np.asarray(qpos, np.float64), np.asarray(qvel, np.float64)
    if qpos.ndim != 2 or qvel.ndim != 2 or qpos.shape[0] != qvel.shape[0] or qpos.shape[0] < 2:
        raise ValueError(f"need qpos [T, nq] and qvel [T, nv] with equal T >= 2; got "
                         f"{qpos.shape} and {qvel.shape}.")
    if qpos_adr is None or dof_adr is None:
        if qpos.shape[1] - qvel.shape[1] != 1 or qvel.shape[1] < 7:
            raise ValueError(f"nq={qpos.shape[1]}, nv={qvel.shape[1]}: not a free/ball-base layout "
                             "(nq - nv == 1); pass the joint addresses (or a model).")
        dof_adr = np.arange(6, qvel.shape[1])
        qpos_adr = dof_adr + 1
    qpos_adr, dof_adr = np.asarray(qpos_adr, np.int64), np.asarray(dof_adr, np.int64)
    if qpos_adr.size == 0 or qpos_adr.shape != dof_adr.shape:
        raise ValueError(f"need equal, non-empty joint address lists; got {qpos_adr.size} qpos "
                         f"and {dof_adr.size} dof addresses.")
    fd = ((qpos[1:, qpos_adr] - qpos[:-1, qpos_adr]) / float(dt)).ravel()
    v = qvel[:-1, dof_adr].ravel()
    n = int(v.size)
    fd_c, v_c = fd - fd.mean(), v - v.mean()
    denom = math.sqrt(float(fd_c @ fd_c) * float(v_c @ v_c))
    corr = float(fd_c @ v_c) / denom if denom > 0 else float("nan")
    ff = float(fd @ fd)
    scale = float(v @ fd) / ff if ff > 0 else (1.0 if float(v @ v) == 0 else float("inf"))
    reason = ""
    if ff == 0 and float(v @ v) > 0:
        reason = "qvel is non-zero while these qpos coordinates do not move"
    elif ff > 0 and float(v @ v) == 0:
        reason = "qvel is zero while qpos moves"
    elif ff > 0 and not corr >= min_correlation:
        reason = f"qvel correlates poorly with dq/dt (r={corr:.3f}); wrong velocities or columns?"
    elif ff > 0 and abs(scale - 1.0) > scale_tolerance:
        reason = f"qvel ~= {scale:.3g} x dq/dt; is dt off by a factor {scale:.3g}?"
    return VelocityCheck(corr, scale, int(qpos_adr.size), n, bool(reason), reason)


def model_joint_addresses(model_path: str) -> tuple[int, int, np.ndarray, np.ndarray]:
    """``(nq, nv, qpos_adr, dof_adr)`` of the hinge and slide joints of a MuJoCo model."""
    import mujoco

    m = mujoco.MjModel.from_xml_path(str(model_path))
    kinds = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    ids = [j for j in range(m.njnt) if int(m.jnt_type[j]) in kinds]
    return m.nq, m.nv, np.asarray(m.jnt_qposadr[ids]), np.asarray(m.jnt_dofadr[ids])


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
    """Result of :func:`inspect_store`; ``str(report)`` is the text the ``inspect`` command prints."""

    path: str
    conventions: dict
    trajectories: list
    keys: dict
    notes: list

    @property
    def flags(self) -> list[tuple[str, str]]:
        """``[(trajectory path, flag text), ...]``."""
        return [(t.info.path, f) for t in self.trajectories for f in t.flags]

    def __str__(self) -> str:
        return format_report(self)


def inspect_store(store, *, model_path: str | None = None, keys=None) -> StoreReport:
    """Read every trajectory of ``store`` (a TrajectoryStore) and build a :class:`StoreReport`.

    Args:
      model_path: optional MuJoCo XML giving hinge/slide joint addresses for the velocity check.
      keys: keys to analyse (default: every key of every trajectory).
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
        if "qpos" in data and "qvel" in data and info.length >= 2:
            nq, nv = data["qpos"].shape[1], data["qvel"].shape[1]
            try:
                if addr is not None and (addr[0], addr[1]) == (nq, nv):
                    rep.velocity = check_velocity_consistency(data["qpos"], data["qvel"], info.dt,
                                                              addr[2], addr[3])
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
        notes.append("qvel/qpos check skipped for some trajectories: " +
                     sorted({r.velocity_note for r in reports if r.velocity_note})[0])
    return StoreReport(store.path, convs, reports, stats, notes)


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
