"""The export lock of a local store and the marked temporary directories of its exports.

Every export of a local store ``<dir>/<name>`` holds an advisory ``fcntl.flock`` on the sibling
file ``<dir>/.<name>.lock`` from before it reads the store's index until its temporary directory
is gone, so exports of one store run one after the other and each reads the index its predecessor
wrote. The lock file holds the holder's ``{"pid", "host", "since"}`` so a waiting export can name
it, and is deleted on release (a waiter that locked a deleted file tries again). ``flock`` locks
are released by the kernel when the holder dies (``kill -9`` included); they are only as good as
the file system's support (local file systems; not every network one).

An export writes into a temporary sibling directory ``<dir>/.<name>.tmp-<hex>`` holding the marker
file :data:`MARKER` (``{"store": absolute store path, "pid", "host", "phase", ...}``). A directory
with a marker naming this store that exists while the lock is free was left by an export that
died; :func:`remove_stale_temps` (run under the lock) recovers its commit journal
(:mod:`trajopt_loader.store.commit`) and deletes it. Directories without this store's marker are
never touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

from trajopt_loader.errors import ExportError

_log = logging.getLogger(__name__)
MARKER = ".trajopt-loader-export.json"
LOCK_TIMEOUT_S = 600.0
_POLL_S = 0.05


def lock_path(out_dir: Path) -> Path:
    """``<dir>/.<name>.lock``: the lock file of the local store ``out_dir``."""
    return out_dir.parent / f".{out_dir.name}.lock"


def _holder_text(path: Path) -> str:
    try:
        h = json.loads(path.read_text() or "{}")
        return f"pid {h['pid']} on {h['host']} since {h['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process"


@contextlib.contextmanager
def store_lock(out_dir: Path, timeout: float = LOCK_TIMEOUT_S):
    """Hold the export lock of the local store ``out_dir`` (creates its parent directory).

    Waits up to ``timeout`` seconds (``0``: do not wait) for another export to release it, and
    logs one warning naming the holder when it has to wait.

    Raises:
      ExportError: the lock was not free within ``timeout`` (names the holder and the lock file).
      OSError: the lock file cannot be created (read-only or missing permission).
    """
    path = lock_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline, waited = time.monotonic() + max(0.0, float(timeout)), False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not waited:
                waited = True
                _log.warning(
                    "waiting up to %g s for another export of %s to finish (%s)",
                    timeout,
                    out_dir,
                    _holder_text(path),
                )
            if time.monotonic() >= deadline:
                raise ExportError(
                    f"store {str(out_dir)!r} is being written by another export "
                    f"({_holder_text(path)}; lock file {str(path)!r}); waited {timeout:g} s. "
                    "Fix: wait for that export to finish, or raise lock_timeout / "
                    "--lock-timeout."
                ) from None
            time.sleep(_POLL_S)
            continue
        try:  # the holder before us unlinks the file on release: lock the file at the path
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.pwrite(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            ).encode(),
            0,
        )
        yield path
    finally:
        try:
            os.unlink(path)  # while still locked: a waiter then re-opens a fresh file
        finally:
            os.close(fd)


def write_marker(tmp: Path, record: dict) -> None:
    """Atomically (re)write the marker file of the temporary directory ``tmp``."""
    part = tmp / f"{MARKER}.part"
    part.write_text(json.dumps(record))
    os.replace(part, tmp / MARKER)


def read_marker(tmp: Path) -> dict | None:
    """The marker record of ``tmp``, or None when it has none (or an unreadable one)."""
    try:
        record = json.loads((tmp / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def make_temp(out_dir: Path) -> Path:
    """Create and mark a fresh temporary sibling directory of ``out_dir``; returns its path."""
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    write_marker(
        tmp,
        {
            "store": str(out_dir.resolve()),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "phase": "writing",
        },
    )
    return tmp


def _alive_elsewhere(record: dict) -> bool:
    """True when the marker's process is another process still running on this host."""
    if record.get("host") != socket.gethostname() or record.get("pid") == os.getpid():
        return False
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError):
        return True
    return True


def remove_stale_temps(out_dir: Path, recover) -> list[str]:
    """Recover and delete the temporary directories of dead exports of ``out_dir``.

    Call with the lock held. ``recover(tmp, record)`` settles the commit journal of one directory
    (rolls it back or forward) before it is deleted. Only directories whose marker names this
    store, and whose process is not alive on this host, are touched.

    Returns:
      one line per removed directory (for the export summary's warnings).
    """
    me, out = str(out_dir.resolve()), []
    for tmp in sorted(out_dir.parent.glob(f".{out_dir.name}.tmp-*")):
        record = read_marker(tmp)
        if record is None or record.get("store") != me or _alive_elsewhere(record):
            continue
        recover(tmp, record)
        remove_tree(tmp)
        out.append(
            f"removed {tmp.name} left by an interrupted export (pid {record.get('pid')}, "
            f"phase {record.get('phase')})"
        )
    return out


def remove_tree(path: Path) -> None:
    """Delete the directory ``path`` (gone already is fine; other errors are raised)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
