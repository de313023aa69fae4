"""One JAX process of the 2-process closed-loop run in tests/pipeline/test_multihost_feedback.py.

    python tests/multihost_feedback_worker.py PROCESS_ID PORT STORE OUT_DIR CONFIG_JSON NUM_BATCHES

Process ``PROCESS_ID`` of 2 streams ``NUM_BATCHES`` batches of an adaptive ``make_dataset(config)``
through ``device_iterator(..., env_sharding())`` and reports, for its own env rows only, the
failures of :func:`failures` (a pure function of trajectory and start). It writes
``OUT_DIR/p{PROCESS_ID}.npz``: ``traj_id``, ``start`` [N, E] (the global batches, all-gathered)
and ``stats`` [N, n_bins] float64 (its statistics after each report).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils
from ml_collections import ConfigDict

from trajopt_loader.configs import load_config
from trajopt_loader.pipeline import device_iterator, make_dataset
from trajopt_loader.pipeline.distributed import env_sharding, maybe_initialize_distributed


def failures(traj_id: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Envs on trajectory 1 starting in steps 20..29 fail at window step 1."""
    return (traj_id == 1) & (start >= 20) & (start < 30), np.ones(traj_id.shape, np.int64)


def local_rows(x: jax.Array) -> np.ndarray:
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])


def main() -> None:
    PROCESS_ID, PORT = int(sys.argv[1]), int(sys.argv[2])
    STORE, OUT = sys.argv[3], Path(sys.argv[4])
    CONFIG, N = json.loads(sys.argv[5]), int(sys.argv[6])
    dist = ConfigDict(
        {"coordinator_address": f"127.0.0.1:{PORT}", "num_processes": 2, "process_id": PROCESS_ID}
    )
    assert maybe_initialize_distributed(dist, initialization_timeout=30)
    assert jax.process_count() == 2
    config = load_config("default", {"zarr_path": STORE, **CONFIG})
    ds = make_dataset(config)
    out = {"traj_id": [], "start": [], "stats": []}
    with device_iterator(ds, env_sharding()) as it:
        for _ in range(N):
            batch = next(it)
            it.report_failures(*failures(local_rows(batch["traj_id"]), local_rows(batch["start"])))
            glob = multihost_utils.process_allgather(
                {"traj_id": batch["traj_id"], "start": batch["start"]}, tiled=True
            )
            out["traj_id"].append(np.asarray(glob["traj_id"]))
            out["start"].append(np.asarray(glob["start"]))
            out["stats"].append(ds.feedback.statistics())
    np.savez(OUT / f"p{PROCESS_ID}.npz", **{k: np.stack(v) for k, v in out.items()})
    multihost_utils.sync_global_devices("multihost_feedback_worker done")
    print("WORKER-OK", PROCESS_ID, flush=True)


if __name__ == "__main__":
    main()
