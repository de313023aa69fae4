"""``ExportSummary``: what one :func:`~trajopt_loader.store.export.export_npz` call wrote."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ExportSummary:
    """What one :func:`export_npz` call wrote.

    Attributes:
      out: store path. source: source group. convention: convention name.
      motions: ``{motion: number of trajectories}`` written. trajectories / frames: totals.
      bytes: uncompressed bytes of the arrays written. stored_bytes: bytes on disk (local stores;
        ``None`` for URLs). padded: ``{"motion/file": {key: rows added}}``.
      skipped: arrays left out (other row count). warnings: other notes.
      replaced: motions overwritten.
    """

    out: str
    source: str
    convention: str
    motions: dict = dataclasses.field(default_factory=dict)
    trajectories: int = 0
    frames: int = 0
    bytes: int = 0
    stored_bytes: int | None = None
    padded: dict = dataclasses.field(default_factory=dict)
    skipped: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    replaced: list = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"exported {self.trajectories} trajectories, {self.frames} frames "
            f"({self.bytes / 2**20:.2f} MiB raw"
            + (f", {self.stored_bytes / 2**20:.2f} MiB stored" if self.stored_bytes else "")
            + f") to {self.out}",
            f"  source {self.source!r} (convention {self.convention})",
        ]
        lines += [
            f"  {self.source}/{m}: {n} trajectories" + (" (replaced)" if m in self.replaced else "")
            for m, n in self.motions.items()
        ]
        for what, items in (
            ("padded (last row repeated)", [f"{f}: {k}" for f, k in self.padded.items()]),
            ("skipped arrays", self.skipped),
            ("warnings", self.warnings),
        ):
            if items:
                lines.append(f"  {what}: {len(items)}")
                lines += [f"    {x}" for x in items[:20]]
                if len(items) > 20:
                    lines.append(f"    ... {len(items) - 20} more")
        return "\n".join(lines)
