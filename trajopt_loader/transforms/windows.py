"""Window time indices with an end policy: ``start + arange(W)`` made trajectory-local.

End policies (what a window reads past the last frame of its trajectory):

* ``wrap``: steps are taken modulo the trajectory length; every entry is real data
  (``valid`` all True). A trajectory shorter than the window wraps several times.
* ``clamp``: steps past the end repeat the last frame and are marked ``valid=False``.
  A trajectory shorter than the window (e.g. length 3, window 4) is clamp-padded the same way:
  it is never dropped, so the dataset never shrinks unnoticed.

``valid`` follows the naming rule of DESIGN.md: True = real data.
"""

from __future__ import annotations

import grain
import numpy as np

from trajopt_loader.errors import ConfigError, WindowIndexError

END_POLICIES = ("wrap", "clamp")


def window_steps(lengths, starts, window_size: int,
                 end_policy: str) -> tuple[np.ndarray, np.ndarray]:
    """Trajectory-local step indices of windows.

    Args:
      lengths: int ``[E]`` length (steps) of each env's trajectory, in ``[1, 2**31 - 1]``.
      starts: int ``[E]`` first step of each window, in ``[0, length)``.
      window_size: ``W`` >= 1.
      end_policy: ``"wrap"`` or ``"clamp"`` (module docstring).

    Returns:
      ``(step [E, W] int32, valid [E, W] bool)``; ``step`` is always in ``[0, length)``.

    Raises:
      WindowIndexError: a start outside ``[0, length)`` (names the env row, start and length).
      ConfigError: unknown ``end_policy`` or ``window_size < 1``.
    """
    if end_policy not in END_POLICIES:
        raise ConfigError(f"end_policy={end_policy!r} is not one of {END_POLICIES}")
    if int(window_size) < 1:
        raise ConfigError(f"window_size={window_size} must be >= 1")
    lengths = np.asarray(lengths, np.int64)
    starts = np.asarray(starts, np.int64)
    bad = np.flatnonzero((starts < 0) | (starts >= lengths))
    if bad.size:
        e = int(bad[0])
        raise WindowIndexError(
            f"env row {e}: window start {int(starts[e])} is outside [0, {int(lengths[e])}) of its "
            "trajectory; starts must be trajectory-local steps.")
    steps = starts[:, None] + np.arange(int(window_size), dtype=np.int64)  # int64: no overflow
    limit = lengths[:, None]
    if end_policy == "wrap":
        steps %= limit
        valid = np.ones(steps.shape, bool)
    else:
        valid = steps < limit
        np.minimum(steps, limit - 1, out=steps)
    return steps.astype(np.int32), valid


class WindowIndices(grain.transforms.Map):
    """grain Map adding ``step [E, W] int32`` and ``valid [E, W] bool`` to a schedule element.

    Args:
      lengths: int ``[n_traj]`` trajectory lengths indexed by ``traj_id`` (``store.lengths``).
      window_size: ``W``.
      end_policy: ``"wrap"`` | ``"clamp"``.

    ``map(element)`` reads ``element["traj_id"] [E]`` and ``element["start"] [E]`` and returns a
    new dict with the same entries plus ``step`` and ``valid`` (see :func:`window_steps`).

    Raises:
      WindowIndexError: a ``traj_id`` outside ``[0, n_traj)`` or a start outside its trajectory.
    """

    def __init__(self, lengths, window_size: int, end_policy: str = "wrap"):
        self.lengths = np.asarray(lengths, np.int64)
        self.window_size = int(window_size)
        self.end_policy = end_policy
        window_steps(self.lengths[:1], np.zeros(1, np.int64), window_size, end_policy)  # validate

    def map(self, element: dict) -> dict:
        traj = np.asarray(element["traj_id"])
        if traj.size and (traj.min() < 0 or traj.max() >= self.lengths.size):
            raise WindowIndexError(f"traj_id values {traj.min()}..{traj.max()} outside the "
                                   f"store's [0, {self.lengths.size})")
        step, valid = window_steps(self.lengths[traj], element["start"], self.window_size,
                                   self.end_policy)
        return {**element, "step": step, "valid": valid}
