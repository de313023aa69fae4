"""The trajectories of a store as columns, with ``TrajectoryInfo`` objects built on access.

Opening a store of many clips must not build one Python object per clip: :class:`TrajectoryTable`
keeps the checked index entries (``.index_check``) in global order (``layout.motion_order``) plus
numpy columns (lengths, dts, motion of each trajectory); ``table[i]`` builds (and keeps) the
:class:`~trajopt_loader.store.layout.TrajectoryInfo` of trajectory ``i`` the first time it is asked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trajopt_loader.store import layout
from trajopt_loader.store.layout import TrajectoryInfo


class TrajectoryTable(Sequence):
    """``TrajectoryInfo`` per trajectory in global order (traj_id = position), built lazily.

    A read-only sequence (``len``, ``[i]``, slices, iteration, ``==`` with another sequence of
    infos). Columns, indexed by traj_id:
      lengths: int32 ``[n_traj]`` time steps. dts: float64 ``[n_traj]`` seconds (NaN: unknown).
      motion_ids: int32 ``[n_traj]`` position of the trajectory's motion in ``motions``.
    motions: ``(source, motion)`` pairs in global order.

    Raises:
      IndexError: a traj_id outside ``[-n_traj, n_traj)`` (as a tuple does).
    """

    def __init__(self, index: dict):
        self.motions = layout.motion_order(index)
        self._entries: list = []
        counts = []
        for source, motion in self.motions:
            entries = index["sources"][source]["motions"][motion]
            self._entries.extend(entries)
            counts.append(len(entries))
        n = len(self._entries)
        self.motion_ids = np.repeat(np.arange(len(self.motions), dtype=np.int32), counts)
        self.lengths = np.fromiter((e["length"] for e in self._entries), np.int64, n).astype(
            np.int32
        )
        self.dts = np.fromiter(
            (np.nan if e["dt"] is None else e["dt"] for e in self._entries), np.float64, n
        )
        self._infos: list = [None] * n
        self._paths: dict | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"traj_id {i} is outside [0, {len(self)})")
        info = self._infos[i]
        if info is None:
            source, motion = self.motions[self.motion_ids[i]]
            info = self._infos[i] = layout.info_from_entry(i, source, motion, self._entries[i])
        return info

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # mutable-free but compared by value, like a list of infos

    def __repr__(self) -> str:
        return f"TrajectoryTable({len(self)} trajectories, {len(self.motions)} motions)"

    def common_keys(self) -> tuple[str, ...]:
        """Sorted keys every trajectory holds (each distinct key set is intersected once)."""
        if not self._entries:
            return ()
        sets = {tuple(e["keys"]) for e in self._entries}
        return tuple(sorted(set.intersection(*(set(s) for s in sets))))

    def find(self, path: str) -> TrajectoryInfo | None:
        """The info at ``"source/motion/name"``, or None."""
        if self._paths is None:
            motion_paths = [f"{s}/{m}/" for s, m in self.motions]
            self._paths = {
                motion_paths[m] + e["name"]: i
                for i, (m, e) in enumerate(
                    zip(self.motion_ids.tolist(), self._entries, strict=True)
                )
            }
        i = self._paths.get(path)
        return None if i is None else self[i]

    def ids_of_motions(self, pairs) -> np.ndarray:
        """int32 traj_ids of the motions ``pairs`` (``(source, motion)``), in global order."""
        pairs = set(pairs)
        wanted = [k for k, pair in enumerate(self.motions) if pair in pairs]
        return np.flatnonzero(np.isin(self.motion_ids, wanted)).astype(np.int32)
