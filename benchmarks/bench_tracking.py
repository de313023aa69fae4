r"""What streaming costs an MJX tracking env: env-steps/s fed by ``device_iterator`` vs resident.

    python benchmarks/bench_tracking.py [--num-envs 32] [--window-size 32] [--windows 20] [--bodies]
        [--repeats 3] [--physics] [--store STORE] [--data ../shared/data]

The consumer is ``examples/mjx_tracking.py``'s jitted per-window rollout of Cassie (RSI on
``episode_start``, PD towards the look-ahead reference, DeepMimic-style reward, early
termination), kinematics only by default (``mjx.kinematics``; what a CPU can run), full
``mjx.step`` physics with ``--physics`` (for a GPU; on a 2-core CPU keep ``--num-envs`` <= 32).
After one compile, ``--windows`` windows are timed (ending with ``block_until_ready``), median and
minimum of ``--repeats`` interleaved runs, two ways in one run:

  resident    the same batches, all placed on the device beforehand (no input cost)
  streaming   batches from ``device_iterator(make_dataset(config))`` (host pipeline with the
              Cassie references, look-ahead frame, episode origin; double-buffered)

and printed as env-steps/s (``num_envs * window_size`` per window) with streaming / resident.
Without ``--store``, ``aslip_walk`` is exported (``qvel`` derived) to a temporary store.
``--bodies``: exported with every body's state, streamed with the ``ref_body_*`` keys, and the
reward with the body position term (the host pipeline's extra cost shows in streaming).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from trajopt_loader.pipeline.dataset import make_dataset
from trajopt_loader.pipeline.device import device_iterator
from trajopt_loader.store import TrajectoryStore
from trajopt_loader.transforms.references_bodies import store_body_names

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mjx_tracking.py"


def _example():
    spec = importlib.util.spec_from_file_location("mjx_tracking", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed(tracker, carry, batches) -> tuple[float, object]:
    """Seconds to roll ``batches`` out, and the carry after them."""
    t0 = time.perf_counter()
    out = None
    for batch in batches:
        carry, out = tracker.window(carry, batch)
    jax.block_until_ready((carry, out))
    return time.perf_counter() - t0, carry


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--store", type=Path)
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--window-size", type=int, default=32)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--physics", action="store_true")
    parser.add_argument("--bodies", action="store_true", help="body states + body reward term")
    args = parser.parse_args(argv)
    ex = _example()
    with tempfile.TemporaryDirectory() as tmp:
        store_path = args.store or ex.export_aslip(
            args.data, Path(tmp) / "cassie.zarr", args.bodies
        )
        store = TrajectoryStore(str(store_path))
        tracker = ex.Tracker(
            args.data / "cassie" / "cassie.xml",
            float(np.nanmedian(store.dts)),
            physics=args.physics,
            body_names=store_body_names(store) if args.bodies else None,
        )
        config = ex.tracking_config(
            store_path, args.num_envs, args.window_size, None, bodies=args.bodies
        )
        carry = tracker.initial_carry(args.num_envs)
        ds = make_dataset(config, store)
        resident = [
            jax.device_put(b, jax.local_devices()[0])
            for b in itertools.islice(iter(ds), args.windows)
        ]
        t0 = time.perf_counter()
        _, carry = _timed(tracker, carry, resident[:1])  # compile
        print(
            f"compile + first window: {time.perf_counter() - t0:.1f} s "
            f"({'physics' if args.physics else 'kinematics only'}, {args.num_envs} envs, "
            f"W={args.window_size}, {'bodies, ' if args.bodies else ''}"
            f"{jax.devices()[0].platform})"
        )
        times = {"resident": [], "streaming": []}
        with device_iterator(ds) as stream:
            _timed(tracker, carry, itertools.islice(stream, 2))  # fill the buffers
            for _ in range(args.repeats):
                seconds, _ = _timed(tracker, carry, resident)
                times["resident"].append(seconds)
                seconds, _ = _timed(tracker, carry, itertools.islice(stream, args.windows))
                times["streaming"].append(seconds)
    steps = args.num_envs * args.window_size * args.windows
    rate = {k: (steps / statistics.median(v), steps / min(v)) for k, v in times.items()}
    print(f"{'feed':<10} {'env-steps/s (median)':>21} {'(best)':>10}")
    for name, (med, best) in rate.items():
        print(f"{name:<10} {med:>21.0f} {best:>10.0f}")
    print(
        f"streaming / resident throughput: {rate['streaming'][0] / rate['resident'][0]:.3f} "
        f"(median) / {rate['streaming'][1] / rate['resident'][1]:.3f} (best)"
    )


if __name__ == "__main__":
    main()
