"""Crash-safe commit of an export's motions into a local store, with a journal to recover from.

Protocol (run under the store's export lock, :mod:`trajopt_loader.store.lock`): the new motion
groups are complete in the marked temporary directory ``tmp``. Then

1. the root ``zarr.json`` is copied to ``tmp/root.zarr.json`` and the marker (the journal)
   records every move (destination, staged directory, its inode) with phase ``"swapping"``; the
   root and source groups are created if missing;
2. each motion is moved in: a new one with ``os.replace``; a replaced one (``overwrite``) is
   swapped with its staged copy in one step by ``renameat2(RENAME_EXCHANGE)`` (Linux), so the
   motion's directory is never absent; the old data ends up in ``tmp``. Where that call is not
   available the old directory is first moved to ``tmp/.old-<motion>`` (a short window without
   the directory, which recovery also settles);
3. the root ``zarr.json`` is written with the index and the consolidated metadata
   (``write_index``; one atomic write, :mod:`trajopt_loader.store.root_meta`): the commit point;
4. the marker phase becomes ``"committed"`` and ``tmp`` (old data included) is deleted.

A failure in steps 1-3 rolls back in-process (:func:`roll_back`). After a crash, the next export
of the store finds the marked directory (phase ``"swapping"``) and settles it before reading the
index: unless the root ``zarr.json`` differs from the copy and holds an index, every move is
undone (old directories back, new ones out, groups and a store created by that export removed);
otherwise the index was written and the commit is rolled forward (metadata consolidated again,
old data deleted). Between a crash in step 2/3 and that next export, an overwritten motion's
directory may hold the new data while the index still describes the old; the index never lists a
motion whose directory is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import sys
import warnings as _warnings
from collections.abc import Callable
from pathlib import Path

import zarr

from trajopt_loader.store.layout import INDEX_KEY
from trajopt_loader.store.lock import read_marker, remove_tree, write_marker

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None
)


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap the directories ``a`` and ``b`` (Linux ``renameat2``).

    Returns:
      False when the platform or file system does not support the swap (nothing changed).
    Raises:
      OSError: any other failure of the call.
    """
    fn = getattr(_libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), f"{a} <-> {b}")


def _root_json(out_dir: Path) -> bytes | None:
    try:
        return (out_dir / "zarr.json").read_bytes()
    except FileNotFoundError:
        return None


def _require_group(path: Path) -> None:
    """``zarr.open_group(path, mode="a")`` for a local path, without reading an existing group."""
    if not (path / "zarr.json").is_file():
        zarr.open_group(str(path), mode="a")


def commit(out_dir: Path, tmp: Path, source: str, names, write_index: Callable[[], None]) -> None:
    """Move the staged motions ``tmp/<name>`` to ``out_dir/source/<name>`` and write the index.

    See the module docstring for the protocol. Raises whatever a step raised, after rolling back.
    """
    record = read_marker(tmp) or {}
    before = _root_json(out_dir)
    if before is not None:
        (tmp / "root.zarr.json").write_bytes(before)
    moves = []
    for name in names:
        dest, staged = out_dir / source / name, tmp / name
        moves.append(
            {
                "dest": str(dest),
                "staged": str(staged),
                "ino": staged.stat().st_ino,
                "old": str(tmp / f".old-{name}"),
            }
        )
    record.update(
        phase="swapping",
        created=before is None,
        fresh_dir=not out_dir.exists(),
        new_source=not (out_dir / source).exists(),
        source=source,
        moves=moves,
    )
    write_marker(tmp, record)
    try:
        for group in (out_dir, out_dir / source):  # created when missing (an existing root is
            _require_group(group)  # not parsed: at 15K clips it holds ~60 MB of metadata)
        for m in moves:
            dest, staged = Path(m["dest"]), Path(m["staged"])
            if not dest.exists():
                os.replace(staged, dest)
            elif not exchange(staged, dest):
                os.replace(dest, m["old"])
                os.replace(staged, dest)
        write_index()
    except BaseException:
        roll_back(out_dir, tmp, record)
        raise
    record["phase"] = "committed"
    write_marker(tmp, record)


def roll_back(out_dir: Path, tmp: Path, record: dict) -> None:
    """Undo the moves of the journal ``record`` and restore the root ``zarr.json`` copy."""
    for m in reversed(record.get("moves", [])):
        dest, staged, old = Path(m["dest"]), Path(m["staged"]), Path(m["old"])
        try:
            placed = dest.stat().st_ino == m["ino"]
        except FileNotFoundError:
            placed = False
        if placed:
            if staged.exists():  # swapped: staged holds the old data; swap back
                exchange(staged, dest)
            else:
                os.replace(dest, staged)
        if old.exists() and not dest.exists():
            os.replace(old, dest)
    if record.get("new_source"):
        remove_tree(out_dir / record["source"])
    if record.get("created"):
        if record.get("fresh_dir"):
            remove_tree(out_dir)
        else:  # an empty directory given as the output: leave it empty
            (out_dir / "zarr.json").unlink(missing_ok=True)
    else:
        copy = tmp / "root.zarr.json"
        if copy.is_file():
            part = out_dir / "zarr.json.restore"
            part.write_bytes(copy.read_bytes())
            os.replace(part, out_dir / "zarr.json")


def recover(out_dir: Path, tmp: Path, record: dict) -> None:
    """Settle the journal of ``tmp`` left by a dead export (call under the lock, then delete tmp).

    Phase ``"writing"``: nothing reached the store. ``"swapping"``: rolled back unless the root
    ``zarr.json`` differs from the copy taken before the moves (the index was written), in which
    case the metadata is consolidated again. ``"committed"``: nothing to do.
    """
    if record.get("phase") != "swapping":
        return
    copy = tmp / "root.zarr.json"
    before = copy.read_bytes() if copy.is_file() else None
    now = _root_json(out_dir)
    try:  # a torn or index-less root zarr.json: the index write did not complete
        written = now != before and INDEX_KEY in json.loads(now)["attributes"]
    except (TypeError, ValueError, KeyError):
        written = False
    if written:
        consolidate(str(out_dir))
    else:
        roll_back(out_dir, tmp, record)


def consolidate(store) -> None:
    """``zarr.consolidate_metadata(store)`` without its "not in the spec" warning."""
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        zarr.consolidate_metadata(store)


def drain_zarr(timeout: float = 60.0) -> None:
    """Wait until no task is left on zarr's I/O event loop.

    When one chunk write fails (e.g. disk full) zarr raises at once while the other chunk writes
    of the same call are still running; they would re-create directories deleted after the error.
    Called before a failed export deletes its temporary directory.
    """
    import asyncio

    from zarr.core import sync as zsync

    loop = zsync.loop[0]
    if loop is None or not loop.is_running():
        return

    async def _wait_others():
        me = asyncio.current_task()
        while True:
            others = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
            if not others:
                return
            await asyncio.wait(others, timeout=1.0)

    try:
        asyncio.run_coroutine_threadsafe(_wait_others(), loop).result(timeout)
    except Exception:  # a drain that cannot finish must not hide the export's own error
        pass
