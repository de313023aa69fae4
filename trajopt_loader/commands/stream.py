r"""``trajopt-loader stream``: stream windows through the pipeline into a jitted consumer.

    trajopt-loader stream --config=trajopt_loader/configs/cassie.py \
        --config.zarr_path=cassie.zarr [--num-batches 200] [--config.num_envs=1024]

Builds ``make_dataset(config)``, wraps it with ``device_iterator`` (``host_prefetch`` /
``device_prefetch`` from the config) and runs a jitted consumer on every batch: a ``jax.lax.scan``
over the time axis of each window accumulating ``sum_t qpos[:, t] * valid[:, t]`` and the count of
valid steps (so it reads every element of the batch on the device). It then prints, for the
streamed run (compile excluded): batches/s, env-steps/s (``E * W`` per batch) and MB/s (bytes of
the device batch), next to the host pipeline alone (numpy batches, no device) and the consumer
alone (the same jitted step on one batch already on the device), and the mean ``qpos`` over the
valid steps as a result check. With ``config.distributed.coordinator_address`` set it first calls
``jax.distributed.initialize``
(:func:`~trajopt_loader.pipeline.distributed.maybe_initialize_distributed`);
each process then reads its env shard and the consumer runs on the global env-sharded batch::

    trajopt-loader stream --config=trajopt_loader/configs/default.py --config.zarr_path=s.zarr \
        --config.distributed.coordinator_address=127.0.0.1:12345 \
        --config.distributed.num_processes=2 --config.distributed.process_id=0   # and =1
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from absl import flags

from trajopt_loader.commands.common import (
    PROGRESS_HELP,
    define,
    define_config,
    progress_enabled,
)

FLAGS = flags.FLAGS
USAGE = (
    "trajopt-loader stream --config=CONFIG [--config.FIELD=VALUE ...] [--num-batches N] "
    "[--warmup N] [--[no-]compare]"
)
EXAMPLE = (
    "trajopt-loader stream --config=cassie --config.zarr_path=cassie.zarr --num-batches 200 "
    "--config.num_envs=1024"
)

define_config()
define("integer", "num-batches", None, "Batches to time (default: config.num_batches, else 100).")
define("integer", "warmup", 1, "Batches consumed first (compile), not timed.")
define("bool", "progress", None, PROGRESS_HELP)
define("bool", "compare", True, "Also time the host pipeline alone and the consumer alone.")


def make_consumer(key: str = "qpos"):
    """Jitted ``(acc, batch) -> acc``, ``acc = (sum [n] float32, count () int32)``.

    ``batch[key]``: ``[E, W, n]``, ``batch["valid"]``: ``[E, W]`` bool. A ``lax.scan`` over the W
    steps adds ``batch[key][:, t] * valid[:, t]`` per env; the env sums are then added to ``acc``.
    """
    import jax
    import jax.numpy as jnp

    @jax.jit
    def consume(acc, batch):
        x, valid = batch[key], batch["valid"]

        def body(carry, xs):
            s, c = carry
            xt, vt = xs
            return (s + xt * vt[:, None], c + vt.astype(jnp.int32)), None

        init = (jnp.zeros((x.shape[0], x.shape[2]), jnp.float32), jnp.zeros(x.shape[0], jnp.int32))
        (s, c), _ = jax.lax.scan(body, init, (jnp.swapaxes(x, 0, 1), jnp.swapaxes(valid, 0, 1)))
        return acc[0] + s.sum(0), acc[1] + c.sum()

    return consume


def _rate_line(name: str, seconds: float, n: int, env_steps: int, nbytes: int) -> str:
    per = seconds / max(n, 1)
    return (
        f"  {name:<20} {seconds:8.3f} s  {per * 1e3:8.2f} ms/batch  {n / seconds:9.1f} batches/s  "
        f"{n * env_steps / seconds:12.0f} env-steps/s  {n * nbytes / seconds / 1e6:9.1f} MB/s"
    )


def run_stream(
    config,
    num_batches: int | None = None,
    *,
    warmup: int = 1,
    progress: bool = True,
    compare: bool = True,
    out=print,
) -> dict:
    """Streams ``warmup + num_batches`` batches of ``make_dataset(config)`` into the consumer.

    Returns a dict: ``batches`` (timed), ``consumed`` (all), ``seconds`` (timed streaming),
    ``batches_per_s``, ``env_steps_per_s``, ``mb_per_s``, ``batch_bytes``, ``host_seconds`` /
    ``consumer_seconds`` (same number of batches; ``None`` without ``compare``), ``sum`` (float32
    ``[n]``: ``sum qpos * valid`` over all consumed batches), ``count`` (valid steps), ``mean``.

    Raises:
      ConfigError / MissingKeyError / ...: from ``make_dataset``; ``adaptive.enabled`` (this
        consumer reports no failures). ValueError: the dataset ended before the warm-up was done.
    """
    import jax
    import jax.numpy as jnp
    from tqdm import tqdm

    from trajopt_loader.pipeline import device_iterator, make_dataset

    if config.adaptive.enabled:
        from trajopt_loader.errors import ConfigError

        raise ConfigError(
            "config field adaptive.enabled=True: the stream command is an open-loop "
            "consumer that reports no failures, so the stream would wait for "
            "reports. Fix: --config.adaptive.enabled=False here; closed-loop "
            "consumers call it.report_failures (examples/closed_loop.py)."
        )
    n = num_batches or config.num_batches or 100
    key = "qpos" if "qpos" in config["keys"] else config["keys"][0]
    consume = make_consumer(key)
    acc = None
    from trajopt_loader.pipeline.distributed import env_sharding

    sharding = env_sharding() if jax.process_count() > 1 else None  # global env-sharded batch
    with device_iterator(
        make_dataset(config),
        sharding,
        host_buffer=config.host_prefetch,
        device_buffer=config.device_prefetch,
    ) as it:
        first = list(itertools.islice(it, max(warmup, 1)))
        if not first:
            raise ValueError(
                f"the dataset of {config.zarr_path} yielded no batch (num_batches="
                f"{config.num_batches}); nothing to stream."
            )
        batch0 = first[0]
        acc = (jnp.zeros(batch0[key].shape[-1], jnp.float32), jnp.zeros((), jnp.int32))
        for b in first:
            acc = consume(acc, b)
        jax.block_until_ready(acc)
        env_steps = int(batch0["valid"].shape[0]) * config.window_size  # not look-ahead frames
        nbytes = int(sum(x.nbytes for x in jax.tree.leaves(batch0)))
        done, t0 = 0, time.perf_counter()
        with tqdm(total=n, disable=not progress, unit="batch", desc="stream") as bar:
            for b in itertools.islice(it, n):
                acc = consume(acc, b)
                done += 1
                bar.update()
            jax.block_until_ready(acc)
        seconds = time.perf_counter() - t0
    consumed = len(first) + done
    host_s = consumer_s = None
    if compare and done:
        host_it = iter(make_dataset(config))
        t0 = time.perf_counter()
        for _ in itertools.islice(host_it, done):
            pass
        host_s = time.perf_counter() - t0
        host_it.close()
        probe = jax.block_until_ready(consume(acc, batch0))
        t0 = time.perf_counter()
        for _ in range(done):
            probe = consume(probe, batch0)
        jax.block_until_ready(probe)
        consumer_s = time.perf_counter() - t0
    total, count = np.asarray(acc[0]), int(acc[1])
    seconds = max(seconds, 1e-9)
    result = {
        "batches": done,
        "consumed": consumed,
        "seconds": seconds,
        "batch_bytes": nbytes,
        "batches_per_s": done / seconds,
        "env_steps_per_s": done * env_steps / seconds,
        "mb_per_s": done * nbytes / seconds / 1e6,
        "host_seconds": host_s,
        "consumer_seconds": consumer_s,
        "sum": total,
        "count": count,
        "mean": total / max(count, 1),
    }
    shape = " x ".join(str(d) for d in batch0["valid"].shape)
    out(
        f"streamed {done} batches (+{len(first)} warm-up) of {shape} env-steps "
        f"({nbytes / 1e6:.2f} MB/batch on device; keys {', '.join(config['keys'])})"
    )
    out(_rate_line("streaming", seconds, done, env_steps, nbytes))
    if host_s is not None:
        out(_rate_line("host pipeline only", max(host_s, 1e-9), done, env_steps, nbytes))
        out(_rate_line("consumer only", max(consumer_s, 1e-9), done, env_steps, nbytes))
        out(
            f"  streaming / max(host, consumer) = {seconds / max(host_s, consumer_s, 1e-9):.2f}"
            " (1.00 = fully overlapped)"
        )
    out(
        f"mean {key} over {count} valid steps of {consumed} batches: "
        + np.array2string(result["mean"][:7], precision=4)
        + (" ..." if total.size > 7 else "")
    )
    return result


def main(argv) -> None:
    """absl entry point of ``trajopt-loader stream``."""
    if len(argv) > 1:
        raise SystemExit(f"trajopt-loader stream takes no positional arguments, got {argv[1:]}")
    config = FLAGS.config
    if config is None:
        raise SystemExit(f"trajopt-loader stream: --config is required; usage: {USAGE}")
    from trajopt_loader.configs import validate_config
    from trajopt_loader.pipeline.distributed import maybe_initialize_distributed, process_env_range

    # Check what can be checked alone before joining the other processes: a config error found
    # after jax.distributed.initialize would leave the other processes waiting for this one.
    validate_config(config)
    if config.distributed.num_processes:
        process_env_range(
            config.num_envs, config.distributed.process_id or 0, config.distributed.num_processes
        )
    maybe_initialize_distributed(config.distributed)
    run_stream(
        config,
        FLAGS["num-batches"].value,
        warmup=FLAGS.warmup,
        progress=progress_enabled(FLAGS.progress),
        compare=FLAGS.compare,
    )
