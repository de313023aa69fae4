"""Per-key metadata of the host cache.

Row-shape groups, dtypes, chunk rows and bytes per trajectory.

Built once per key from the index (:class:`~trajopt_loader.store.layout.TrajectoryInfo`), so the
cache's gathers and loads are numpy operations over ``[n_traj]`` arrays (:mod:`.cache`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trajopt_loader.store.layout import TrajectoryInfo, chunk_rows


class KeyMeta:
    """Per-key arrays over all trajectories.

    Attributes:
      group: int64 [n_traj] row-shape group id (-1 = key absent). shapes: row shape per group.
      stored: stored dtype per trajectory (None where absent). dtype: the gather dtype
        (``float_dtype`` for floating keys when given, else ``np.result_type`` of all stored
        dtypes). chunk: int64 [n_traj] rows per stored chunk.
      lengths: int64 [n_traj]. nbytes: bytes of the key of all trajectories in the gather
        dtype; traj_bytes: int64 [n_traj] the same per trajectory.
    """

    def __init__(self, infos: Sequence[TrajectoryInfo], key: str, float_dtype=None):
        n = len(infos)
        self.group = np.full(n, -1, np.int64)
        self.chunk = np.ones(n, np.int64)
        self.shapes: list[tuple[int, ...]] = []
        self.stored: list[np.dtype | None] = [None] * n
        for i, info in enumerate(infos):
            if key not in info.keys:
                continue
            shape, dtype = tuple(info.keys[key][0]), np.dtype(info.keys[key][1])
            if shape not in self.shapes:
                self.shapes.append(shape)
            self.group[i] = self.shapes.index(shape)
            self.stored[i] = dtype
            self.chunk[i] = info.chunk_rows.get(key) or chunk_rows(shape, dtype, info.length)
        present = [d for d in self.stored if d is not None]
        self.dtype = np.result_type(*present) if present else np.dtype(np.float64)
        if float_dtype is not None and self.dtype.kind == "f":
            self.dtype = np.dtype(float_dtype)
        self.lengths = np.array([info.length for info in infos], np.int64)
        row_bytes = np.array(
            [int(np.prod(s, dtype=np.int64)) * self.dtype.itemsize for s in self.shapes] + [0],
            np.int64,
        )
        #: int64 [n_traj]: bytes of each trajectory's key in the gather dtype (0 where absent)
        self.traj_bytes = self.lengths * row_bytes[self.group]
        self.nbytes = int(self.traj_bytes.sum())
