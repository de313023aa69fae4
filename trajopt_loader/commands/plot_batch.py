"""``trajopt-loader plot-batch --config=cassie --config.zarr_path=S -o OUT.png``: one batch drawn.

Builds ``make_dataset(config)`` (one process: all envs), takes batch ``--batch`` (0-based) and
draws, per env, its trajectory and the steps it reads, ``valid``, ``loop`` seams and
``episode_start`` (:func:`trajopt_loader.viz.batch.plot_batch`), so the schedule (marching, wrap,
clamp, cyclic continuation, random starts) can be seen. Needs ``pip install
'trajopt-loader[viz]'``. Errors print one line and exit with status 1.
"""

from __future__ import annotations

from absl import flags

from trajopt_loader.commands.common import define, define_config, uses
from trajopt_loader.commands.plot import FIGURE_EXTENSIONS, UsageError, output_path

_F = flags.FLAGS
USAGE = "trajopt-loader plot-batch --config=CONFIG [--config.FIELD=VALUE ...] -o OUT.png"
EXAMPLE = (
    "trajopt-loader plot-batch --config=cassie --config.zarr_path=cassie.zarr "
    "--config.num_envs=8 --batch 2 -o batch.png"
)

define_config()
uses("output", "dpi")
define("integer", "batch", 0, "Which batch of the stream to draw (0-based).")
define("integer", "max-envs", 64, "Draw at most this many envs (the first ones).")


def run(argv: list[str]) -> str:
    """Draw batch ``--batch`` of the configured stream; returns the path written.

    Raises:
      TrajoptLoaderError: bad usage, config, store errors, missing matplotlib.
    """
    from trajopt_loader.configs import validate_config
    from trajopt_loader.pipeline.dataset import make_dataset
    from trajopt_loader.store.reader import TrajectoryStore
    from trajopt_loader.viz.batch import batch_at, plot_batch

    usage = USAGE
    if len(argv) != 1:
        raise UsageError(f"unexpected arguments {argv[1:]}; usage: {usage}")
    if _F.config is None:
        raise UsageError(f"--config is required; usage: {usage}")
    out = output_path(FIGURE_EXTENSIONS, usage)
    config = _F.config
    validate_config(config)
    store = TrajectoryStore(config.zarr_path, cache_bytes=config.cache_bytes)
    batch = batch_at(make_dataset(config, store, process_index=0, process_count=1), _F.batch)
    title = (
        f"{config.zarr_path}: batch {_F.batch}, schedule={config.schedule}, "
        f"{config.num_envs} envs x {config.window_size} steps"
    )
    plot_batch(batch, store, max_envs=_F["max-envs"].value, title=title).savefig(out, dpi=_F.dpi)
    return out


def main(argv: list[str]) -> None:
    """absl entry point: writes the figure and prints its path."""
    print(f"wrote {run(argv)}")
