"""Remote store benchmark: opening and first touch over HTTP with an injected per-request latency.

    python benchmarks/bench_remote_store.py [--latency-ms 20] [--copies 4]

Exports the real Cassie trajectories (../shared/data/cassie/trajopt, ``copies`` times as
sources, 24 trajectories each) to a temporary store, serves it from a threaded HTTP server in a
separate process that sleeps ``latency-ms`` before every response (a stand-in for S3 / GCS round
trips), and times: opening the store (consolidated metadata), loading ``qpos`` whole into the host
cache with ``read_concurrency`` 1 vs. the remote default, and a 1024-env gather from the cache
(remote vs. local: the same, since windows never touch the network after the first load).
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from trajopt_loader.store import TrajectoryStore, export_npz
from trajopt_loader.store.reader import REMOTE_READ_CONCURRENCY

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cassie" / "trajopt"


class _SlowHandler(SimpleHTTPRequestHandler):
    latency = 0.0

    def send_head(self):
        time.sleep(self.latency)
        return super().send_head()

    def log_message(self, fmt, *args):
        sys.stderr.write("GET\n")


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default listen backlog (5) drops concurrent connects (1 s retry)


def serve(directory: str, latency_ms: float) -> None:
    """Serve ``directory`` on a free port of 127.0.0.1 (printed first), one log line per request."""
    _SlowHandler.latency = latency_ms / 1e3
    server = _Server(("127.0.0.1", 0), functools.partial(_SlowHandler, directory=directory))
    print(server.server_address[1], flush=True)
    server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve, args.latency_ms)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.zarr"
        for c in range(args.copies):
            export_npz(
                DATA,
                path,
                source=f"cassie{c}",
                convention="mujoco",
                allow_missing=("qvel",),
                progress=False,
            )
        log = Path(tmp) / "requests.log"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", tmp, "--latency-ms", str(args.latency_ms)],
            stdout=subprocess.PIPE,
            stderr=open(log, "w"),
            text=True,
        )
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/store.zarr"

        def requests() -> int:
            return log.read_text().count("GET")

        local = TrajectoryStore(path)
        n = len(local.trajectories)
        print(
            f"{n} trajectories, qpos {local.cache.meta('qpos').nbytes / 1e6:.1f} MB, "
            f"latency {args.latency_ms:g} ms per request"
        )
        rng = np.random.default_rng(0)
        traj = rng.integers(0, n, 1024)
        length = local.lengths[traj][:, None]
        steps = (rng.integers(0, length) + np.arange(32)) % length
        for conc in (1, REMOTE_READ_CONCURRENCY):
            before = requests()
            t0 = time.perf_counter()
            store = TrajectoryStore(url, read_concurrency=conc)
            t_open = time.perf_counter() - t0
            t0 = time.perf_counter()
            store.warm(("qpos",))
            t_warm = time.perf_counter() - t0
            print(
                f"  read_concurrency={conc:<3} open {t_open * 1e3:7.1f} ms   first touch of qpos "
                f"{t_warm * 1e3:8.1f} ms   ({requests() - before} requests)"
            )
        for name, s in (("remote", store), ("local", local)):
            s.warm(("qpos",))
            t0 = time.perf_counter()
            for _ in range(20):
                out = s.gather("qpos", traj, steps)
            print(
                f"  gather 1024 x 32 qpos from the {name} store's cache: "
                f"{(time.perf_counter() - t0) / 20 * 1e3:.2f} ms"
            )
        np.testing.assert_array_equal(out, store.gather("qpos", traj, steps))
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
