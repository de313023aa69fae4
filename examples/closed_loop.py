"""Closed-loop sampling on real Cassie data: a consumer that fails on chosen segments, the sampler
concentrating on them, and a restore that continues bit-identically.

Run from the repository root::

    python examples/closed_loop.py                       # ../shared/data/cassie/trajopt
    python examples/closed_loop.py --num-envs 256 --batches 80

Steps: export the 21 ``aslip_walk`` strides (one per speed 0.0..2.0 m/s, 32 steps at ~0.025 s)
to a temporary store; stream random windows with ``adaptive.enabled`` (bins of 0.25 s = 10
steps); the consumer "fails" every env whose window covers steps 10..19 of the three fastest
strides (speeds 1.8, 1.9, 2.0 m/s), at the first such window step, and reports it with
``it.report_failures``. The printout shows the share of envs drawn into those segments rising
from its uniform value. Then the state is saved halfway (``save_state``), the run continued, and
a fresh pipeline restored from the file replays the continuation: identical batches and
statistics (asserted).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from trajopt_loader.configs import load_config
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.pipeline.checkpoint import load_state, save_state
from trajopt_loader.store import TrajectoryStore, export_npz

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cassie" / "trajopt"
HARD_TRAJ = ("traj_18", "traj_19", "traj_20")  # the fastest strides
HARD_STEPS = (10, 20)  # trajectory steps [10, 20) fail


def hard_ids(store) -> np.ndarray:
    """Trajectory ids of the failing strides."""
    return np.array(
        [
            t.traj_id
            for t in store.trajectories
            if t.motion == "aslip_walk" and Path(t.source_file).stem in HARD_TRAJ
        ]
    )


def consumer(batch, hard: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """``(failed [E] bool, fail_step [E] int)``: the first window step inside a hard segment."""
    step = np.asarray(batch["step"])  # [E, W] trajectory steps of each window
    inside = (
        np.isin(np.asarray(batch["traj_id"]), hard)[:, None]
        & (step >= HARD_STEPS[0])
        & (step < HARD_STEPS[1])
    )
    return inside.any(axis=1), np.where(inside.any(axis=1), inside.argmax(axis=1), 0)


def drawn_hard(batch, hard: np.ndarray) -> float:
    """Share of envs whose window starts inside a hard segment."""
    start = np.asarray(batch["start"])
    return float(
        np.mean(
            np.isin(np.asarray(batch["traj_id"]), hard)
            & (start >= HARD_STEPS[0])
            & (start < HARD_STEPS[1])
        )
    )


def run(it, hard, window, n, log=None):
    """Consume ``n`` batches, reporting failures; returns the batches' (traj_id, start)."""
    out = []
    for _ in range(n):
        batch = next(it)
        it.report_failures(*consumer(batch, hard, window))
        out.append((np.asarray(batch["traj_id"]).copy(), np.asarray(batch["start"]).copy()))
        if log is not None:
            log.append(drawn_hard(batch, hard))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        zarr = Path(tmp) / "cassie.zarr"
        export_npz(
            args.data,
            zarr,
            source="cassie",
            convention="mujoco",
            allow_missing=("qvel",),
            progress=False,
        )
        config = load_config(
            "default",
            {
                "zarr_path": str(zarr),
                "motions": ("aslip_walk",),
                "keys": ("qpos",),
                "num_envs": args.num_envs,
                "window_size": args.window,
                "schedule": "random",
                "cyclic": False,
                "seed": 7,
                "adaptive.enabled": True,
                "adaptive.bin_s": 0.25,
                "adaptive.ema_rate": 0.1,
                "adaptive.kernel_size": 2,
            },
        )
        store = TrajectoryStore(zarr)
        hard = hard_ids(store)
        counts = store.lengths[store.select(motions=("aslip_walk",))]
        uniform = len(hard) * (HARD_STEPS[1] - HARD_STEPS[0]) / counts.sum()
        ds = make_dataset(config, store)
        it = iter(ds)
        shares: list[float] = []
        half = args.batches // 2
        run(it, hard, args.window, half, shares)
        save_state(Path(tmp) / "state.json", it.get_state())
        saved_stats = ds.feedback.statistics()
        rest = run(it, hard, args.window, args.batches - half, shares)
        step = max(1, args.batches // 6)
        print(
            f"hard segments: {HARD_TRAJ} steps {HARD_STEPS[0]}..{HARD_STEPS[1] - 1} "
            f"({uniform:.1%} of the starts: the share a uniform draw gives)"
        )
        for k in range(0, args.batches, step):
            print(
                f"batches {k:3d}-{min(k + step, args.batches) - 1:3d}: "
                f"{np.mean(shares[k : k + step]):6.1%} of the envs start in a hard segment"
            )
        fresh_ds = make_dataset(config, store)
        fresh = iter(fresh_ds)
        fresh.set_state(load_state(Path(tmp) / "state.json"))
        same_stats = fresh_ds.feedback.statistics().tobytes() == saved_stats.tobytes()
        replay = run(fresh, hard, args.window, args.batches - half)
        same = same_stats and all(
            (a == c).all() and (b == d).all() for (a, b), (c, d) in zip(rest, replay, strict=True)
        )
        same = (
            same and fresh_ds.feedback.statistics().tobytes() == ds.feedback.statistics().tobytes()
        )
        print(
            f"restored at batch {half}: the next {args.batches - half} batches and the "
            f"statistics are bit-identical: {same}"
        )
        assert same, "the restored stream diverged"


if __name__ == "__main__":
    main()
