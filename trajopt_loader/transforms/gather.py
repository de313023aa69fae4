"""Gather the configured keys of every env's window from the store's host cache, then cast.

Reads go through ``store.gather(key, traj_ids [E], steps [E, W])`` (one vectorized gather per
key from decoded data in RAM, never one zarr read per window: DESIGN decision 3). The result is
cast to the configured dtype (float32 by default; no copy when the stored dtype already matches).
"""

from __future__ import annotations

import difflib

import grain
import numpy as np

from trajopt_loader.choices import cast_dtype
from trajopt_loader.errors import ConfigError, MissingKeyError
from trajopt_loader.store.root_index import gc_paused

# Schedule bookkeeping that a batch does not carry: ``chunk`` is the grain index, which the
# iterator state already records.
DROPPED = ("chunk",)


def missing_key_error(key: str, available, where: str) -> MissingKeyError:
    """A :class:`MissingKeyError` naming ``key``, the available keys and the closest match."""
    available = sorted(available)
    close = difflib.get_close_matches(key, available, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return MissingKeyError(
        f"key {key!r} is not in {where}; available keys: {available}.{hint} Fix the config "
        "field `keys`, or re-export the data with that array (it is never filled with zeros)."
    )


class GatherKeys(grain.transforms.Map):
    """grain Map turning an indexed element into a batch of windows.

    Args:
      store: a ``TrajectoryStore`` (or anything with ``keys`` and ``gather(key, traj_ids, steps)``).
      keys: array keys to read, e.g. ``("qpos", "qvel", "action")``.
      dtype: dtype of the gathered arrays (default float32).
      traj_ids: int ``[n]`` trajectories that will be read (None = all); keys are checked
        against these only.

    ``map(element)`` needs ``traj_id [E] int32`` and ``step [E, W] int32`` (from
    :class:`~trajopt_loader.transforms.windows.WindowIndices`) and returns the element without
    ``chunk`` plus ``{key: [E, W, *row] dtype}`` for every key.

    Raises:
      MissingKeyError: a key is absent from a trajectory that will be read (at construction),
        naming the key, the available keys and trajectories lacking it; or its row shapes
        differ between those trajectories (at construction, via ``store.check_uniform`` when
        the store has it; differing stored dtypes are fine).
      WindowIndexError: from ``store.gather`` for a step outside its trajectory.
    """

    def __init__(self, store, keys=("qpos", "qvel", "action"), dtype="float32", traj_ids=None):
        if isinstance(keys, str) or not keys:
            raise ConfigError(f"keys={keys!r} must be a non-empty tuple of array names")
        if traj_ids is None:
            available, where = set(store.keys), f"every trajectory of {store.path!r}"
        else:
            with gc_paused():  # builds a TrajectoryInfo per trajectory (store/info_table.py)
                infos = [store.trajectories[int(i)] for i in np.unique(traj_ids)]
            available = set.intersection(*(set(t.keys) for t in infos))
            where = f"every selected trajectory of {store.path!r}"
        for key in keys:
            if key not in available:
                lacking = [
                    t.path
                    for t in (infos if traj_ids is not None else store.trajectories)
                    if key not in t.keys
                ]
                raise missing_key_error(
                    key, available, f"{where} (missing in {len(lacking)}, e.g. {lacking[:2]})"
                )
            if hasattr(store, "check_uniform"):  # row shapes: fail now, not when batches mix
                store.check_uniform(key, traj_ids)
        self.store, self.keys, self.dtype = store, tuple(keys), cast_dtype(dtype)

    def map(self, element: dict) -> dict:
        traj, step = element["traj_id"], element["step"]
        batch = {k: v for k, v in element.items() if k not in DROPPED}
        for key in self.keys:
            batch[key] = np.asarray(self.store.gather(key, traj, step)).astype(
                self.dtype, copy=False
            )
        return batch
