"""One JAX process of the 2-process run in tests/test_multihost.py (JAX is configured before it
starts).

    python tests/multihost_worker.py PROCESS_ID PORT STORE OUT_DIR CONFIGS_JSON NUM_BATCHES SAVE_AT

For every config (a JSON dict of overrides of the default config, keyed by a name), process
``PROCESS_ID`` of 2 (2 CPU devices each) streams ``NUM_BATCHES`` batches of
``make_dataset(config)`` through ``device_iterator(..., env_sharding())``, saving its position with
``save_process_state`` after ``SAVE_AT`` batches, then restores a fresh pipeline from that state and
streams the rest again. It writes ``OUT_DIR/p{PROCESS_ID}_{name}.npz``:

* ``local_{key}``   [N, E/2, ...]  this process's rows of each batch (its addressable shards);
* ``global_{key}``  [N, E, ...]    the global batch (``multihost_utils.process_allgather``);
* ``restored_{key}`` [N - SAVE_AT, E, ...] global batches after the restore;
* ``gather_traj`` [M, E/2], ``gather_step`` [M, E/2, W]: every ``store.gather("qpos", ...)`` call;
* ``jit_sum`` [N]: a jitted ``sum(qpos * valid)`` over the global batch (a cross-process reduction);
* ``cached_qpos``: traj_ids whose qpos the host cache holds; ``cached_bytes``: its bytes used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax

PROCESS_ID, PORT = int(sys.argv[1]), int(sys.argv[2])
STORE, OUT = sys.argv[3], Path(sys.argv[4])
CONFIGS, N, SAVE_AT = json.loads(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])

jax.config.update("jax_num_cpu_devices", 2)

import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from ml_collections import ConfigDict  # noqa: E402

from trajopt_loader.configs import load_config  # noqa: E402
from trajopt_loader.pipeline import device_iterator, make_dataset  # noqa: E402
from trajopt_loader.pipeline.distributed import env_sharding, maybe_initialize_distributed  # noqa: E402
from trajopt_loader.pipeline.process_state import restore_process_state, save_process_state  # noqa: E402
from trajopt_loader.store import TrajectoryStore  # noqa: E402


class RecordingStore(TrajectoryStore):
    """A store that records the (traj_ids, steps) of every ``qpos`` gather (in call order)."""

    calls: list

    def gather(self, key, traj_ids, steps):
        if key == "qpos":
            self.calls.append((np.array(traj_ids), np.array(steps)))
        return super().gather(key, traj_ids, steps)


def local_rows(x: jax.Array) -> np.ndarray:
    """This process's rows of a global array, in global row order (from its addressable shards)."""
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
    return np.concatenate([np.asarray(s.data) for s in shards])


def run(name: str, overrides: dict) -> None:
    config = load_config("default", {"zarr_path": STORE, **overrides})
    store = RecordingStore(STORE, cache_bytes=config.cache_bytes)
    store.calls = []
    sharding = env_sharding()
    consume = jax.jit(lambda b: (b["qpos"] * b["valid"][..., None]).sum())
    out: dict[str, list] = {}
    ckpt = OUT / f"ckpt_{name}"
    with device_iterator(
        make_dataset(config, store), sharding, host_buffer=2, device_buffer=2
    ) as it:
        for k in range(N):
            batch = next(it)
            assert batch["qpos"].shape[0] == config.num_envs, batch["qpos"].shape
            assert not batch["qpos"].is_fully_addressable  # a global array over 2 processes
            for key, value in batch.items():
                out.setdefault(f"local_{key}", []).append(
                    local_rows(value) if value.ndim else np.asarray(value)
                )
            glob = multihost_utils.process_allgather(batch, tiled=True)
            for key, value in glob.items():
                out.setdefault(f"global_{key}", []).append(np.asarray(value))
            out.setdefault("jit_sum", []).append(np.asarray(consume(batch)))
            if k + 1 == SAVE_AT:
                save_process_state(ckpt, it, config)
    fresh = RecordingStore(STORE, cache_bytes=config.cache_bytes)
    fresh.calls = []
    with device_iterator(make_dataset(config, fresh), sharding) as it:
        restore_process_state(ckpt, it, config)
        for _ in range(N - SAVE_AT):
            glob = multihost_utils.process_allgather(next(it), tiled=True)
            for key, value in glob.items():
                out.setdefault(f"restored_{key}", []).append(np.asarray(value))
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["gather_traj"] = np.stack([t for t, _ in store.calls])
    arrays["gather_step"] = np.stack([s for _, s in store.calls])
    arrays["cached_qpos"] = store.cache.held("qpos")  # trajectories this process decoded
    arrays["cached_bytes"] = np.array(store.cache_info()["bytes_used"])
    arrays["mesh_processes"] = np.array([d.process_index for d in sharding.mesh.devices.flat])
    np.savez(OUT / f"p{PROCESS_ID}_{name}.npz", **arrays)


def main() -> None:
    dist = ConfigDict(
        {"coordinator_address": f"127.0.0.1:{PORT}", "num_processes": 2, "process_id": PROCESS_ID}
    )
    assert maybe_initialize_distributed(dist, initialization_timeout=30)
    assert jax.process_count() == 2 and jax.process_index() == PROCESS_ID
    assert len(jax.devices()) == 4 and len(jax.local_devices()) == 2
    for name, overrides in CONFIGS.items():
        run(name, overrides)
    multihost_utils.sync_global_devices("multihost_worker done")
    print("WORKER-OK", PROCESS_ID, flush=True)


if __name__ == "__main__":
    main()
