"""Check a whole store against its index: every chunk read, decoded and compared.

:func:`verify_store` opens the store (the index is validated on open, :mod:`.index_check`), then
for every trajectory and key of the index checks that the array exists with the index's shape and
dtype, and reads every time-chunk through :func:`trajopt_loader.store.integrity.read_rows`
(presence, decoding, and for format_version 2 the CRC-32C of the decoded rows). For a local
store it also lists motion and trajectory directories on disk that the index does not know (e.g.
left by an interrupted export). ``trajopt-loader verify STORE`` prints the result.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from trajopt_loader.errors import DataIntegrityError, StoreFormatError
from trajopt_loader.store import integrity, layout
from trajopt_loader.store.reader import TrajectoryStore


@dataclasses.dataclass
class VerifyReport:
    """Result of :func:`verify_store`.

    Attributes:
      path: the store. format_version: of its index. trajectories, arrays, chunks: counts
        checked. problems: one line per problem found (empty when the store is sound).
    """

    path: str
    format_version: int
    trajectories: int = 0
    arrays: int = 0
    chunks: int = 0
    problems: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """Output lines: one per problem and a last one-line verdict."""
        checks = (
            "CRC-32C of every chunk checked"
            if self.format_version >= 2
            else "format_version 1: no checksums, chunks checked for presence and decoding only"
        )
        counts = (
            f"{self.trajectories} trajectories, {self.arrays} arrays, {self.chunks} chunks "
            f"read ({checks})"
        )
        if self.ok:
            return [f"OK: {self.path}: {counts}; every array matches the index."]
        return [f"PROBLEM: {p}" for p in self.problems] + [
            f"FAILED: {self.path}: {len(self.problems)} problem(s) in {counts}. Fix: re-export the "
            "affected motions (`trajopt-loader export ... --overwrite`) or restore the store from "
            "a copy."
        ]


def _orphans(store: TrajectoryStore) -> list[str]:
    """Motion / trajectory directories of a local store that its index does not list."""
    root = Path(layout.local_path(store.path))
    known = {t.path for t in store.trajectories}
    motions = {f"{t.source}/{t.motion}" for t in store.trajectories}
    out = []
    for src in sorted(p for p in root.iterdir() if (p / "zarr.json").is_file()):
        for mot in sorted(p for p in src.iterdir() if (p / "zarr.json").is_file()):
            name = f"{src.name}/{mot.name}"
            if name not in motions:
                out.append(
                    f"{store.path}: motion {name} is on disk but not in the index (left by "
                    "an interrupted export?); export it again or delete the directory."
                )
                continue
            out += [
                f"{store.path}: trajectory {name}/{t.name} is on disk but not in the index."
                for t in sorted(mot.iterdir())
                if (t / "zarr.json").is_file() and f"{name}/{t.name}" not in known
            ]
    return out


def verify_store(path_or_url, storage_options: dict | None = None, **store_kw) -> VerifyReport:
    """Read every chunk of the store at ``path_or_url`` and check it against the index.

    Args:
      storage_options, store_kw: as for :class:`TrajectoryStore` (e.g. ``timeout_s``).
    Returns:
      a :class:`VerifyReport`; ``report.problems`` lists missing / damaged / swapped chunks,
      arrays missing or of another shape or dtype than the index says, and directories the
      index does not list.
    Raises:
      StoreNotFoundError, StoreFormatError (an index that does not validate), StoreReadError:
      the store cannot be opened or read at all.
    """
    store = TrajectoryStore(path_or_url, cache_bytes=0, storage_options=storage_options, **store_kw)
    report = VerifyReport(str(path_or_url), int(store._index["format_version"]))
    hint = integrity.fix_hint(store.path)
    for info in store.trajectories:
        report.trajectories += 1
        for key in info.keys:
            report.arrays += 1
            try:
                array = store._array(info.traj_id, key)
                integrity.check_array(array, store.path, info, key)
            except DataIntegrityError as e:
                report.problems.append(str(e).replace(hint, "").strip())
                continue
            except (KeyError, FileNotFoundError, StoreFormatError) as e:
                report.problems.append(
                    f"{store.path}: trajectory {info.path} key {key!r}: array "
                    f"missing ({type(e).__name__}: {e})."
                )
                continue
            n = int(info.chunk_rows.get(key) or array.chunks[0])
            for start in range(0, info.length, n):
                report.chunks += 1
                try:  # with the store's retries for URLs
                    store._read_rows(info.traj_id, key, start, min(start + n, info.length))
                except DataIntegrityError as e:
                    report.problems.append(str(e).replace(hint, "").strip())
    if not layout.is_url(store.path):
        report.problems += _orphans(store)
    return report
