r"""Does streaming cost the training step anything? Step time fed by ``device_iterator`` vs resident
data.

    python benchmarks/bench_device_overlap.py [--zarr_path STORE --keys qpos,qvel] [--num_envs 256]
        [--window_size 32] [--hidden 64] [--steps 30] [--repeats 5] [--digit N]

On a GPU machine, one command (4096 envs, Digit-sized rows, streaming vs resident in one run)::

    python benchmarks/bench_device_overlap.py --digit 64 --num_envs 4096 --hidden 256

The consumer is one jitted training step (2-hidden-layer MLP, forward + backward + SGD update,
masked by ``valid``) on the ``[E, W, n]`` window batch. It is timed (after compile, median of
``--repeats`` interleaved runs of ``--steps`` steps, each ending with ``block_until_ready``; the
minimum is printed too, as the machine may be shared) in four ways:

  resident     the same batches, all placed on the device beforehand (the target: no input cost)
  streaming    batches from ``device_iterator(make_dataset(config))``, double-buffered (default 2+2)
  serial       the same without prefetch (``host_buffer=0, device_buffer=0``): produce, copy, step
  host only    ``make_dataset(config)`` alone, no device (what the overlap has to hide)

and printed as a table with ratios to ``resident`` (target for ``streaming``: within 1.10). Without
``--zarr_path`` the bundled Cassie sample's ``aslip_walk`` cycles (one time step) are exported to a
temporary store (``qpos`` only).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from trajopt_loader import device_iterator, export_npz, load_config, make_dataset

SAMPLE = Path(__file__).resolve().parents[1] / "trajopt_loader" / "sample_data" / "cassie"


def make_step(keys, hidden: int):
    """Jitted ``(params, batch) -> (params, loss)``: predict ``x[t+1] - x[t]`` of the first key from
    all keys at ``t``; squared error masked by ``valid``; SGD with step 1e-4."""

    def loss_fn(params, batch):
        x = jnp.concatenate([batch[k] for k in keys], axis=-1)
        y = batch[keys[0]][:, 1:] - batch[keys[0]][:, :-1]
        h = jax.nn.gelu(x[:, :-1] @ params[0])
        h = jax.nn.gelu(h @ params[1])
        pair = (batch["valid"][:, 1:] & batch["valid"][:, :-1])[..., None]
        return jnp.sum(((h @ params[2]) - y) ** 2 * pair) / jnp.maximum(pair.sum(), 1)

    @jax.jit
    def step(params, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        return [p - 1e-4 * g for p, g in zip(params, grads, strict=True)], loss

    def init(n_in: int, n_out: int):
        ks = jax.random.split(jax.random.key(0), 3)
        sizes = [(n_in, hidden), (hidden, hidden), (hidden, n_out)]
        return [jax.random.normal(k, s) / np.sqrt(s[0]) for k, s in zip(ks, sizes, strict=True)]

    return step, init


def time_run(step, params, batches) -> float:
    """Seconds for running ``step`` over the iterable ``batches`` (until it ends), blocked at the
    end."""
    t0 = time.perf_counter()
    for batch in batches:
        params, loss = step(params, batch)
    jax.block_until_ready((params, loss))
    return time.perf_counter() - t0


def bench(config, steps: int, repeats: int, hidden: int) -> dict[str, list[float]]:
    """Seconds per step of each mode (see the module docstring), one entry per repeat."""
    keys = tuple(config["keys"])
    step, init = make_step(keys, hidden)
    with device_iterator(
        make_dataset(config)
    ) as it:  # the batches "streaming" sees, after 2 skipped
        resident = list(itertools.islice(it, steps + 2))[2:]
    batch = resident[0]
    n_in = sum(batch[k].shape[-1] for k in keys)
    params = init(n_in, batch[keys[0]].shape[-1])
    jax.block_until_ready(step(params, batch))  # compile

    def stream(host_buffer: int, device_buffer: int) -> float:
        with device_iterator(
            make_dataset(config), host_buffer=host_buffer, device_buffer=device_buffer
        ) as it:
            time_run(step, params, itertools.islice(it, 2))  # threads started, buffers filled
            return time_run(step, params, itertools.islice(it, steps))

    def host_only() -> float:
        it = iter(make_dataset(config))
        next(it)
        t0 = time.perf_counter()
        for _ in itertools.islice(it, steps):
            pass
        it.close()
        return time.perf_counter() - t0

    modes = {
        "resident": lambda: time_run(step, params, resident),
        "streaming": lambda: stream(config.host_prefetch, config.device_prefetch),
        "serial": lambda: stream(0, 0),
        "host only": host_only,
    }
    runs = {name: [] for name in modes}
    for _ in range(repeats):  # interleaved, so slow drifts of the machine hit every mode alike
        for name, fn in modes.items():
            runs[name].append(fn() / steps)
    return runs


def table(runs: dict[str, list[float]], config, batch_bytes: int) -> str:
    """Side-by-side table: median and min ms/step, ratios to ``resident``, rates at the median."""
    env_steps = config.num_envs * config.window_size
    med = {name: statistics.median(r) for name, r in runs.items()}
    low = {name: min(r) for name, r in runs.items()}
    lines = [
        f"{'mode':<10} {'median ms':>10} {'ratio':>7} {'min ms':>9} {'ratio':>7} "
        f"{'env-steps/s':>13} {'MB/s':>9}"
    ]
    for name in runs:
        lines.append(
            f"{name:<10} {med[name] * 1e3:10.2f} {med[name] / med['resident']:7.2f} "
            f"{low[name] * 1e3:9.2f} {low[name] / low['resident']:7.2f} "
            f"{env_steps / med[name]:13.0f} {batch_bytes / med[name] / 1e6:9.1f}"
        )
    ratio = med["streaming"] / med["resident"]
    lines.append(
        f"streaming / resident = {ratio:.3f} median, {low['streaming'] / low['resident']:.3f}"
        f" min (target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'} at the median)"
    )
    return "\n".join(lines)


def main(argv=None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zarr_path", default=None, help="store (default: the bundled sample)")
    parser.add_argument("--keys", default="qpos", help="comma-separated keys, first = target")
    parser.add_argument("--num_envs", type=int, default=256)
    parser.add_argument("--window_size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64, help="MLP width (consumer cost)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--digit",
        type=int,
        default=0,
        metavar="N",
        help="stream N synthetic Digit-sized trajectories (qpos 61, qvel 54, "
        "action 20, float32, 2000 steps; keys qpos,qvel,action) instead",
    )
    args = parser.parse_args(argv)
    if args.digit:
        args.keys = "qpos,qvel,action"
    with tempfile.TemporaryDirectory() as tmp:
        path = args.zarr_path
        if args.digit:  # the host pipeline benchmark's synthetic Digit store
            from bench_host_pipeline import write_store

            path = write_store(Path(tmp), args.digit, 2000).path
        elif path is None:
            path = str(Path(tmp) / "sample.zarr")
            export_npz(
                SAMPLE,
                path,
                source="cassie",
                motion="aslip_walk",
                convention="mujoco",
                allow_missing=("qvel", "action"),
                progress=False,
            )
        config = load_config(
            "default",
            {
                "zarr_path": path,
                "keys": tuple(args.keys.split(",")),
                "num_envs": args.num_envs,
                "window_size": args.window_size,
                "schedule": "random",
                "cyclic": not args.digit,
            },
        )  # random synthetic rows have no unit base quaternion
        runs = bench(config, args.steps, args.repeats, args.hidden)
        first = next(iter(make_dataset(config)))
        batch_bytes = sum(v.nbytes for v in first.values())
    print(
        f"device overlap: {jax.devices()[0].platform} x{jax.device_count()}, "
        f"{args.num_envs} envs x {args.window_size} steps, keys {args.keys}, MLP width "
        f"{args.hidden}, {args.steps} steps, median of {args.repeats}, "
        f"{batch_bytes / 1e6:.2f} MB/batch"
    )
    print(table(runs, config, batch_bytes))
    return runs


if __name__ == "__main__":
    main()
