"""JAX helpers for an environment that consumes batches inside jit / ``lax.scan``.

A batch of ``make_dataset`` (on the device through ``device_iterator``) holds per-step leaves
``[E, T, ...]`` (``T = W + F``: ``config.window_size`` plus ``config.future_steps`` look-ahead
frames; ``qpos``, ``qvel``, ``valid``, ``ref_*`` ...) and per-env leaves ``[E, ...]``
(:data:`PER_ENV_KEYS`: ``episode_start``, ``ref_len``, ``origin_qpos`` ...). A tracking
environment scans over the ``W`` steps of a window::

    def env_step(carry, t):
        ref = step_slice(batch, t)          # {"ref_motor_joint_pos": [E, n_act], ...}
        target = step_slice(batch, t + 1)   # look-ahead: needs future_steps >= 1 at t = W - 1
        ...
    lax.scan(env_step, carry, jnp.arange(W))

and initialises the simulated state from the reference (reference state initialisation, RSI)
where an episode starts::

    qpos0, qvel0 = reference_state(batch, 0)
    qpos = where_envs(batch["episode_start"], qpos0, qpos)

The ``qpos`` / ``qvel`` rows are the batch's: in the data's convention (``store.convention``;
MuJoCo's for MuJoCo-exported data) and, with ``config.cyclic``, already continued across a wrap
(``transforms/cycles.py``), so initialising at any window step puts the robot where the
references of that step are. ``examples/mjx_tracking.py`` uses all three helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

#: Batch keys that hold one value per env (``[E, ...]``), never a time axis.
PER_ENV_KEYS = frozenset(
    {
        "env_id",
        "traj_id",
        "start",
        "episode_start",
        "episode_first_step",
        "episode_loop",
        "chunk",
        "ref_len",
        "origin_qpos",
        "origin_qvel",
    }
)
__all__ = ["PER_ENV_KEYS", "reference_state", "step_slice", "where_envs"]


def _at(x: jax.Array, t) -> jax.Array:
    return jax.lax.dynamic_index_in_dim(x, t, axis=1, keepdims=False)


def step_slice(batch: Mapping[str, Any], t, keys=None) -> dict[str, jax.Array]:
    """The batch at window step ``t``: every per-step leaf ``[E, T, ...]`` becomes ``[E, ...]``.

    Args:
      batch: dict of arrays (numpy or JAX) from ``make_dataset`` / ``device_iterator``.
      t: int32 scalar (a Python int or a traced value, e.g. the ``lax.scan`` counter), in
        ``[0, T)``. Inside jit an out-of-range ``t`` cannot raise: XLA clamps it into
        ``[0, T - 1]`` (``lax.dynamic_index_in_dim``), so keep ``t + k < W + future_steps``.
      keys: names to slice (default: every key of ``batch`` not in :data:`PER_ENV_KEYS`, whose
        leaves have at least 2 axes).

    Returns:
      ``{key: batch[key][:, t]}`` with the same dtypes (``valid [E] bool`` tells whether step
      ``t`` is recorded data). Per-env leaves are not included.

    Raises:
      KeyError: a name of ``keys`` is not in ``batch``. ValueError: a leaf with fewer than 2 axes.
    """
    if keys is None:
        keys = [k for k, v in batch.items() if k not in PER_ENV_KEYS and jnp.ndim(v) >= 2]
    out = {}
    for key in keys:
        x = jnp.asarray(batch[key])
        if x.ndim < 2:
            raise ValueError(f"batch[{key!r}] has shape {x.shape}; step_slice needs [E, T, ...].")
        out[key] = _at(x, t)
    return out


def reference_state(batch: Mapping[str, Any], t) -> tuple[jax.Array, jax.Array]:
    """``(qpos [E, nq], qvel [E, nv])`` of the reference at window step ``t``: the state to
    initialise an env at (RSI on ``episode_start`` at ``t = 0``, or after an early termination
    at step ``t``). Dtype of the batch (``config.dtype``); convention of the data; cyclic
    continuation already applied by the pipeline. ``t`` as in :func:`step_slice`.

    Raises:
      KeyError: ``"qpos"`` or ``"qvel"`` not in the batch (add them to ``config.keys``).
    """
    for key in ("qpos", "qvel"):
        if key not in batch:
            raise KeyError(
                f"reference_state needs batch[{key!r}]; add {key!r} to config.keys "
                f"(batch keys: {sorted(batch)})."
            )
    return _at(jnp.asarray(batch["qpos"]), t), _at(jnp.asarray(batch["qvel"]), t)


def where_envs(mask, new, old):
    """Per env, ``new`` where ``mask`` else ``old``, for pytrees of ``[E, ...]`` leaves.

    Args:
      mask: bool ``[E]`` (e.g. ``batch["episode_start"]`` or a termination flag).
      new, old: pytrees of the same structure, leaves ``[E, ...]``.
    """
    mask = jnp.asarray(mask)
    return jax.tree_util.tree_map(
        lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (jnp.ndim(b) - 1)), a, b), new, old
    )
