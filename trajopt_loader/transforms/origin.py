"""The episode origin in the batch: the state at each env's ``episode_first_step``.

With ``config.episode_origin_keys`` every batch carries, per env,

==================  =========  =====================================================================
key                 shape      definition
==================  =========  =====================================================================
``origin_qpos``     [E, nq]    ``qpos[traj_id, episode_first_step]`` (the data's convention and
                               units)
``origin_qvel``     [E, nv]    ``qvel[traj_id, episode_first_step]``
==================  =========  =====================================================================

so an environment needs neither to cache the state it saw at ``episode_start`` nor to read the
store. The episode's first step always has loop count 0 (``pipeline/schedules.py``: an episode
begins before any wrap), so the cyclic continuation (``transforms/cycles.py``) leaves it as
recorded: the origin is the stored row, cast to the batch dtype. It is the same row
``ref_base_local_trans`` subtracts (``p_o`` in ``transforms/references.py``). With
``config.control_dt`` the episode's first step is a control step: the origin is the state
interpolated there, by the same :class:`~trajopt_loader.transforms.interpolate.InterpolateKeys`
that reads the windows (so it equals the window row at ``episode_start``, bit for bit).
"""

from __future__ import annotations

import grain
import numpy as np

from trajopt_loader.choices import cast_dtype
from trajopt_loader.transforms.gather import missing_key_error

ORIGIN_KEYS = {"qpos": "origin_qpos", "qvel": "origin_qvel"}
__all__ = ["ORIGIN_KEYS", "EpisodeOrigin"]


class EpisodeOrigin(grain.transforms.Map):
    """grain Map adding ``origin_qpos [E, nq]`` and ``origin_qvel [E, nv]`` (module docstring).

    Args:
      store: a ``TrajectoryStore`` (``trajectories``, ``gather``).
      dtype: dtype of the added arrays (``config.dtype``).
      traj_ids: int ``[n]`` trajectories that will be read (None = all): each must store
        ``qpos`` and ``qvel``.
      interpolator: with ``config.control_dt``, the
        :class:`~trajopt_loader.transforms.interpolate.InterpolateKeys` of the windows when it
        reads ``qpos`` and ``qvel`` (else one of its own); None reads stored rows.

    ``map(element)`` reads ``traj_id [E]`` and ``episode_first_step [E]`` (from the schedule).

    Raises:
      MissingKeyError: at construction, a trajectory to be read has no ``qpos`` or ``qvel``
        (names the key, the available keys and the fix).
      WindowIndexError: from ``store.gather`` for a first step outside its trajectory.
    """

    def __init__(self, store, dtype="float32", traj_ids=None, interpolator=None):
        ids = range(len(store.trajectories)) if traj_ids is None else np.unique(traj_ids)
        for key in ORIGIN_KEYS:
            lacking = [
                store.trajectories[int(i)]
                for i in ids
                if key not in store.trajectories[int(i)].keys
            ]
            if lacking:
                raise missing_key_error(
                    key,
                    lacking[0].keys,
                    f"trajectory {lacking[0].path} of {store.path!r}, "
                    f"which episode_origin_keys=True reads ({len(lacking)} trajectories lack it)",
                )
        self.store, self.dtype = store, cast_dtype(dtype)
        self.interpolator = interpolator

    def map(self, element: dict) -> dict:
        traj = np.asarray(element["traj_id"])
        first = np.asarray(element["episode_first_step"])[:, None]  # [E, 1]
        out = dict(element)
        if self.interpolator is not None:
            # {key: [E, 1, n]} at control steps, the same way (tables or not) as the windows
            rows = self.interpolator.map({"traj_id": traj, "step": first})
        else:
            rows = {key: self.store.gather(key, traj, first) for key in ORIGIN_KEYS}
        for key, name in ORIGIN_KEYS.items():
            out[name] = np.asarray(rows[key])[:, 0].astype(self.dtype)
        return out
