"""Batch plot: one streamed batch as a picture of the schedule.

Rows are envs, columns the ``W`` window steps. Each cell is coloured by the trajectory-local
``step`` read (so marching, wrap-around and clamping show as colour ramps, jumps and flat runs);
``valid == False`` cells are hatched grey; a black bar marks where ``loop`` increases inside the
window (a wrap: cyclic continuation starts there); a green triangle left of a row marks
``episode_start``. A strip left of the cells colours each env by its ``traj_id``, labelled with the
trajectory's path when a store is given.
"""

from __future__ import annotations

import itertools

import numpy as np

from trajopt_loader.viz import new_figure, require

BATCH_KEYS = ("step", "loop", "valid", "traj_id", "env_id", "episode_start")


def batch_at(dataset, index: int = 0) -> dict:
    """Element ``index`` (0-based) of a ``make_dataset`` stream, as a dict of numpy arrays.

    Raises:
      ValueError: ``index < 0`` or past the end of a finite stream.
    """
    if index < 0:
        raise ValueError(f"batch index {index} must be >= 0.")
    for batch in itertools.islice(iter(dataset), index, index + 1):
        return {k: np.asarray(v) for k, v in batch.items()}
    raise ValueError(
        f"the stream ended before batch {index}; lower --batch or raise config.num_batches."
    )


def plot_batch(
    batch: dict, store=None, *, max_envs: int = 64, title: str = "", width: float = 11.0
):
    """A figure of one batch's schedule (see the module docstring).

    Args:
      batch: a batch dict with ``step``, ``loop``, ``valid`` ``[E, W]``, ``traj_id``, ``env_id``,
        ``episode_start`` ``[E]`` (what ``make_dataset`` yields).
      store: optional :class:`~trajopt_loader.TrajectoryStore` to label trajectories by path.
      max_envs: draw at most the first ``max_envs`` envs.
      title: figure title.

    Returns:
      ``matplotlib.figure.Figure``.

    Raises:
      MissingKeyError: a key of :data:`BATCH_KEYS` is missing. VizDependencyError: no matplotlib.
    """
    from trajopt_loader.errors import MissingKeyError

    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise MissingKeyError(
            f"batch has no {missing} (keys: {sorted(batch)}); pass a batch of make_dataset."
        )
    mpl = require("matplotlib", "plotting")
    e = min(int(np.asarray(batch["step"]).shape[0]), max_envs)
    step, loop, valid = (np.asarray(batch[k])[:e] for k in ("step", "loop", "valid"))
    traj, env, start = (np.asarray(batch[k])[:e] for k in ("traj_id", "env_id", "episode_start"))
    w = step.shape[1]
    fig = new_figure(width, 1.6 + 0.22 * e)
    ax = fig.add_subplot()
    ids = np.unique(traj)
    ax.imshow(
        (np.searchsorted(ids, traj) % 20)[:, None],
        cmap=mpl.colormaps["tab20"],
        vmin=0,
        vmax=19,
        aspect="auto",
        interpolation="nearest",
        extent=(-2.6, -1.6, e - 0.5, -0.5),
    )
    labels = [
        f"env {int(x)}: traj {int(t)}" + ("" if store is None else f" {store.info(int(t)).path}")
        for x, t in zip(env, traj, strict=True)
    ]
    ax.set_yticks(range(e), labels, fontsize=6)
    im = ax.imshow(step, cmap="viridis", aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="step (trajectory-local index read)", shrink=0.8)
    bad = np.ma.masked_where(valid, np.ones_like(step, float))
    ax.pcolormesh(
        np.arange(w + 1) - 0.5,
        np.arange(e + 1) - 0.5,
        bad,
        cmap="Greys",
        vmin=0,
        vmax=1.5,
        hatch="///",
        alpha=0.8,
        shading="flat",
    )
    r, c = np.nonzero(np.diff(loop, axis=1) > 0)
    ax.vlines(c + 0.5, r - 0.45, r + 0.45, color="black", lw=2.5)
    rows = np.flatnonzero(start)
    ax.plot(np.full(rows.size, -1.05), rows, ">", color="tab:green", ms=6)
    if w <= 32 and e <= 32:
        for i, t in itertools.product(range(e), range(w)):
            ax.text(t, i, int(step[i, t]), ha="center", va="center", fontsize=5, color="white")
    ax.set(
        xlabel="window position t (left strip: trajectory colour)",
        xlim=(-2.6, w - 0.5),
        ylim=(e - 0.5, -0.5),
    )
    n_all = np.asarray(batch["step"]).shape[0]
    head = title or f"one batch: {n_all} envs x {w} steps" + (
        f" (first {e} shown)" if e < n_all else ""
    )
    fig.suptitle(
        f"{head}\ncells: step read; hatched grey: valid=False; black bar: loop +1 (wrap); "
        "green >: episode_start",
        fontsize=8,
    )
    return fig
