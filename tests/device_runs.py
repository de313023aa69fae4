"""Scripts run in fresh subprocesses by tests/pipeline/test_device.py (JAX must be configured before
it starts).

    python tests/device_runs.py sharded               # 8 CPU devices, env axis sharded, 1 process
    python tests/device_runs.py multiprocess ID PORT  # one of 2 processes x 2 CPU devices

Each prints a final ``...-OK`` line; any failed check raises (non-zero exit).
"""

from __future__ import annotations

import sys

import jax


def sharded() -> None:
    jax.config.update("jax_num_cpu_devices", 8)
    import grain
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from trajopt_loader.errors import ShardingError
    from trajopt_loader.pipeline.device import device_iterator

    assert len(jax.devices()) == 8
    mesh = Mesh(np.asarray(jax.devices()), ("env",))
    E, W = 16, 5

    def batch(k):
        x = np.random.default_rng(k).standard_normal((E, W, 3)).astype(np.float32)
        return {"x": x, "env_id": np.arange(E, dtype=np.int32), "chunk": np.int64(k)}

    ds = grain.MapDataset.range(4).map(batch).to_iter_dataset()
    f = jax.jit(lambda b: (abs(b["x"]).sum(axis=(1, 2)) * b["env_id"]).sum() + b["chunk"])
    with device_iterator(ds, NamedSharding(mesh, P("env"))) as it, jax.transfer_guard("disallow"):
        for k, b in enumerate(it):
            assert len(b["x"].addressable_shards) == 8
            assert {s.data.shape for s in b["x"].addressable_shards} == {(2, W, 3)}
            assert b["env_id"].sharding.spec == P("env") and b["chunk"].sharding.is_fully_replicated
            want = batch(k)
            np.testing.assert_array_equal(np.asarray(b["x"]), want["x"])
            oracle = (
                np.abs(want["x"].astype(np.float64)).sum(axis=(1, 2)) * want["env_id"]
            ).sum() + k
            np.testing.assert_allclose(float(f(b)), oracle, rtol=1e-5)
    bad = (
        grain.MapDataset.range(2)
        .map(lambda k: {"x": np.zeros((12, 3), np.float32)})
        .to_iter_dataset()
    )
    with device_iterator(bad, NamedSharding(mesh, P("env"))) as it:
        try:
            next(it)
            raise SystemExit("no error for 12 envs over 8 devices")
        except ShardingError as e:
            assert "does not split evenly" in str(e) and "size 8" in str(e), e
            iterator_error = str(e)
    # the seed API's streamer places windows with the same code: same split, same error text
    from trajopt_loader import DoubleBufferStreamer

    with DoubleBufferStreamer(lambda: batch(0), device=NamedSharding(mesh, P("env"))) as s:
        b = s.next_window(timeout=30)
        assert {sh.data.shape for sh in b["x"].addressable_shards} == {(2, W, 3)}
        np.testing.assert_array_equal(np.asarray(b["x"]), batch(0)["x"])
    with DoubleBufferStreamer(
        lambda: {"x": np.zeros((12, 3), np.float32)}, device=NamedSharding(mesh, P("env"))
    ) as s:
        try:
            s.next_window(timeout=30)
            raise SystemExit("streamer: no error for 12 envs over 8 devices")
        except ShardingError as e:
            assert str(e) == iterator_error, (str(e), iterator_error)
    print("SHARDED-OK", k + 1)


def multiprocess(process_id: int, port: int) -> None:
    """Process ``process_id`` of 2 holds envs [4 * id, 4 * id + 4); the default sharding builds the
    global [8, W, 2] array with make_array_from_process_local_data; a jitted sum sees all 8 envs."""
    jax.config.update("jax_num_cpu_devices", 2)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
    import grain
    import numpy as np

    from trajopt_loader.pipeline.device import device_iterator

    E_local, W = 4, 3

    def batch(k):
        env = np.arange(E_local) + process_id * E_local
        x = env[:, None, None] * 100.0 + k + np.zeros((E_local, W, 2))
        return {"x": x.astype(np.float32), "env_id": env.astype(np.int32), "chunk": np.int64(k)}

    ds = grain.MapDataset.range(3).map(batch).to_iter_dataset()
    f = jax.jit(lambda b: b["x"].sum() + b["chunk"])
    with device_iterator(ds) as it:
        for k, b in enumerate(it):
            assert b["x"].shape == (8, W, 2) and b["env_id"].shape == (8,), b["x"].shape
            shards = sorted(b["env_id"].addressable_shards, key=lambda s: s.index[0].start)
            local = np.concatenate([np.asarray(s.data) for s in shards])
            np.testing.assert_array_equal(local, np.arange(4) + 4 * process_id)
            want = sum((e * 100 + k) * W * 2 for e in range(8)) + k
            assert abs(float(f(b)) - want) < 1e-3, (float(f(b)), want)
        assert it.get_state() == {"next_index": 3}, it.get_state()
    print("MULTIPROCESS-OK", process_id, k + 1)


if __name__ == "__main__":
    if sys.argv[1] == "sharded":
        sharded()
    else:
        multiprocess(int(sys.argv[2]), int(sys.argv[3]))
