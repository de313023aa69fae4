r"""Cost of building the ``ref_*`` references per batch: numpy on the host vs JAX jitted on the
device.

    python benchmarks/bench_references.py [--num_envs 4096] [--window_size 32] [--repeats 10]
        [--no-ee]

Input: one Digit v3 batch (``nq = 61``, ``nv = 54``, 20 actuated joints, 4 end effectors) of
random states, float32, half the envs in MuJoCo and half in Pinocchio convention, with episode
origins and a ``valid`` mask. Timed (median and minimum of ``--repeats`` runs; the machine may
be shared):

  numpy core        ``compute_references`` on host arrays (scipy Rotation, float64 inside)
  grain transform   ``BuildReferences.map`` on the batch dict (core + key handling + dtype)
  jax (on device)   ``compute_references_jax`` jitted, inputs already on the device, until
                    ``block_until_ready`` (compile time printed separately)
  jax + transfer    the same including ``jax.device_put`` of the host inputs

Run with ``JAX_PLATFORMS=cpu`` for the CPU backend, or on a GPU machine for the device numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from trajopt_loader import (
    MUJOCO,
    PINOCCHIO,
    BuildReferences,
    compute_references,
    compute_references_jax,
)
from trajopt_loader.robots import digit_v3


def make_batch(num_envs: int, window: int, with_ee: bool, seed: int = 0) -> dict:
    """Random Digit batch dict: unit base quaternions, envs alternate MuJoCo / Pinocchio."""
    rng = np.random.default_rng(seed)
    spec = digit_v3.SPEC
    qpos = rng.normal(size=(num_envs, window, spec.nq)).astype(np.float32)
    qpos[..., 3:7] /= np.linalg.norm(qpos[..., 3:7], axis=-1, keepdims=True)
    valid = np.ones((num_envs, window), bool)
    valid[::7, window // 2 :] = False
    batch = {
        "qpos": qpos,
        "qvel": rng.normal(size=(num_envs, window, spec.nv)).astype(np.float32),
        "valid": valid,
        "episode_origin_qpos": qpos[:, 0].copy(),
        "conv_idx": (np.arange(num_envs) % 2).astype(np.int32),
    }
    if with_ee:
        batch["ee_pos"] = rng.normal(size=(num_envs, window, spec.n_ee, 3)).astype(np.float32)
    return batch


def timed(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, min(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_envs", type=int, default=4096)
    parser.add_argument("--window_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-ee", dest="ee", action="store_false")
    args = parser.parse_args()
    spec, convs = digit_v3.SPEC, (MUJOCO, PINOCCHIO)
    b = make_batch(args.num_envs, args.window_size, args.ee)
    ee = b.get("ee_pos")

    def numpy_core():
        return compute_references(
            b["qpos"],
            b["qvel"],
            spec,
            convs,
            convention_index=b["conv_idx"],
            origin_qpos=b["episode_origin_qpos"],
            valid=b["valid"],
            ee_pos=ee,
        )

    # Without a store the transform takes one convention; MuJoCo for all envs here.
    transform = BuildReferences(None, spec, convention=MUJOCO)
    host_keys = ("qpos", "qvel", "valid", "episode_origin_qpos", "conv_idx")
    dev = jax.device_put({k: b[k] for k in host_keys + (("ee_pos",) if args.ee else ())})

    def jax_call(d):
        return compute_references_jax(
            d["qpos"],
            d["qvel"],
            spec,
            convs,
            convention_index=d["conv_idx"],
            origin_qpos=d["episode_origin_qpos"],
            valid=d["valid"],
            ee_pos=d.get("ee_pos"),
        )

    t0 = time.perf_counter()
    jax.block_until_ready(jax_call(dev))
    compile_ms = (time.perf_counter() - t0) * 1e3
    host = {k: b[k] for k in dev}
    rows = [
        ("numpy core", timed(numpy_core, args.repeats)),
        (
            "grain transform",
            timed(
                lambda: transform.map(
                    {k: b[k] for k in host_keys[:4] + (("ee_pos",) if args.ee else ())}
                ),
                args.repeats,
            ),
        ),
        ("jax (on device)", timed(lambda: jax.block_until_ready(jax_call(dev)), args.repeats)),
        (
            "jax + transfer",
            timed(lambda: jax.block_until_ready(jax_call(jax.device_put(host))), args.repeats),
        ),
    ]
    mb = sum(v.nbytes for v in host.values()) / 1e6
    print(
        f"references: {args.num_envs} envs x {args.window_size} steps, Digit v3 (nq={spec.nq}), "
        f"ee={'on' if args.ee else 'off'}, input {mb:.1f} MB, backend {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}), jax compile {compile_ms:.0f} ms"
    )
    for name, (med, best) in rows:
        print(f"  {name:<16} {med:8.1f} ms/batch (min {best:.1f})")


if __name__ == "__main__":
    main()
