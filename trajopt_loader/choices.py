"""The choice lists and the int32 index bound a stream is checked against, defined once for
configs (:mod:`trajopt_loader.configs`), schedules, windows and the device stage.

* :data:`SCHEDULES` -- ``config.schedule``: ``"sequential"`` windows march through trajectories,
  ``"random"`` windows start anywhere.
* :data:`ASSIGNMENTS` -- ``config.assignment``: how envs get trajectories in a sequential schedule.
* :data:`END_POLICIES` -- ``config.end_policy``: a window running past a trajectory's last step
  ``"wrap"`` s to step 0 or ``"clamp"`` s (repeats the last step).
* :data:`EE_SOURCES` -- ``config.references.ee_source``: where end-effector positions come from
  (``transforms/references_config.py``).
* :data:`INT32_MIN` / :data:`INT32_MAX` -- bounds of the int32 indices batches carry (steps,
  loop counts, lengths, env counts).
* :func:`cast_dtype` -- ``config.dtype``: the numeric dtypes batches may be cast to.
"""

from __future__ import annotations

import numpy as np

from trajopt_loader.errors import ConfigError

SCHEDULES = ("sequential", "random")
ASSIGNMENTS = ("round_robin", "random", "explicit")
END_POLICIES = ("wrap", "clamp")
EE_SOURCES = ("auto", "store", "mujoco", "mjx")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def cast_dtype(dtype) -> np.dtype:
    """``np.dtype(dtype)`` for a numeric dtype name (``"float32"``, ``"bfloat16"`` via ml_dtypes).

    Raises:
      ConfigError: unknown or non-numeric dtype.
    """
    try:
        out = np.dtype(dtype)
    except TypeError:
        try:
            import ml_dtypes  # jax's dependency; provides bfloat16 etc.

            out = np.dtype(getattr(ml_dtypes, str(dtype)))
        except (ImportError, AttributeError, TypeError):
            raise ConfigError(
                f"dtype={dtype!r} is not a numpy dtype name (e.g. 'float32')"
            ) from None
    if out.kind not in "fiuc" and out.name != "bfloat16":
        raise ConfigError(f"dtype={dtype!r} is not numeric; use e.g. 'float32'")
    return out
