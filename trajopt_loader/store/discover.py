"""The motions and files of an export's input tree.

``<root>/<motion>/*.npz`` (or ``<root>/*.npz``).
"""

from __future__ import annotations

from pathlib import Path

from trajopt_loader.errors import ExportError
from trajopt_loader.store import layout


def _npz_files(d: Path) -> list[Path]:
    return sorted(
        (p for p in d.iterdir() if p.suffix == ".npz" and p.is_file()),
        key=lambda p: layout.natural_key(p.name),
    )


def discover(root: Path, motion, warnings: list) -> list[tuple[str, list[Path]]]:
    """``[(motion name, [.npz paths in natural order]), ...]`` of the input tree ``root``.

    ``motion``: one name (files of ``root/motion/`` or of ``root`` itself), a list of names, or
    None for every subdirectory of ``root`` holding ``.npz`` files (``.npz`` files directly in
    ``root`` are then ignored with a line appended to ``warnings``).

    Raises:
      ExportError: ``root`` is not a directory; a motion without files; invalid or duplicate
        names (compared with :func:`trajopt_loader.store.layout.name_key`).
    """
    if not root.is_dir():
        raise ExportError(
            f"input root {str(root)!r} is not a directory; expected a directory of "
            "<motion>/*.npz (or of *.npz with --motion NAME)."
        )
    if motion is not None:
        names = [motion] if isinstance(motion, str) else list(motion)
        out = []
        for name in names:
            layout.check_node_name(name, "motion", ExportError)
            d = root / name if (root / name).is_dir() else root
            files = _npz_files(d)
            if not files:
                raise ExportError(
                    f"motion {name!r}: no .npz files in {str(root / name)!r} nor "
                    f"directly in {str(root)!r}; expected <root>/{name}/*.npz."
                )
            out.append((name, files))
    else:
        out = [(d.name, _npz_files(d)) for d in sorted(root.iterdir()) if d.is_dir()]
        out = [(n, f) for n, f in out if f]
        top = _npz_files(root)
        if not out:
            raise ExportError(
                f"no motion subdirectories with .npz files in {str(root)!r}"
                + (
                    f"; it holds {len(top)} .npz files directly: pass motion=NAME / --motion NAME"
                    if top
                    else ""
                )
            )
        if top:
            warnings.append(
                f"{len(top)} .npz files directly in {root} were ignored; export them "
                "with --motion NAME"
            )
        for name, _ in out:
            layout.check_node_name(name, "motion", ExportError)
    keys = [layout.name_key(n) for n, _ in out]
    dups = sorted({n for n, _ in out if keys.count(layout.name_key(n)) > 1})
    if dups:
        raise ExportError(
            f"duplicate motion names {dups} (names must differ ignoring case and "
            "Unicode normalization); "
            "rename the directories or export them to different sources."
        )
    return out
