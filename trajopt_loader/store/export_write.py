"""The per-trajectory half of an export: load each ``.npz``, encode it and write its group.

:func:`write_motions` runs :func:`load_and_write` over every file of an export from a thread
pool (:func:`trajopt_loader.store.parallel_io.ordered_map`: ``.npz`` inflate, Blosc, CRC-32C and
file-system calls release the GIL, and a bounded window of finished trajectories waits for its
turn, so memory does not grow with the clip count) and collects the results in file order, so
trajectory numbering, the index and the bytes do not depend on the threads. The commit half is
:mod:`trajopt_loader.store.export`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import zarr

from trajopt_loader.errors import ExportError
from trajopt_loader.store import direct_write, layout, parallel_io
from trajopt_loader.store.integrity import chunk_crcs
from trajopt_loader.store.summary import ExportSummary
from trajopt_loader.store.time_step import index_dt
from trajopt_loader.store.validate import LoadedTrajectory, check_arrays, load_trajectory

#: Trajectories written at once to a remote (fsspec URL) store.
REMOTE_WRITE_CONCURRENCY = 16


@dataclasses.dataclass
class MotionsWritten:
    """What :func:`write_motions` wrote.

    Attributes:
      entries: ``{motion: [index entry of traj{i}, ...]}`` in file order.
      nodes: ``{motion: {"traj{i}" / "traj{i}/key": node metadata}}`` (see
        :mod:`trajopt_loader.store.root_meta`), or None when some group went through zarr.
      stored_bytes: bytes of the files written, or None when some group went through zarr.
    """

    entries: dict
    nodes: dict | None
    stored_bytes: int | None


def write_traj(
    group, name: str, t: LoadedTrajectory, chunk_key_separator: str = "/"
) -> tuple[dict, dict | None, int | None]:
    """Write trajectory ``name`` into the zarr ``group``, its chunk keys with
    ``chunk_key_separator`` (:func:`.layout.chunk_key`).

    Returns:
      ``(index entry, {path: node metadata} or None, bytes written or None)``; None when written
      through zarr (a remote store).
    """
    entry = {
        "name": name,
        "length": t.length,
        "dt": index_dt(t.dt),
        "source_file": t.source_file,
        "rows_in_file": t.rows_in_file,
        "keys": {},
        "derived": t.derived,
        "padded": t.padded,
        "scalars": t.scalars,
    }
    if t.true_length is not None:
        entry["true_length"] = t.true_length
    for key, a in t.arrays.items():  # checksums of the decoded chunks: see layout, integrity
        rows = layout.chunk_rows(a.shape[1:], a.dtype, t.length)
        entry["keys"][key] = {
            "shape": list(a.shape[1:]),
            "dtype": str(a.dtype),
            "chunk_rows": rows,
            "crc32c": chunk_crcs(a, rows),
        }
        if chunk_key_separator != "/":  # absent: "/" (the index of every earlier store)
            entry["keys"][key]["chunk_key_separator"] = chunk_key_separator
    motion_dir = direct_write.local_dir(group)
    if motion_dir is not None:  # a local store: the files zarr would write, written directly
        return (entry, *direct_write.write_traj(motion_dir, name, entry, t.arrays))
    tg = group.create_group(name, attributes=entry)
    for key, a in t.arrays.items():  # every chunk exists
        rows = entry["keys"][key]["chunk_rows"]
        direct_write.create_array(tg, key, a, rows, chunk_key_separator)[...] = a
    return entry, None, None


def load(path: Path, preprocess, **kw) -> LoadedTrajectory:
    """:func:`~trajopt_loader.store.validate.load_trajectory` of ``path`` (``kw``), then the
    export's ``preprocess`` and the checks of its output. Raises ExportError."""
    allow_missing = tuple(kw.get("allow_missing", ()))
    if preprocess is not None:  # preprocess may derive qvel: check for it afterwards
        kw = dict(kw, allow_missing=tuple(set(allow_missing) | {"qvel"}))
    t = load_trajectory(path, **kw)
    if preprocess is not None:
        arrays, dt, provenance = preprocess(dict(t.arrays), t.dt, t.source_file)
        if "qpos" not in arrays:
            raise ExportError(f"{t.source_file}: preprocess returned no 'qpos'.")
        if "qvel" not in arrays and "qvel" not in allow_missing:
            raise ExportError(
                f"{t.source_file}: key 'qvel' is missing after preprocessing; "
                "derive it (--model MODEL.xml --derive-qvel) or pass "
                "allow_missing=('qvel',) / --allow-missing qvel."
            )
        t.length = int(arrays["qpos"].shape[0])
        check_arrays(arrays, t.source_file, t.length)
        t.arrays, t.dt, t.derived = dict(arrays), float(dt), dict(provenance or {})
    return t


def write_motions(
    groups: dict,
    motions: list,
    summary: ExportSummary,
    *,
    preprocess,
    kw: dict,
    threads: int,
    bar,
    chunk_key_separator: str = "/",
) -> MotionsWritten:
    """Load and write every file of ``motions`` ``[(motion, [path, ...])]`` as ``traj{i}`` (``i``:
    position in the motion's list) into ``groups[motion]`` (zarr groups), ``threads`` at a time
    (1 when ``preprocess`` is given: it runs in this thread only), chunk keys with
    ``chunk_key_separator`` (:func:`.layout.chunk_key`). Adds frames, bytes, padding,
    skipped arrays and warnings to ``summary`` and advances the progress ``bar`` per file.

    Raises:
      ExportError: the first invalid file in file order, named ``motion/file``. OSError: from the
        file system (nothing of this export is in the store yet; the caller cleans up).
    """
    out = MotionsWritten({name: [] for name, _ in motions}, {name: {} for name, _ in motions}, 0)

    def load_write(job):
        name, i, f = job
        try:
            t = load(f, preprocess, **kw)
        except ExportError as e:
            raise ExportError(f"{name}/{e}") from None
        return name, t, write_traj(groups[name], f"traj{i}", t, chunk_key_separator)

    jobs = [(name, i, f) for name, files in motions for i, f in enumerate(files)]
    threads = 1 if preprocess is not None else threads
    for name, t, (entry, nodes, nbytes) in parallel_io.ordered_map(
        load_write, jobs, threads, window=parallel_io.EXPORT_WINDOW
    ):
        out.entries[name].append(entry)
        if nodes is None or out.nodes is None:
            out.nodes = out.stored_bytes = None
        else:
            out.nodes[name].update(nodes)
            out.stored_bytes += nbytes
        summary.frames += t.length
        summary.bytes += sum(a.nbytes for a in t.arrays.values())
        if t.padded:
            summary.padded[f"{name}/{t.source_file}"] = dict(t.padded)
        summary.skipped += [f"{name}/{s}" for s in t.skipped]
        summary.warnings += [f"{name}/{w}" for w in t.warnings]
        bar.update()
    for name, files in motions:
        summary.motions[name] = len(files)
    return out


def stored_bytes(tmp: Path, written: MotionsWritten) -> int:
    """Bytes of the files of the motions staged in ``tmp`` (a local export)."""
    if written.stored_bytes is None:  # some group went through zarr: list the files
        return sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    groups = (tmp / m / direct_write.ZARR_JSON for m in written.entries)
    return written.stored_bytes + sum(f.stat().st_size for f in groups)


def motion_group(parent, tmp: Path | None, name: str):
    """The empty zarr group of motion ``name``: ``tmp/name`` (a local export's staging
    directory) or a child of the remote source group ``parent`` (replacing one there)."""
    if tmp is not None:
        return zarr.open_group(str(tmp / name), mode="w")
    return parent.create_group(name, overwrite=True)


def validate(motions, kw: dict, progress: bool, preprocess) -> None:
    """Check every file of ``motions`` ``[(motion, [path, ...])]`` with ``kw`` before anything
    is written (with a ``preprocess``, qvel may still come from it: checked after it runs).

    Raises:
      ExportError: the first invalid file, named ``motion/file``.
    """
    from tqdm.auto import tqdm

    if preprocess is not None:
        kw = dict(kw, allow_missing=tuple(set(kw["allow_missing"]) | {"qvel"}))
    n_files = sum(len(f) for _, f in motions)
    with tqdm(total=n_files, desc="validate", unit="file", disable=not progress) as bar:
        for name, files in motions:
            for f in files:
                try:
                    load_trajectory(f, **kw)
                except ExportError as e:
                    raise ExportError(f"{name}/{e}") from None
                bar.update()
