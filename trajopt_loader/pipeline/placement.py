"""Placing host batches on the JAX device(s): the dtypes JAX keeps, the sharding of each leaf, and
the device stage of :func:`~trajopt_loader.pipeline.device.device_iterator` (also used by the
predecessor's ``DoubleBufferStreamer``), with its integer range and divisibility checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec, Sharding

from trajopt_loader.choices import INT32_MAX, INT32_MIN
from trajopt_loader.errors import IndexOverflowError, ShardingError

__all__ = ["PutOnDevice", "default_sharding", "leaf_sharding", "local_rows", "to_device_dtypes"]


def _leaf_name(path) -> str:
    return jax.tree_util.keystr(path) or "<batch>"


def to_device_dtypes(batch: Any) -> Any:
    """Returns ``batch`` (a pytree of arrays) with the dtypes JAX keeps when ``jax_enable_x64`` is
    off.

    With x64 off (JAX's default), a 64-bit array entering JAX is silently narrowed to 32 bits, which
    wraps integers ≥ 2**31 (e.g. a global frame index). Here, instead:

    * ``int64`` / ``uint64`` leaves are range-checked and cast to ``int32``;
    * ``float64`` leaves are cast to ``float32`` (what JAX would do, done explicitly).

    With x64 on, leaves are returned unchanged (as numpy arrays). Other dtypes pass through.

    Raises:
      IndexOverflowError: an integer leaf holds a value outside ``[-2**31, 2**31 - 1]``; the message
        names the leaf, the value and its position.
    """
    x64 = bool(jax.config.jax_enable_x64)

    def fix(path, leaf):
        arr = np.asarray(leaf)
        if x64:
            return arr
        if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
            if arr.size:
                lo, hi = arr.min(), arr.max()
                if lo < INT32_MIN or hi > INT32_MAX:
                    bad = np.unravel_index(
                        int(np.argmax((arr < INT32_MIN) | (arr > INT32_MAX))), arr.shape
                    )
                    raise IndexOverflowError(
                        f"batch leaf {_leaf_name(path)} ({arr.dtype}, shape {arr.shape}) holds "
                        f"{arr[bad]} at index {tuple(int(i) for i in bad)}, outside int32 "
                        f"[{INT32_MIN}, {INT32_MAX}]; with jax_enable_x64 off JAX would silently "
                        "truncate it. Fix: keep step indices trajectory-local (int32), or enable "
                        "x64 (jax.config.update('jax_enable_x64', True))."
                    )
            return arr.astype(np.int32)
        if arr.dtype == np.float64:
            return arr.astype(np.float32)
        return arr

    return jax.tree_util.tree_map_with_path(fix, batch)


def local_rows(x) -> np.ndarray:
    """This process's rows of ``x``: a global ``jax.Array`` spanning processes gives its
    addressable shards in row order; anything else as a numpy array."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
        return np.concatenate([np.asarray(s.data) for s in shards])
    return np.asarray(x)


def leaf_sharding(sharding: Sharding, ndim: int) -> Sharding:
    """Returns the sharding of one ``ndim``-dimensional leaf derived from the batch ``sharding``.

    A :class:`~jax.sharding.NamedSharding` keeps the first ``ndim`` entries of its
    ``PartitionSpec``: with ``P("env")``, a ``[E, W, nq]`` leaf and an ``[E]`` leaf are split along
    env, a 0-d leaf is replicated. Any other sharding (e.g. ``SingleDeviceSharding``) is used as is
    for every leaf.
    """
    if isinstance(sharding, NamedSharding):
        spec = tuple(sharding.spec)[:ndim]
        return NamedSharding(sharding.mesh, PartitionSpec(*spec), memory_kind=sharding.memory_kind)
    return sharding


def default_sharding() -> NamedSharding:
    """Env axis split over every device of every process, in (process index, device id) order:
    ``distributed.env_sharding()``, ``NamedSharding(Mesh(devices, ("env",)), P("env"))``.

    Raises:
      RuntimeError: (from ``jax.devices()``) no JAX backend could be initialized.
    """
    from trajopt_loader.pipeline.distributed import env_sharding

    return env_sharding()


class PutOnDevice:
    """The device stage: check/cast dtypes, then place every leaf with its sharding."""

    def __init__(self, sharding: Sharding | Mapping[str, Sharding] | None, multiprocess: bool):
        if multiprocess and sharding is None:
            sharding = default_sharding()
        if sharding is not None and not isinstance(sharding, (Sharding, Mapping)):
            raise ShardingError(
                "sharding must be a jax.sharding.Sharding, a dict of them keyed like the batch, "
                f"or None; got {type(sharding).__name__}. Fix: e.g. "
                "NamedSharding(Mesh(jax.devices(), ('env',)), P('env'))."
            )
        self._sharding = sharding
        self._multiprocess = multiprocess

    def _for_leaf(self, path, arr: np.ndarray) -> Sharding | None:
        s = self._sharding
        if isinstance(s, Mapping):
            key = getattr(path[0], "key", None) if path else None
            if key not in s:
                raise ShardingError(
                    f"sharding dict has no entry for batch key {key!r} (has {sorted(s)}). "
                    "Fix: give a sharding for every top-level key of the batch."
                )
            s = s[key]
        if s is None:
            return None
        s = leaf_sharding(s, arr.ndim)
        if isinstance(s, NamedSharding) and not self._multiprocess:
            for dim, axes in enumerate(s.spec):
                names = (axes,) if isinstance(axes, str) else tuple(axes or ())
                parts = int(np.prod([s.mesh.shape[n] for n in names])) if names else 1
                if arr.shape[dim] % parts:
                    raise ShardingError(
                        f"batch leaf {_leaf_name(path)} has shape {arr.shape}; axis {dim} "
                        f"({arr.shape[dim]}) does not split evenly over mesh axes {names} of size "
                        f"{parts}. Fix: choose num_envs as a multiple of {parts}, or a mesh that "
                        "divides it."
                    )
        return s

    def __call__(self, batch: Any) -> Any:
        host = to_device_dtypes(batch)
        if self._sharding is None:
            return jax.device_put(host)
        shardings = jax.tree_util.tree_map_with_path(self._for_leaf, host)
        if not self._multiprocess:
            return jax.device_put(host, shardings)
        try:
            return jax.tree.map(jax.make_array_from_process_local_data, shardings, host)
        except ValueError as e:
            raise ShardingError(
                f"cannot assemble the global batch from this process's local batch "
                f"(process {jax.process_index()} of {jax.process_count()}): {e}. Fix: every "
                "process must hold the same number of envs, and the env axis must split over the "
                "mesh."
            ) from e
