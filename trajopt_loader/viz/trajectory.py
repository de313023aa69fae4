"""Trajectory plot: base path from above with heading arrows, height, roll/pitch/yaw, joints, flags.

``plot_trajectories(store, trajs)`` returns a ``matplotlib.figure.Figure`` (save it as PNG, SVG or
PDF with ``fig.savefig(path)``); ``trajopt-loader plot`` is the command around it. Several
trajectories share the axes: one colour per trajectory in the base panels, one colour per joint
and one line style per trajectory in the joint panels. Steps where ``qpos`` repeats its previous
row (or ``qvel``) are shaded grey, steps of a flagged ``qvel`` that disagrees with ``dq/dt`` red
(:mod:`trajopt_loader.viz.data`). With ``refs=True`` each ``ref_*`` key that
:func:`~trajopt_loader.transforms.references.compute_references` returns gets its own panel,
titled by its key name, one line per component.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trajopt_loader.viz import new_figure, require
from trajopt_loader.viz.data import TrajectoryView, resolve_spec, trajectory_view

STYLES = ("-", "--", ":", "-.")
MAX_ARROWS = 12


def _mark_flags(ax, view: TrajectoryView) -> None:
    """Shade runs of flagged steps (grey: frozen qpos rows; red: qvel vs dq/dt mismatch)."""
    for mask, color in ((view.frozen, "0.6"), (view.vel_mismatch, "tab:red")):
        if not mask.any():
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            ax.axvspan(
                view.time[a] - view.dt / 2,
                view.time[b - 1] + view.dt / 2,
                color=color,
                alpha=0.3,
                lw=0,
            )


def _lines(ax, t, y, labels, style, colors=None, label_once=True):
    for j in range(y.shape[1]):
        ax.plot(
            t,
            y[:, j],
            style,
            lw=1,
            color=None if colors is None else colors[j % len(colors)],
            label=labels[j] if label_once else None,
        )


def plot_trajectories(
    store,
    trajs: Sequence = (0,),
    *,
    refs: bool = False,
    model_path: str | None = None,
    robot: str | None = None,
    width: float = 11.0,
):
    """A figure of trajectories ``trajs`` (traj_ids or ``"source/motion/trajN"`` paths).

    Args:
      store: an open :class:`~trajopt_loader.TrajectoryStore` (local or remote).
      trajs: trajectories to draw, overlaid (at most 4 keep their line styles apart).
      refs: also draw the ``ref_*`` signals (needs ``qvel``).
      model_path: MuJoCo XML for joint names / addresses and the velocity check's addresses.
      robot: robot name (``cassie``, ``digit_v3``, ...) when the source is not named after it.
      width: figure width in inches (height follows the number of panels).

    Returns:
      ``matplotlib.figure.Figure``.

    Raises:
      VizDependencyError: matplotlib missing. MissingKeyError / RobotSpecError /
      WindowIndexError: see :func:`~trajopt_loader.viz.data.trajectory_view`.
    """
    trajs = list(trajs)
    if not trajs:
        raise ValueError("plot_trajectories needs at least one trajectory.")
    spec = resolve_spec(store, store.info(trajs[0]).traj_id, robot=robot, model_path=model_path)
    views = [trajectory_view(store, t, spec=spec, model_path=model_path, refs=refs) for t in trajs]
    ref_keys = list(views[0].refs) if refs else []
    has_vel = any(v.joint_vel is not None for v in views)
    n_rows = 3 + has_vel + len(ref_keys)
    fig = new_figure(width, 2.3 * n_rows + 1.0)
    grid = fig.add_gridspec(n_rows, 2, width_ratios=(1, 2))
    ax_xy = fig.add_subplot(grid[0:2, 0])
    ax_z = fig.add_subplot(grid[0, 1])
    ax_rpy = fig.add_subplot(grid[1, 1], sharex=ax_z)
    ax_jp = fig.add_subplot(grid[2, :], sharex=ax_z)
    ax_jv = fig.add_subplot(grid[3, :], sharex=ax_z) if has_vel else None
    ax_refs = [fig.add_subplot(grid[3 + has_vel + i, :], sharex=ax_z) for i in range(len(ref_keys))]
    mpl = require("matplotlib", "plotting")
    cycle = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    joint_colors = [mpl.colormaps["tab20"](i) for i in range(20)]

    for k, v in enumerate(views):
        color, style = cycle[k % len(cycle)], STYLES[k % len(STYLES)]
        ax_xy.plot(v.pos[:, 0], v.pos[:, 1], color=color, lw=1.5, label=v.path)
        step = max(1, len(v.time) // MAX_ARROWS)
        yaw = v.rpy[::step, 2]
        ax_xy.quiver(
            v.pos[::step, 0],
            v.pos[::step, 1],
            np.cos(yaw),
            np.sin(yaw),
            color=color,
            angles="xy",
            width=0.006,
            alpha=0.8,
        )
        ax_z.plot(v.time, v.pos[:, 2], color=color, lw=1.2, label=v.path)
        # the first 3 of the 4 line styles, one per angle
        for j, (name, ls) in enumerate(zip(("roll", "pitch", "yaw"), STYLES, strict=False)):
            ax_rpy.plot(
                v.time,
                np.degrees(v.rpy[:, j]),
                ls,
                color=color,
                lw=1.2,
                label=name if k == 0 else None,
            )
        _lines(ax_jp, v.time, v.joint_pos, v.joint_names, style, joint_colors, k == 0)
        if ax_jv is not None and v.joint_vel is not None:
            _lines(ax_jv, v.time, v.joint_vel, v.joint_names, style, joint_colors, False)
        for ax, key in zip(ax_refs, ref_keys, strict=True):
            y = v.refs[key].reshape(len(v.time), -1)
            _lines(
                ax, v.time, y, [f"[{i}]" for i in range(y.shape[1])], style, joint_colors, k == 0
            )
        for ax in [ax_z, ax_rpy, ax_jp, ax_jv, *ax_refs]:
            if ax is not None:
                _mark_flags(ax, v)

    ax_xy.set(title="base path from above (arrows: heading)", xlabel="x (m)", ylabel="y (m)")
    ax_xy.set_aspect("equal", adjustable="datalim")
    ax_xy.legend(fontsize=7, loc="best")
    ax_z.set(title="base height", ylabel="z (m)")
    ax_rpy.set(title="base roll / pitch / yaw (ZYX; yaw unwrapped)", ylabel="deg")
    ax_rpy.legend(fontsize=7, loc="best", ncol=3)
    ax_jp.set(title="actuated joint positions", ylabel="rad (m for slides)")
    ax_jp.legend(
        fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5), ncol=1 + spec.n_act // 12
    )
    if ax_jv is not None:
        ax_jv.set(title="actuated joint velocities", ylabel="rad/s (m/s)")
    for ax, key in zip(ax_refs, ref_keys, strict=True):
        ax.set(title=key, ylabel="value")
        if views[0].refs[key].reshape(len(views[0].time), -1).shape[1] <= 12:
            ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    (ax_refs[-1] if ax_refs else ax_jv if ax_jv is not None else ax_jp).set_xlabel("time (s)")
    flags = [f"{v.path}: {f}" for v in views for f in v.flags]
    marks = (
        "shaded: grey = qpos or qvel row repeats the previous one, red = qvel disagrees with dq/dt"
    )
    styles = "; ".join(f"{STYLES[k % len(STYLES)]!r} {v.path}" for k, v in enumerate(views))
    fig.suptitle(
        f"{store.path} — robot {spec.name}; line styles: {styles}\n{marks}\n"
        + ("flags: " + "; ".join(flags) if flags else "flags: none"),
        fontsize=8,
    )
    return fig
