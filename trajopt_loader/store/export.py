"""Export a directory tree of trajectory ``.npz`` files into a trajopt-loader Zarr v3 store.

``<root>/<motion>/*.npz`` -> ``<out>/<source>/<motion>/traj{i}/{key}`` (layout, chunking and codec:
see :mod:`trajopt_loader.store.layout`; validation rules: :mod:`trajopt_loader.store.validate`).

Nothing is partially written: for a local store, under the store's export lock
(:mod:`trajopt_loader.store.lock`), the new motion groups are written into a marked temporary
sibling directory of ``out`` (:mod:`trajopt_loader.store.export_write`: each file loaded,
validated, encoded and written once, from a thread pool; with ``preprocess`` every file is
validated first, before the costly preprocess runs) and committed by
:mod:`trajopt_loader.store.commit` (moved in, replaced motions swapped atomically, the root
``zarr.json`` written last: the index and the consolidated metadata in one atomic write,
:mod:`trajopt_loader.store.root_meta`, so the store opens without listing). An invalid file
stops the export before the commit: nothing reaches the store. Remote (fsspec URL) stores are
written in place after every file is validated, only when the caller promises a single writer.

Trajectory ids stay stable: the index's ``"order"`` keeps motions in the order they were first
exported, so a new motion (of any source) is appended after the existing ones (the motions of one
export in sorted name order) and a motion replaced with ``overwrite`` keeps its place
(:func:`trajopt_loader.store.layout.motion_order`).
"""

from __future__ import annotations

import errno
import warnings as _warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import zarr

from trajopt_loader.conventions import Convention, as_convention
from trajopt_loader.errors import ExportError, TrajoptLoaderError
from trajopt_loader.store import commit, export_write, layout, model_record, parallel_io, root_meta
from trajopt_loader.store.discover import discover
from trajopt_loader.store.lock import (
    LOCK_TIMEOUT_S,
    make_temp,
    remove_stale_temps,
    remove_tree,
    store_lock,
)
from trajopt_loader.store.summary import ExportSummary
from trajopt_loader.store.time_step import unknown_dt_warning

Preprocess = Callable[[dict, float, str], tuple]


def export_npz(
    root,
    out,
    *,
    source: str,
    motion: str | Sequence[str] | None = None,
    convention: str | Convention | None = None,
    dt: float | str | None = None,
    key_map: dict | None = None,
    max_trajs_per_motion: int | None = None,
    overwrite: bool = False,
    allow_missing: Sequence[str] = (),
    preprocess: Preprocess | None = None,
    progress: bool = True,
    storage_options: dict | None = None,
    lock_timeout: float = LOCK_TIMEOUT_S,
    single_writer: bool = False,
    chunk_key_separator: str = "/",
) -> ExportSummary:
    """Export ``.npz`` trajectories under ``root`` into the Zarr store ``out`` as ``source``.

    Args:
      root: directory of motion subdirectories of ``.npz`` files (or of ``.npz`` files with
        ``motion``).
      out: store path (created if missing) or fsspec URL. source: source group name.
      motion: one motion name (files of ``root/motion/`` or of ``root`` itself), a list, or None
        for every subdirectory of ``root`` holding ``.npz`` files.
      convention: ``"mujoco"`` / ``"pinocchio"`` / ``"crocoddyl"`` or a :class:`Convention`;
        required (never guessed), recorded per source.
      dt: time step (s) when the files carry none; must agree with the files when they do.
        ``"unknown"`` (``time_step.UNKNOWN_DT``): files without one are recorded with unknown dt
        (index ``null``, ``store.dts`` NaN) and one warning says how to set it.
      key_map: ``{"qpos": "arr_0", ...}`` names for unnamed arrays.
      max_trajs_per_motion: keep the first N files (natural order) of each motion.
      overwrite: replace motions that already exist under ``source`` (each keeps its position in
        the store's global order; new motions and sources are appended at the end).
      allow_missing: keys that may be absent (only ``"qvel"`` is required besides ``qpos``).
      preprocess: ``f(arrays, dt, source_file) -> (arrays, dt, provenance)`` run after validation;
        its ``model_layout`` attribute, when it has one (``kinematics.make_export_preprocess``),
        is recorded per source (``index["sources"][source]["model_layout"]``; a different
        layout for an existing source is refused).
      progress: show tqdm progress bars over files.
      lock_timeout: seconds to wait for another export of the same local store to finish
        (exports of one store run one after the other; :mod:`trajopt_loader.store.lock`).
      single_writer: for a remote (fsspec URL) store, the caller guarantees no other export
        writes it at the same time; remote exports are refused without it (no lock exists there).
      chunk_key_separator: ``"/"`` (zarr's default: time-chunk ``c`` of ``qpos`` at
        ``qpos/c/{c}/0``) or ``"."`` (``qpos/c.{c}.0``: no directories below ``qpos``, 3 instead
        of 7 per two-key clip; faster where the file system makes directories dear, see
        :mod:`.layout`). Both are plain Zarr v3, read the same way;
        recorded per array (:func:`.layout.chunk_key`). Other exports to the store may choose
        either.
    Returns:
      an :class:`ExportSummary`.
    Raises:
      ExportError: invalid input or options (nothing written); the lock was not free within
        ``lock_timeout``; a remote ``out`` without ``single_writer``; an ``OSError`` while
        writing (permission, read-only, disk full: names the path and errno; nothing committed).
      ConventionError: bad convention. ExportError: no ``convention``.
    """
    if convention is None:
        raise ExportError(
            "export_npz(convention=...) is required and never guessed: 'mujoco' (qpos[3:7] "
            "quaternion w, x, y, z; linear velocity in the world frame) or 'pinocchio' / "
            "'crocoddyl' (quaternion x, y, z, w; body-frame velocities); it is recorded per source."
        )
    conv = as_convention(convention)
    layout.check_node_name(source, "source", ExportError)
    if chunk_key_separator not in layout.CHUNK_KEY_SEPARATORS:
        raise ExportError(
            f"chunk_key_separator (--chunk-key-separator) {chunk_key_separator!r} is not a zarr "
            "chunk key separator; "
            "expected '/' (zarr's default) or '.'. Fix: pass one of them."
        )
    if max_trajs_per_motion is not None and int(max_trajs_per_motion) < 1:
        raise ExportError(f"max_trajs_per_motion={max_trajs_per_motion} must be >= 1.")
    out = str(out)
    summary = ExportSummary(out=out, source=source, convention=conv.name)
    # sorted: a fresh store lists its motions by name; later exports append after them
    motions = sorted(discover(Path(root), motion, summary.warnings), key=lambda mf: mf[0])
    if max_trajs_per_motion is not None:
        motions = [(m, f[: int(max_trajs_per_motion)]) for m, f in motions]
    kw = dict(key_map=key_map, allow_missing=tuple(allow_missing), dt=dt)
    job = dict(
        source=source,
        conv=conv,
        motions=motions,
        overwrite=overwrite,
        kw=kw,
        preprocess=preprocess,
        progress=progress,
        storage_options=storage_options,
        chunk_key_separator=chunk_key_separator,
    )
    try:
        if layout.is_url(out):
            if not single_writer:
                raise ExportError(
                    f"{out!r} is a remote store: exports to it cannot be locked against each "
                    "other, and two at once would lose one's motions. Fix: make sure this is the "
                    "only export writing it, then pass single_writer=True / --single-writer."
                )
            return _export(out, summary, **job)
        out_dir = Path(layout.local_path(out))
        with store_lock(out_dir, lock_timeout):
            summary.warnings += remove_stale_temps(
                out_dir, lambda tmp, record: commit.recover(out_dir, tmp, record)
            )
            return _export(out, summary, **job)
    except TrajoptLoaderError:
        raise
    except OSError as e:
        code = f" (errno {errno.errorcode.get(e.errno, e.errno)})" if e.errno else ""
        raise ExportError(
            f"writing store {out!r} failed at {str(e.filename or out)!r}: "
            f"{e.strerror or e}{code}; nothing was committed. Fix: free disk "
            "space, or choose a writable output path."
        ) from e


def _export(
    out: str,
    summary: ExportSummary,
    *,
    source,
    conv,
    motions,
    overwrite,
    kw,
    preprocess,
    progress,
    storage_options,
    chunk_key_separator,
) -> ExportSummary:
    """The body of :func:`export_npz` (local stores: run with the store's lock held)."""
    from tqdm.auto import tqdm

    index, root = root_meta.read_existing(out, storage_options)
    index = index or {"format_version": layout.FORMAT_VERSION, "sources": {}}
    layout.check_name_clash(source, index["sources"], f"source of {out}", ExportError)
    src = index["sources"].get(source)
    if src is not None:
        old = Convention.from_attrs(src.get("convention", {}), f"source {source!r} of {out}")
        if old != conv:
            raise ExportError(
                f"source {source!r} in {out} has convention {old.to_attrs()} but "
                f"{conv.to_attrs()} was given; export to another source name."
            )
        for m, _ in motions:
            layout.check_name_clash(m, src["motions"], f"motion of {out}/{source}", ExportError)
        existing = [m for m, _ in motions if m in src["motions"]]
        if existing and not overwrite:
            raise ExportError(
                f"motion(s) {existing} already exist in {out}/{source}; pass "
                "overwrite=True / --overwrite to replace them."
            )
        summary.replaced = existing
        model_record.check_export_layout(
            src, getattr(preprocess, "model_layout", None), out, source
        )
    n_files = sum(len(f) for _, f in motions)
    local = not layout.is_url(out)
    if preprocess is not None or not local:  # before a costly preprocess / in-place writes
        export_write.validate(motions, kw, progress, preprocess)
    out_dir = Path(layout.local_path(out))
    tmp = None
    try:
        if local:
            tmp = make_temp(out_dir)
            parent, threads = None, parallel_io.EXPORT_THREADS
        else:
            parent = zarr.open_group(
                root_meta.store_arg(out, storage_options), mode="a", use_consolidated=False
            ).require_group(source)
            threads = export_write.REMOTE_WRITE_CONCURRENCY
        groups = {name: export_write.motion_group(parent, tmp, name) for name, _ in motions}
        with tqdm(total=n_files, desc="write", unit="file", disable=not progress) as bar:
            written = export_write.write_motions(
                groups,
                motions,
                summary,
                preprocess=preprocess,
                kw=kw,
                threads=threads,
                bar=bar,
                chunk_key_separator=chunk_key_separator,
            )
        entries = written.entries
        summary.trajectories = sum(summary.motions.values())
        unknown = [
            f"{m}/{e['source_file']}" for m, es in entries.items() for e in es if e["dt"] is None
        ]
        if unknown:  # one warning per export, not one per file
            _warnings.warn(unknown_dt_warning(unknown), stacklevel=2)
        if local:
            summary.stored_bytes = export_write.stored_bytes(tmp, written)
        order = layout.motion_order(index)  # existing motions keep their place (stable ids)
        index["order"] = [f"{s}/{m}" for s, m in order] + [
            f"{source}/{m}" for m in entries if (source, m) not in order
        ]
        new_source = source not in index["sources"]
        src = index["sources"].setdefault(source, {"convention": conv.to_attrs(), "motions": {}})
        model_record.record_layout(
            src,
            getattr(preprocess, "model_layout", None),
            new_source,
            out,
            source,
            summary.warnings,
        )
        src["motions"].update(entries)
        if local:
            commit.commit(
                out_dir,
                tmp,
                source,
                list(entries),
                lambda: root_meta.write_root(out_dir, root, index, source, written.nodes),
            )
        else:
            store = root_meta.store_arg(out, storage_options)
            zarr.open_group(store, mode="a", use_consolidated=False).attrs[layout.INDEX_KEY] = index
            commit.consolidate(store)
    except BaseException:
        commit.drain_zarr()  # no chunk write of this export may outlive the cleanup below
        raise
    finally:
        if tmp is not None:
            remove_tree(tmp)
    return summary
