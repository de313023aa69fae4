"""Several JAX processes (hosts) streaming one global batch: initialization, env sharding, resume.

With ``P = jax.process_count()`` processes, process ``p`` reads only the env rows
``[p * E / P, (p + 1) * E / P)`` of every schedule element (``E = config.num_envs``, divisible by
``P``, else :class:`~trajopt_loader.errors.ShardingError`). Schedule draws are made for all ``E``
envs and sliced, so the union over processes of element ``k`` is the single-process element ``k``
for the same config and seed (:mod:`trajopt_loader.pipeline.schedules`). The device stage of
:func:`~trajopt_loader.pipeline.device_iterator` then assembles the global ``[E, ...]`` arrays with
``jax.make_array_from_process_local_data(env_sharding(), local_batch)``::

    maybe_initialize_distributed(config.distributed)          # before any other JAX call
    it = device_iterator(make_dataset(config), env_sharding())  # global arrays, env axis sharded

Resuming from per-process files (``save_process_state``, ``restore_process_state``) is
:mod:`trajopt_loader.pipeline.process_state`; grain's Orbax handler
(:mod:`trajopt_loader.pipeline.checkpoint`) instead needs the same process count.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.errors import ConfigError, ShardingError
from trajopt_loader.pipeline.schedules import env_shard

__all__ = ["current_process", "env_sharding", "maybe_initialize_distributed", "process_env_range"]


def maybe_initialize_distributed(distributed, **kwargs) -> bool:
    """Call ``jax.distributed.initialize`` when ``distributed.coordinator_address`` is set.

    Args:
      distributed: ``config.distributed`` (``coordinator_address`` ``"host:port"`` of process 0,
        ``num_processes``, ``process_id``), or any object with those attributes. With both
        ``num_processes`` and ``process_id`` unset JAX detects them from the cluster (SLURM,
        TPU...).
      **kwargs: passed on to ``jax.distributed.initialize`` (e.g. ``initialization_timeout`` s).
    Returns:
      True if this call initialized the distributed runtime; False when no coordinator is set
      (one process) or it is already initialized.
    Raises:
      ConfigError: only one of ``num_processes`` / ``process_id`` set, ``process_id`` out of range,
        or ``num_processes > 1`` without a coordinator address.

    Must run before JAX starts its backends (before ``jax.devices()`` or any computation). On CPU,
    collectives between processes (``multihost_utils.process_allgather``, a jitted reduction over
    the global batch) use gloo; it is selected here unless another implementation is configured.
    """
    import jax

    address = getattr(distributed, "coordinator_address", None)
    n = getattr(distributed, "num_processes", None)
    pid = getattr(distributed, "process_id", None)
    if not address:
        if n is not None and int(n) > 1:
            raise ConfigError(
                f"distributed.num_processes={n} but distributed.coordinator_address "
                "is unset; pass --config.distributed.coordinator_address=HOST:PORT "
                "(process 0's address, the same for every process)."
            )
        return False
    if (n is None) != (pid is None):
        raise ConfigError(
            f"distributed.num_processes={n} and distributed.process_id={pid}: set "
            "both (e.g. --config.distributed.num_processes=2 "
            "--config.distributed.process_id=0), or neither for cluster detection."
        )
    if n is not None and not 0 <= int(pid) < int(n):
        raise ConfigError(f"distributed.process_id={pid} must be in [0, num_processes={n}).")
    if jax.distributed.is_initialized():
        return False
    if getattr(jax.config, "jax_cpu_collectives_implementation", "gloo") in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        str(address), None if n is None else int(n), None if pid is None else int(pid), **kwargs
    )
    return True


def process_env_range(
    num_envs: int, process_index: int | None = None, process_count: int | None = None
) -> tuple[int, int]:
    """Env rows ``[lo, hi)`` this process reads (default: ``jax.process_index()`` of ``count``).

    Raises:
      ShardingError: ``num_envs`` not divisible by the process count, or a bad index.
    """
    return env_shard(int(num_envs), *current_process(process_index, process_count))


def env_sharding(devices=None, axis_name: str = "env"):
    """``NamedSharding(Mesh(devices, (axis_name,)), P(axis_name))``: env axis over all devices.

    Args:
      devices: devices of the mesh; default ``jax.devices()`` (every device of every process).
        They are ordered by (process index, id), so process ``p``'s devices hold the contiguous
        global env rows ``[p * E / P, (p + 1) * E / P)`` that its local batch contains, in order.
      axis_name: mesh axis name.
    Returns:
      ``jax.sharding.NamedSharding``; for a batch leaf of rank ``r`` the device stage keeps the
      first ``r`` entries of the spec (``[E, W, n]`` and ``[E]`` split along env, 0-d replicated).
      ``E / P`` must be divisible by the number of devices per process.
    Raises:
      ShardingError: ``devices`` is given but empty (there is nothing to split the env axis over).
    """
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ShardingError("env_sharding got no devices; pass jax.devices() or leave it None.")
    ordered = sorted(devices, key=lambda d: (d.process_index, d.id))
    return NamedSharding(Mesh(np.asarray(ordered), (axis_name,)), PartitionSpec(axis_name))


def current_process(
    process_index: int | None = None, process_count: int | None = None
) -> tuple[int, int]:
    """``(process_index, process_count)`` as ints; each one not given is JAX's
    (``jax.process_index()`` / ``jax.process_count()``)."""
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    return int(process_index), int(process_count)
