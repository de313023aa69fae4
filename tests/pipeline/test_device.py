"""Tests of trajopt_loader.pipeline.device: device double buffering, sharding, resume with batches
in the prefetch slots, int32 range checks, threads."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO

from trajopt_loader.errors import CheckpointError, IndexOverflowError, ShardingError
from trajopt_loader.pipeline.device import DeviceIterator, device_iterator
from trajopt_loader.pipeline.placement import default_sharding, leaf_sharding, to_device_dtypes

DATA = REPO.parent / "shared" / "data"
QPOS = np.load(DATA / "cassie" / "trajopt" / "agility_reference" / "traj_2.npz")[
    "qpos"
]  # [28, 35] float64
E, W = 4, 6
NO_POOL = grain.ReadOptions(
    num_threads=0, prefetch_buffer_size=0
)  # source without grain's read pool


def make_batch(k: int) -> dict[str, np.ndarray]:
    """Batch k (the oracle): real Cassie qpos windows, env e reads steps (k*W + e + [0, W)) mod
    T."""
    steps = (k * W + np.arange(E)[:, None] + np.arange(W)[None, :]) % len(QPOS)
    return {
        "qpos": QPOS[steps],  # [E, W, 35] float64
        "valid": ((k + np.arange(E))[:, None] % 3 != 0)
        | (np.arange(W)[None, :] < 3),  # [E, W] bool
        "step": steps.astype(np.int32),  # [E, W] int32
        "env_id": np.arange(E, dtype=np.int32),
        "chunk": np.int64(k),  # () int64
    }


def source(
    n: int = 12, fail_at: int | None = None, produced: list | None = None
) -> grain.IterDataset:
    def element(k):
        if produced is not None:
            produced.append(k)
        if k == fail_at:
            raise KeyError(f"broken element {k}")
        return make_batch(k)

    return grain.MapDataset.range(n).map(element).to_iter_dataset(NO_POOL)


def assert_batch_equal(batch, k: int) -> None:
    want = to_device_dtypes(make_batch(k))
    assert set(batch) == set(want)
    for key, value in want.items():
        assert isinstance(batch[key], jax.Array), key
        assert batch[key].dtype == value.dtype and batch[key].shape == value.shape, key
        np.testing.assert_array_equal(np.asarray(batch[key]), value, err_msg=key)


def test_batches_in_order_on_device_with_documented_dtypes():
    with device_iterator(source(5)) as it:
        batches = list(it)
    assert len(batches) == 5
    for k, batch in enumerate(batches):
        assert_batch_equal(batch, k)
    b = batches[2]
    assert {k: (v.shape, str(v.dtype)) for k, v in b.items()} == {
        "qpos": ((E, W, 35), "float32"),
        "valid": ((E, W), "bool"),
        "step": ((E, W), "int32"),
        "env_id": ((E,), "int32"),
        "chunk": ((), "int32"),
    }
    assert int(b["chunk"]) == 2 and b["qpos"].devices() == {jax.devices()[0]}


@jax.jit
def masked_time_sum(batch):
    """lax.scan over the time axis: running sum of qpos * valid, per env -> [E, 35]."""

    def body(acc, t):
        q, v = t
        return acc + q * v[:, None], None

    xs = (jnp.swapaxes(batch["qpos"], 0, 1), jnp.swapaxes(batch["valid"], 0, 1))
    acc, _ = jax.lax.scan(body, jnp.zeros(batch["qpos"].shape[::2], batch["qpos"].dtype), xs)
    return acc


def test_jitted_consumer_runs_under_transfer_guard_disallow():
    masked_time_sum(jax.device_put(to_device_dtypes(make_batch(0))))  # compile outside the guard
    with device_iterator(source(6)) as it, jax.transfer_guard("disallow"):
        got = [masked_time_sum(batch) for batch in it]
        with pytest.raises(
            Exception, match="[Dd]isallowed"
        ):  # the guard is active: numpy input fails
            masked_time_sum(make_batch(0))
    for k, out in enumerate(got):
        b = make_batch(k)
        oracle = (b["qpos"].astype(np.float32) * b["valid"][..., None]).sum(axis=1)
        np.testing.assert_allclose(np.asarray(out), oracle, rtol=1e-6, atol=1e-5)


def test_int64_beyond_int32_raises_and_int64_in_range_is_cast():
    def with_index(k):
        b = make_batch(k)
        b["frame"] = np.array([0, 5, 2**31 - 1, 2**31 + k], np.int64)[: 3 + (k >= 2)]
        return b

    ds = grain.MapDataset.range(4).map(with_index).to_iter_dataset(NO_POOL)
    with device_iterator(ds) as it:
        for _ in range(2):
            frame = next(it)["frame"]
            assert frame.dtype == jnp.int32
            np.testing.assert_array_equal(np.asarray(frame), [0, 5, 2**31 - 1])
        with pytest.raises(
            IndexOverflowError, match=r"\['frame'\].*2147483650 at index \(3,\)"
        ) as info:
            next(it)
    assert isinstance(info.value, OverflowError)
    with pytest.raises(IndexOverflowError, match="-2147483649"):
        to_device_dtypes({"step": np.array([[-(2**31) - 1]], np.int64)})


def test_producer_error_reaches_consumer_with_original_type():
    with device_iterator(source(10, fail_at=3)) as it:
        for k in range(3):
            assert_batch_equal(next(it), k)
        with pytest.raises(KeyError, match="broken element 3"):
            next(it)


def flaky_source(n: int, fail_at: int, read: grain.ReadOptions):
    """Elements 0..n-1; element ``fail_at`` raises ``KeyError`` on its first production only."""
    calls, raised = Counter(), []

    def element(k):
        calls[k] += 1
        if k == fail_at and calls[k] == 1:
            raised.append(KeyError(f"broken element {k}"))
            raise raised[-1]
        return make_batch(k)

    return grain.MapDataset.range(n).map(element).to_iter_dataset(read), calls, raised


@pytest.mark.parametrize(
    "read", [NO_POOL, grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)]
)
def test_after_an_error_the_iterator_stays_failed_and_set_state_retries_the_batch(read):
    ds, calls, raised = flaky_source(12, 3, read)
    it = device_iterator(ds, host_buffer=2, device_buffer=2)
    for k in range(3):
        assert_batch_equal(next(it), k)
    with pytest.raises(KeyError) as first:
        next(it)
    assert first.value is raised[0]
    for _ in range(3):  # the read pool would hand out batch 4 here, and get_state() say 4
        with pytest.raises(
            KeyError, match=r"broken element 3.*raised again: .*next_index 3\."
        ) as again:
            next(it)
        assert again.value.__cause__ is raised[0]
    assert it.get_state() == {"next_index": 3}
    with pytest.raises(CheckpointError, match=r"IndexError: Checkpoint `next_index` 99 is out of"):
        it.set_state({"next_index": 99})  # refused: the iterator stays failed at 3
    with pytest.raises(KeyError, match="raised again"):
        next(it)
    it.set_state(it.get_state())  # rebuilds host and device stages at 3
    assert [int(b["chunk"]) for b in it] == list(range(3, 12))
    assert calls[3] == 2 and it.get_state() == {"next_index": 12}
    it.close()

    it = device_iterator(flaky_source(12, 5, read)[0])
    assert [int(next(it)["chunk"]) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(KeyError):
        next(it)
    it.close()
    assert it.get_state() == {"next_index": 5}  # close() keeps the position of the failure
    fresh = device_iterator(source(12))
    fresh.set_state(it.get_state())
    assert_batch_equal(next(fresh), 5)
    fresh.close()


def _settled_threads(expected: int) -> int:
    for _ in range(
        200
    ):  # grain/jax helper threads may take a moment to exit; never a timed assertion.
        if threading.active_count() <= expected:
            break
        time.sleep(0.01)
    return threading.active_count()


def test_close_exit_and_garbage_stop_the_threads():
    with device_iterator(source(3)) as warm:  # start JAX's own threads before taking the baseline
        next(warm)
    gc.collect()  # iterators earlier tests left in reference cycles (e.g. with a stored error)
    baseline = _settled_threads(1)

    it = device_iterator(source(50))
    next(it)
    assert threading.active_count() >= baseline + 2  # host + device prefetch threads
    it.close()
    assert threading.active_count() == baseline  # close() joined them
    it.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        next(it)

    with device_iterator(source(50), host_buffer=1, device_buffer=1) as it:
        next(it)
    assert threading.active_count() == baseline

    it = device_iterator(source(50))
    next(it)
    del it
    gc.collect()
    assert threading.active_count() == baseline


def _wait_produced(produced: list, count: int) -> None:
    for _ in range(500):
        if len(produced) >= count:
            return
        time.sleep(0.01)


@pytest.mark.parametrize("host_buffer,device_buffer", [(2, 2), (1, 3), (0, 1)])
def test_state_refers_to_last_batch_handed_out(host_buffer, device_buffer):
    n_total = 12
    for taken in (1, 4, 7):
        produced: list[int] = []
        it = device_iterator(
            source(n_total, produced=produced), host_buffer=host_buffer, device_buffer=device_buffer
        )
        for k in range(taken):
            assert_batch_equal(next(it), k)
        _wait_produced(produced, taken + host_buffer + device_buffer)
        assert len(produced) > taken  # batches beyond the consumer's sit in the prefetch buffers
        state = it.get_state()
        rest = [int(b["chunk"]) for b in it]
        it.close()
        assert rest == list(range(taken, n_total))

        fresh = device_iterator(
            source(n_total), host_buffer=host_buffer, device_buffer=device_buffer
        )
        fresh.set_state(state)
        for k in range(taken, n_total):  # batch n+1 first: nothing skipped, nothing repeated
            assert_batch_equal(next(fresh), k)
        with pytest.raises(StopIteration):
            next(fresh)
        fresh.close()


def test_set_state_midway_rewinds_the_same_iterator_and_state_survives_close():
    it = device_iterator(source(10))
    for _ in range(3):
        next(it)
    state = it.get_state()
    for _ in range(4):
        next(it)
    it.set_state(state)
    assert_batch_equal(next(it), 3)
    it.close()
    assert it.get_state() == {"next_index": 4} and isinstance(it, DeviceIterator)


def test_refused_state_leaves_the_iterator_where_it_was():
    from trajopt_loader.pipeline.stream_iterators import StreamDataset

    record = {
        "version": 1,
        "fingerprint": "0" * 16,
        "config": {"seed": 0},
        "store": {"trajectories": 0, "keys": {}, "index": ""},
    }
    produced: list[int] = []
    it = device_iterator(
        StreamDataset(source(10, produced=produced), record), host_buffer=2, device_buffer=2
    )
    for k in range(3):
        assert_batch_equal(next(it), k)
    _wait_produced(produced, 3 + 2 + 2)  # batches 3.. sit in the buffers
    other = dict(record, config={"seed": 1})
    with pytest.raises(
        CheckpointError,
        match=r"another stream than this pipeline \(seed: saved 1, "
        r"config 0\)",
    ):
        it.set_state({"next_index": 7, "stream": other})
    assert_batch_equal(next(it), 3)  # the batches dropped from the buffers are produced again
    assert it.get_state() == {"next_index": 4, "stream": record}
    it.close()
    plain = device_iterator(source(10), host_buffer=2, device_buffer=2)
    next(plain)
    with pytest.raises(
        CheckpointError,
        match=r"does not fit this pipeline \(KeyError: "
        r"'next_index'\).* The iterator stays where it was",
    ):
        plain.set_state({"next_idx": 5})
    with pytest.raises(
        CheckpointError, match=r"\(IndexError: Checkpoint `next_index` 99 is out of"
    ):
        plain.set_state({"next_index": 99})
    assert_batch_equal(next(plain), 1)
    plain.close()


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="grain IterDataset"):
        device_iterator([make_batch(0)])
    with pytest.raises(ValueError, match="host_buffer must be an int >= 0"):
        device_iterator(source(2), host_buffer=-1)
    with pytest.raises(ShardingError, match="sharding must be"):
        device_iterator(source(2), sharding="env")


def test_leaf_sharding_truncates_spec_to_rank():
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    s = NamedSharding(Mesh(np.asarray(jax.devices()[:1]), ("env",)), P("env", None))
    assert leaf_sharding(s, 3).spec == P("env", None)
    assert leaf_sharding(s, 1).spec == P("env")
    assert leaf_sharding(s, 0).spec == P()
    d = default_sharding()  # every device, in (process, id) order, env axis split
    assert d.spec == P("env") and d.mesh.axis_names == ("env",)
    assert list(d.mesh.devices.flat) == sorted(jax.devices(), key=lambda x: (x.process_index, x.id))


def _env() -> dict:
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))


@pytest.mark.slow
def test_eight_cpu_devices_env_sharded_run_in_subprocess():
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "device_runs.py"), "sharded"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SHARDED-OK 4" in proc.stdout


@pytest.mark.slow
def test_two_processes_build_global_arrays_from_local_batches():
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tests" / "device_runs.py"),
                "multiprocess",
                str(i),
                str(port),
            ],
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, (out, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, err[-3000:]
        assert f"MULTIPROCESS-OK {i} 3" in out


@pytest.mark.slow
def test_iterator_left_open_at_exit_is_closed_quietly():
    code = (
        "import grain, numpy as np\nfrom trajopt_loader.pipeline.device import device_iterator\n"
        "ds = grain.MapDataset.range(50).map(lambda k: {'x': np.full((4, 3), k, np.float32)})\n"
        "it = device_iterator(ds)\nprint(int(next(it)['x'][0, 0]), int(next(it)['x'][0, 0]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["0", "1"], proc.stderr[-3000:]
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[
        -3000:
    ]
