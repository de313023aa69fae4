"""Tests of trajopt_loader.compat.stream.DoubleBufferStreamer, and the seed pipeline end to end on
real Cassie data (TrajoptLoader -> VectorizedTrajectoryDataset -> DoubleBufferStreamer -> jitted
lax.scan) against a numpy oracle read straight from the ``.npz`` files."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from trajopt_loader.compat import DoubleBufferStreamer, TrajoptLoader, VectorizedTrajectoryDataset
from trajopt_loader.errors import IndexOverflowError

DATA = REPO.parent / "shared" / "data" / "cassie" / "trajopt"


def wait_for(cond, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def counter_fn(calls: list, delay: float = 0.0, fail_at: int | None = None):
    """window_fn returning ``{"x": [n, n, n] int32, "f": [2] float64}`` for its n-th call."""

    def fn():
        n = len(calls)
        calls.append(n)
        time.sleep(delay)
        if n == fail_at:
            raise KeyError(f"broken window {n}")
        return {"x": np.full(3, n, np.int32), "f": np.array([n, 0.5])}

    return fn


def test_windows_in_order_on_device():
    calls: list = []
    with DoubleBufferStreamer(counter_fn(calls)) as s:
        for n, batch in zip(range(5), s, strict=False):  # the stream is endless: take 5
            assert isinstance(batch["x"], jax.Array) and batch["f"].dtype == jnp.float32  # x64 off
            np.testing.assert_array_equal(np.asarray(batch["x"]), [n, n, n])
            np.testing.assert_array_equal(np.asarray(batch["f"]), [n, 0.5])


def test_overlap_producer_and_consumer():
    """window_fn 50 ms + consumer 50 ms: 20 windows take ~1.05 s overlapped, 2 s synchronous."""
    jax.device_put(np.zeros(1)).block_until_ready()  # backend start-up outside the measurement
    calls: list = []
    got = []
    t0 = time.perf_counter()
    with DoubleBufferStreamer(window_fn=counter_fn(calls, delay=0.05)) as s:
        for _ in range(20):
            got.append(int(s.next_window(timeout=10)["x"][0]))
            time.sleep(0.05)  # the consumer's compute
    elapsed = time.perf_counter() - t0
    assert got == list(range(20))
    assert elapsed < 1.6, f"20 windows took {elapsed:.2f} s; no overlap (synchronous: 2.0 s)"


@pytest.mark.parametrize("queue_size", [1, 2, 3])
def test_slots_bound_prefetch_and_stop_joins_blocked_producer(queue_size):
    """queue_size windows at once: the one the consumer holds + queue_size - 1 ahead."""
    base = threading.active_count()
    calls: list = []
    s = DoubleBufferStreamer(counter_fn(calls), queue_size=queue_size).start()
    wait_for(lambda: len(calls) == queue_size)  # nothing held yet: every slot filled
    time.sleep(0.2)
    assert len(calls) == queue_size and s.running  # blocked: no free slot
    assert int(s.next_window()["x"][0]) == 0
    time.sleep(0.2)
    assert len(calls) == queue_size  # window 0 is held: still no free slot
    assert int(s.next_window()["x"][0]) == 1  # gives window 0's slot back
    wait_for(lambda: len(calls) == queue_size + 1)
    time.sleep(0.2)
    assert len(calls) == queue_size + 1  # holding 1: window_fn ran up to 1 + queue_size - 1
    assert s.stop() == queue_size - 1  # produced, never taken: dropped
    assert not s.running and threading.active_count() == base
    assert s.stop() == 0


def test_error_is_reraised_and_streamer_restarts():
    base = threading.active_count()
    calls: list = []
    s = DoubleBufferStreamer(counter_fn(calls, fail_at=2))
    assert [int(s.next_window()["x"][0]) for _ in range(2)] == [0, 1]
    with pytest.raises(KeyError, match="broken window 2"):
        s.next_window(timeout=10)
    assert not s.running and threading.active_count() == base
    assert int(s.next_window(timeout=10)["x"][0]) == 3  # next_window restarts the producer
    s.stop()
    # errors of the device stage too: an int64 that int32 cannot hold (x64 off)
    with DoubleBufferStreamer(lambda: {"step": np.array([2**40])}) as s2:
        with pytest.raises(IndexOverflowError, match="step"):
            s2.next_window(timeout=10)
    assert threading.active_count() == base


def test_reset_drops_prefetched_windows():
    cursor = {"c": 0}

    def fn():
        v = cursor["c"]
        cursor["c"] += 1
        return {"x": np.array([v])}

    with DoubleBufferStreamer(fn) as s:
        assert int(s.next_window()["x"][0]) == 0
        wait_for(lambda: cursor["c"] == 2)  # window 0 held, window 1 prepared (one ahead)
        time.sleep(0.1)
        assert cursor["c"] == 2
        assert s.reset() == 1
        cursor["c"] = 100
        assert int(s.next_window()["x"][0]) == 100


def test_device_and_sharding_arguments():
    dev = jax.devices()[0]
    with DoubleBufferStreamer(lambda: {"q": np.ones((4, 2))}, device=dev) as s:
        assert s.next_window()["q"].devices() == {dev}
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("env",))
    sharding = NamedSharding(mesh, PartitionSpec("env"))
    with DoubleBufferStreamer(
        lambda: {"q": np.ones((4, 2)), "k": np.int32(3)}, device=sharding
    ) as s:
        batch = s.next_window()
        assert (
            batch["q"].sharding.spec == PartitionSpec("env")
            and batch["k"].sharding.spec == PartitionSpec()
        )
    with pytest.raises(TypeError, match="jax.Device"):
        DoubleBufferStreamer(lambda: {}, device="cpu")
    with pytest.raises(ValueError, match="queue_size"):
        DoubleBufferStreamer(lambda: {}, queue_size=0)


def test_garbage_collected_streamer_stops_its_thread():
    s = DoubleBufferStreamer(counter_fn([])).start()
    thread = s._producer.thread
    del s
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


def scan_step(carry, x):
    qpos_t, qvel_t = x  # [E, 35], [E, 32]
    carry = 0.5 * carry + jnp.sum(qpos_t[:, :6] * qvel_t[:, :6], axis=-1) + qpos_t[:, 2]
    return carry, carry


@jax.jit
def consume(carry, batch):
    return jax.lax.scan(
        scan_step, carry, (jnp.swapaxes(batch["qpos"], 0, 1), jnp.swapaxes(batch["qvel"], 0, 1))
    )


def test_seed_pipeline_end_to_end_cassie(tmp_path):
    zarr_path = TrajoptLoader(DATA).save(
        out_dir=tmp_path, dataset_source="cassie", motion="agility_reference", convention="mujoco"
    )
    num_envs, window, n_windows = 6, 32, 5
    ds = VectorizedTrajectoryDataset(
        zarr_path=zarr_path,
        num_envs=num_envs,
        cfg={"window_size": window, "buffer_size": 128, "allow_wrap": True},
    )
    assert ds.available_trajectories == [f"cassie/agility_reference/traj{i}" for i in range(3)]
    assert ds.convention("cassie").quat_order == "wxyz"
    start = [0, 1650, 20, 333, 1681, 27]  # traj2 has 28 rows: its windows wrap within themselves
    ds.update_references(
        env_to_traj={e: e % 3 for e in range(num_envs)}, env_to_step=dict(enumerate(start))
    )

    def host_fetch_window():
        qpos = ds.fetch_window(range(num_envs), key="qpos", window_size=window)
        qvel = ds.fetch_window(range(num_envs), key="qvel", window_size=window)
        ds.update_references(env_to_step={e: ds.env_steps[e] + window for e in range(num_envs)})
        return {"qpos": qpos, "qvel": qvel}

    carry = jnp.zeros(num_envs, jnp.float32)
    outs = []
    with DoubleBufferStreamer(window_fn=host_fetch_window) as streamer:
        for _ in range(n_windows):
            batch = streamer.next_window()
            assert batch["qpos"].shape == (num_envs, window, 35) and batch["qvel"].shape == (
                num_envs,
                window,
                32,
            )
            with jax.transfer_guard("disallow"):  # the batch is already on the device
                carry, ys = consume(carry, batch)
            outs.append(np.asarray(ys))
    got = np.concatenate(outs, axis=0)  # [n_windows * W, E]
    want = np.zeros_like(got, dtype=np.float64)
    for e in range(num_envs):
        with np.load(DATA / "agility_reference" / f"traj_{e % 3}.npz") as f:
            qpos, qvel = f["qpos"], f["qvel"]
        c = 0.0
        for k, t in enumerate((start[e] + np.arange(n_windows * window)) % len(qpos)):
            c = 0.5 * c + qpos[t, :6] @ qvel[t, :6] + qpos[t, 2]
            want[k, e] = c
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.asarray(carry).dtype == np.float32


@pytest.mark.slow
def test_example_script_runs():
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "seed_pipeline.py"),
            "--data",
            str(DATA),
            "--windows",
            "3",
            "--num-envs",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK: results match the numpy oracle" in out.stdout
