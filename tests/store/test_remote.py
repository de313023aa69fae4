"""Stores opened by URL through zarr's fsspec support.

A real HTTP server over the real Cassie store.

``python -m http.server`` (started here on 127.0.0.1, stopped at the end) serves files only; the
store opens from the consolidated metadata in its root ``zarr.json`` and the index in its root
attrs, so no listing is needed. ``memory://`` checks the same fsspec code path for export + read.
"""

from __future__ import annotations

import functools
import http.server
import pickle
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from trajopt_loader.configs import load_config
from trajopt_loader.errors import (
    DataIntegrityError,
    ExportError,
    StoreNotFoundError,
    StoreReadError,
)
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.store import TrajectoryStore, export_npz
from trajopt_loader.store.remote import storage_options_for

pytestmark = pytest.mark.slow  # real subprocesses


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(cassie_store, tmp_path_factory):
    """``(base URL of the store, server log path)``; the server process is stopped afterwards."""
    log = tmp_path_factory.mktemp("http") / "server.log"
    port = _free_port()
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                str(port),
                "--directory",
                str(Path(cassie_store).parent),
            ],
            stdout=subprocess.DEVNULL,
            stderr=f,
        )
    url = f"http://127.0.0.1:{port}/{Path(cassie_store).name}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/zarr.json", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"http.server did not start: {log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.05)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _requests(log: Path) -> list[str]:
    return re.findall(r'"GET (\S+) HTTP', log.read_text())


def test_http_store_lists_the_same_trajectories_and_reads_bit_for_bit(server, cassie_store):
    url, _ = server
    remote, local = TrajectoryStore(url), TrajectoryStore(cassie_store)
    assert remote.path == url
    assert remote.trajectories == local.trajectories and len(remote.trajectories) == 24
    assert remote.sources == local.sources and remote.motions() == local.motions()
    assert remote.keys == local.keys
    np.testing.assert_array_equal(remote.lengths, local.lengths)
    assert remote.convention("cassie") == local.convention("cassie")
    for info in local.trajectories:
        for key in info.keys:
            got, want = remote.read(info.traj_id, key), local.read(info.traj_id, key)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes(), (info.path, key)
    path = local.trajectories[1].path
    np.testing.assert_array_equal(remote.read(path, "qpos", 5, 9), local.read(path, "qpos", 5, 9))
    n = int(local.lengths[0])
    np.testing.assert_array_equal(
        remote.read(0, "qpos", n - 3, n + 4, wrap=True),
        local.read(0, "qpos", n - 3, n + 4, wrap=True),
    )
    rng = np.random.default_rng(0)
    for key in ("qpos", "motor_vel", "action", "qvel"):  # action, qvel: agility_reference only
        ids = (
            local.select(motions=("agility_reference",))
            if key in ("action", "qvel")
            else np.arange(len(local.trajectories))
        )
        traj = rng.choice(ids, 32)
        steps = rng.integers(0, local.lengths[traj][:, None], (32, 10))
        got, want = remote.gather(key, traj, steps), local.gather(key, traj, steps)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), key


def test_http_store_opens_without_listing_and_fetches_each_chunk_once(server, cassie_store):
    url, log = server
    before = len(_requests(log))
    remote = TrajectoryStore(url)
    opened = _requests(log)[before:]
    assert opened == [f"/{Path(cassie_store).name}/zarr.json"]  # one request, no probing/listing
    remote.warm(("qpos",))
    fetched = _requests(log)[before:]
    assert not any(p.endswith("/") or "/." in p for p in fetched)  # no listing, no v2 files
    chunks = [p for p in fetched if "/qpos/c/" in p]
    assert (
        len(chunks) == len(set(chunks)) == len(remote.trajectories)
    )  # whole Cassie trajs: 1 chunk
    # the first touch fetches the chunk files in one batch (store.bulk_read), checked against
    # the index's checksums: no array handle is opened, so zarr.json is not fetched again
    assert remote.read_concurrency == 16 and TrajectoryStore(cassie_store).read_concurrency == 1
    assert [p for p in fetched if p.endswith("zarr.json")] == opened
    count = len(_requests(log))
    traj = np.arange(len(remote.trajectories))
    for k in range(3):  # windows come from the host cache: no more requests
        remote.gather(
            "qpos", traj, np.minimum(k + np.arange(5)[None, :], remote.lengths[:, None] - 1)
        )
    assert len(_requests(log)) == count


def test_make_dataset_over_http_yields_the_local_batches(server, cassie_store):
    url, _ = server
    overrides = {
        "num_envs": 6,
        "window_size": 8,
        "allow_wrap": False,
        "assignment": "random",
        "keys": ("qpos", "motor_vel"),
        "seed": 2,
        "num_batches": 4,
        "allow_mixed_dt": True,
    }  # every trajectory, 2 kHz to 29 Hz: bytes, not rates
    remote = list(make_dataset(load_config("default", {"zarr_path": url, **overrides})))
    local = list(
        make_dataset(load_config("default", {"zarr_path": str(cassie_store), **overrides}))
    )
    assert len(remote) == len(local) == 4
    for got, want in zip(remote, local, strict=True):
        assert set(got) == set(want)
        for key in want:
            assert got[key].dtype == want[key].dtype and got[key].tobytes() == want[key].tobytes()


def test_remote_store_pickles_and_reopens(server, cassie_store):
    url, _ = server
    remote = TrajectoryStore(url)
    remote.warm(("qpos",))
    copy = pickle.loads(pickle.dumps(remote))
    assert copy.path == url and copy.cache_info()["bytes_used"] == 0  # handles and cache dropped
    np.testing.assert_array_equal(
        copy.read(3, "qpos"), TrajectoryStore(cassie_store).read(3, "qpos")
    )


def test_missing_or_unreachable_url_raises_store_not_found(server):
    url, _ = server
    with pytest.raises(StoreNotFoundError, match="no Zarr v3 group at .*nope.zarr"):
        TrajectoryStore(url.rsplit("/", 1)[0] + "/nope.zarr")
    dead = f"http://127.0.0.1:{_free_port()}/x.zarr"
    with pytest.raises(StoreNotFoundError, match=re.escape(f"cannot open {dead!r}")):
        TrajectoryStore(dead)


def test_fsspec_memory_url_exports_and_reads_like_a_local_store(shared_data, cassie_store):
    out = "memory://trajopt-loader-test/cassie.zarr"
    with pytest.raises(ExportError, match="remote store.*single_writer=True"):
        export_npz(
            shared_data / "cassie" / "trajopt",
            out,
            source="cassie",
            convention="mujoco",
            motion="agility_reference",
            progress=False,
            overwrite=True,
        )
    export_npz(
        shared_data / "cassie" / "trajopt",
        out,
        source="cassie",
        convention="mujoco",
        motion="agility_reference",
        progress=False,
        overwrite=True,
        single_writer=True,
    )
    mem, local = TrajectoryStore(out), TrajectoryStore(cassie_store)
    want = local.select(motions=("agility_reference",))
    assert [t.path for t in mem.trajectories] == [local.trajectories[i].path for i in want]
    for i, j in zip(range(len(mem.trajectories)), want, strict=True):
        for key in ("qpos", "qvel", "action"):
            assert mem.read(i, key).tobytes() == local.read(int(j), key).tobytes()
    steps = np.tile(np.arange(6), (3, 1))
    assert (
        mem.gather("qpos", [0, 1, 2], steps).tobytes()
        == local.gather("qpos", want, steps).tobytes()
    )
    with pytest.raises(StoreNotFoundError):
        TrajectoryStore("memory://trajopt-loader-test/none.zarr")


class _FaultyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the store's directory; paths containing a ``missing`` (``forbidden``) string get 404
    (403), paths containing a ``stall`` string wait (up to 10 s, or until the test ends)."""

    def do_GET(self):  # noqa: N802 - http.server's name
        server = self.server
        server.seen.append(self.path)
        for status, paths in ((404, server.missing), (403, server.forbidden)):
            if any(s in self.path for s in paths):
                self.send_error(status)
                return
        if any(s in self.path for s in server.stall) and server.stalls_left != 0:
            server.stalls_left -= 1
            server.release.wait(10)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def faulty(cassie_store):
    """``(url, server)``: a threaded server of the Cassie store whose faults a test sets."""
    handler = functools.partial(_FaultyHandler, directory=str(Path(cassie_store).parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.seen, server.missing, server.forbidden, server.stall = [], [], [], []
    server.stalls_left, server.release = -1, threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{Path(cassie_store).name}", server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


CHUNK0 = "cassie/agility_reference/traj0/qpos/c/0/0"


def test_http_404_for_one_chunk_raises_naming_the_chunk(faulty, cassie_store):
    url, server = faulty
    server.missing.append(CHUNK0)
    store = TrajectoryStore(url)
    with pytest.raises(
        DataIntegrityError,
        match=re.escape(
            f"{url}: trajectory cassie/agility_reference/traj0 (traj_id 0), key 'qpos', chunk 0 "
            f"(rows [0, {store.info(0).length}), {CHUNK0}) is missing"
        ),
    ):
        store.warm(("qpos",))
    np.testing.assert_array_equal(
        store.read(1, "qpos"), TrajectoryStore(cassie_store).read(1, "qpos")
    )


def test_http_403_for_one_chunk_is_a_read_error_not_damage(faulty):
    url, server = faulty
    server.forbidden.append(CHUNK0)
    with pytest.raises(
        StoreReadError,
        match=re.escape(f"reading {url}/cassie/agility_reference/traj0/qpos failed: HTTP 403"),
    ):
        TrajectoryStore(url).read(0, "qpos")
    assert server.seen.count(f"/{url.rsplit('/', 1)[1]}/{CHUNK0}") == 1  # not retried


def test_stalled_chunk_request_times_out_naming_the_url(faulty):
    url, server = faulty
    server.stall.append(CHUNK0)
    store = TrajectoryStore(url, timeout_s=0.3, retries=1)
    start = time.monotonic()
    with pytest.raises(
        StoreReadError,
        match=re.escape(
            f"reading {url}/cassie/agility_reference/traj0/qpos failed after 2 attempt(s)"
        ),
    ):
        store.read(0, "qpos")
    assert time.monotonic() - start < 3  # 2 x 0.3 s + 0.25 s backoff, not the server's 10 s
    assert server.seen.count(f"/{url.rsplit('/', 1)[1]}/{CHUNK0}") == 2


def test_stalled_open_times_out_and_a_retry_recovers(faulty, cassie_store):
    url, server = faulty
    server.stall.append("/zarr.json")
    start = time.monotonic()
    with pytest.raises(StoreReadError, match=re.escape(f"reading {url}/zarr.json failed after 1")):
        TrajectoryStore(url, timeout_s=0.3, retries=0)
    assert time.monotonic() - start < 3
    server.stall[:] = [CHUNK0]
    server.stalls_left = 1  # the first request stalls, the retry is answered
    store = TrajectoryStore(url, timeout_s=0.3, retries=1)
    assert (
        store.read(0, "qpos").tobytes() == TrajectoryStore(cassie_store).read(0, "qpos").tobytes()
    )


def test_config_timeout_reaches_make_dataset(faulty):
    url, server = faulty
    server.stall.append("/c/")  # every chunk
    config = load_config(
        "default",
        {
            "zarr_path": url,
            "num_envs": 2,
            "window_size": 4,
            "keys": ("qpos",),
            "allow_mixed_dt": True,
            "remote_timeout_s": 0.3,
            "remote_retries": 0,
        },
    )
    with pytest.raises(StoreReadError, match="timeout 0.3 s"):
        next(iter(make_dataset(config, process_index=0, process_count=1)))


def test_storage_options_timeout_wins_over_the_default():
    import aiohttp

    mine = aiohttp.ClientTimeout(total=5)
    given = {"client_kwargs": {"timeout": mine, "trust_env": True}, "headers": {"a": "b"}}
    opts = storage_options_for("https://h/s.zarr", given, 30.0)
    assert opts["client_kwargs"] == {"timeout": mine, "trust_env": True} and opts["headers"] == {
        "a": "b"
    }
    default = storage_options_for("http://h/s.zarr", None, 7.0)["client_kwargs"]["timeout"]
    assert (default.sock_connect, default.sock_read, default.total) == (7.0, 7.0, None)
    assert storage_options_for("s3://b/s.zarr", {"anon": True}, 7.0) == {"anon": True}
