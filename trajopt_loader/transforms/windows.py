"""Window time indices with an end policy: ``start + arange(W)`` made trajectory-local.

End policies (what a window reads past the last frame of its trajectory):

* ``wrap``: steps are taken modulo the trajectory length; every entry is real data
  (``valid`` all True). A trajectory shorter than the window wraps several times.
* ``clamp``: steps past the end repeat the last frame and are marked ``valid=False``.
  A trajectory shorter than the window (e.g. length 3, window 4) is clamp-padded the same way:
  it is never dropped, so the dataset never shrinks unnoticed.

``valid`` follows the naming rule of DESIGN.md: True = real data.

Loop counts (``loop [E, W] int32``): the number of completed passes over the trajectory before
each step within the env's episode: the schedule's ``episode_loop`` plus, under ``wrap``, the
number of times the window went from step ``L-1`` back to ``0`` before that step (so a window
reading ``..., L-2, L-1, 0, 1`` has loops ``c, c, c+1, c+1``). Under ``clamp`` it is constant.
``transforms.cycles`` uses it to continue the base motion across the seam.
"""

from __future__ import annotations

import grain
import numpy as np

from trajopt_loader.choices import END_POLICIES, INT32_MAX
from trajopt_loader.errors import ConfigError, IndexOverflowError, WindowIndexError


def window_steps(
    lengths, starts, window_size: int, end_policy: str
) -> tuple[np.ndarray, np.ndarray]:
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
            "trajectory; starts must be trajectory-local steps."
        )
    steps = starts[:, None] + np.arange(int(window_size), dtype=np.int64)  # int64: no overflow
    limit = lengths[:, None]
    if end_policy == "wrap":
        steps %= limit
        valid = np.ones(steps.shape, bool)
    else:
        valid = steps < limit
        np.minimum(steps, limit - 1, out=steps)
    return steps.astype(np.int32), valid


def window_loops(
    lengths, starts, window_size: int, end_policy: str, episode_loop=None
) -> np.ndarray:
    """Loop count of every window step (module docstring), int32 ``[E, W]``.

    Args:
      lengths, starts, window_size, end_policy: as in :func:`window_steps` (starts already
        checked there).
      episode_loop: int ``[E]`` completed passes before each window's start (the schedule's
        ``episode_loop``); None = 0.

    Raises:
      IndexOverflowError: a count above ``2**31 - 1`` (names the env row).
    """
    lengths, starts = np.asarray(lengths, np.int64), np.asarray(starts, np.int64)
    base = (
        np.zeros(starts.shape, np.int64)
        if episode_loop is None
        else np.asarray(episode_loop, np.int64)
    )
    loops = np.broadcast_to(base[:, None], (starts.size, int(window_size)))
    if end_policy == "wrap":
        loops = loops + (starts[:, None] + np.arange(int(window_size))) // lengths[:, None]
    bad = np.flatnonzero((loops < 0).any(axis=1) | (loops > INT32_MAX).any(axis=1))
    if bad.size:
        e = int(bad[0])
        raise IndexOverflowError(
            f"env row {e}: loop counts {int(loops[e].min())}..{int(loops[e].max())} (episode_loop "
            f"{int(base[e])}, trajectory length {int(lengths[e])}) leave [0, 2**31 - 1]; the int32 "
            "loop counter cannot hold them. Bound the episodes (allow_wrap=False)."
        )
    return loops.astype(np.int32)


class WindowIndices(grain.transforms.Map):
    """grain Map adding ``step``, ``loop`` ``[E, W + F] int32`` and ``valid [E, W + F] bool`` to an
    element.

    Args:
      lengths: int ``[n_traj]`` trajectory lengths indexed by ``traj_id`` (``store.lengths``).
      window_size: ``W``.
      end_policy: ``"wrap"`` | ``"clamp"``.
      future_steps: ``F >= 0`` look-ahead frames (``config.future_steps``): the window reads
        ``start + arange(W + F)`` under the same end policy, so frame ``W + j`` is the step
        ``j`` frames after the window's last one (the next window, which the schedule still
        starts ``stride`` steps later, shows it again). Look-ahead frames past the end of the
        trajectory wrap or clamp (``valid=False``) like any other frame: they never show the
        env's next episode.

    ``map(element)`` reads ``element["traj_id"] [E]``, ``element["start"] [E]`` and, when
    present, ``element["episode_loop"] [E]`` and returns a new dict with the same entries plus
    ``step``, ``valid`` (:func:`window_steps`) and ``loop`` (:func:`window_loops`).

    Raises:
      WindowIndexError: a ``traj_id`` outside ``[0, n_traj)`` or a start outside its trajectory.
      IndexOverflowError: a loop count outside int32.
    """

    def __init__(self, lengths, window_size: int, end_policy: str = "wrap", future_steps: int = 0):
        if int(future_steps) < 0:
            raise ConfigError(f"future_steps={future_steps} must be >= 0 (look-ahead frames)")
        self.lengths = np.asarray(lengths, np.int64)
        self.window_size, self.future_steps = int(window_size), int(future_steps)
        self.frames = self.window_size + self.future_steps  # read per window: W + F
        self.end_policy = end_policy
        window_steps(self.lengths[:1], np.zeros(1, np.int64), window_size, end_policy)  # validate

    def map(self, element: dict) -> dict:
        traj = np.asarray(element["traj_id"])
        if traj.size and (traj.min() < 0 or traj.max() >= self.lengths.size):
            raise WindowIndexError(
                f"traj_id values {traj.min()}..{traj.max()} outside the "
                f"store's [0, {self.lengths.size})"
            )
        lengths = self.lengths[traj]
        step, valid = window_steps(lengths, element["start"], self.frames, self.end_policy)
        loop = window_loops(
            lengths, element["start"], self.frames, self.end_policy, element.get("episode_loop")
        )
        return {**element, "step": step, "loop": loop, "valid": valid}
