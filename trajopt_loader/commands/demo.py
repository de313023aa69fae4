"""``trajopt-loader demo``: export the bundled Cassie sample, train a tiny MLP on streamed windows.

Needs no arguments and no files outside the package: the sample under
``trajopt_loader/sample_data/cassie`` (7 trajectories of osudrl/apex @ 82c44af, MIT) is exported to
a temporary Zarr store, the 6 ``aslip_walk`` cycles (dt 0.0246-0.0254 s; the 29 Hz
``agility_reference`` trajectory is left out, since one batch holds one rate) are streamed as random
``[E, W, 35]`` qpos windows through ``make_dataset`` + ``device_iterator``, and a 2-layer MLP learns
the next-step change of qpos,
``qpos[t+1] - qpos[t]`` from ``qpos[t]`` (both standardized with the sample's statistics), with a
hand-rolled Adam in a jitted ``jax.value_and_grad`` step. Pairs count only where both steps are
real data (``valid``) and consecutive in their trajectory (``step[t+1] == step[t] + 1``; a window
that wraps past a trajectory's end is cut there). Prints the loss every ``--log-every`` steps.

    trajopt-loader demo [--steps 300] [--num-envs 32] [--window-size 16]
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import flags

from trajopt_loader.commands.common import define

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "cassie"

FLAGS = flags.FLAGS
USAGE = "trajopt-loader demo [--steps N] [--num-envs N] [--window-size N] [...]"
EXAMPLE = "trajopt-loader demo --steps 100 --num-envs 16"

define("integer", "steps", 300, "Training steps (one streamed batch each).")
define("integer", "num-envs", 32, "Envs per batch (E).")
define("integer", "window-size", 16, "Steps per window (W).")
define("integer", "hidden", 64, "Hidden units of each of the 2 MLP layers.")
define("float", "learning-rate", 3e-3, "Adam learning rate.")
define("integer", "log-every", 50, "Print the loss every this many steps.")
define("integer", "seed", 0, "Seed of the window schedule and of the MLP initialization.")


def _init_mlp(key, sizes):
    import jax

    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        key, sub = jax.random.split(key)
        params.append(
            {
                "w": jax.random.normal(sub, (n_in, n_out)) * np.sqrt(2.0 / n_in),
                "b": jax.numpy.zeros((n_out,)),
            }
        )
    return params


def _mlp(params, x):
    import jax

    for layer in params[:-1]:
        x = jax.nn.gelu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


MOTION = "aslip_walk"  # the streamed motion of the sample (one time step, within 5%)


def _sample_stats(store, traj_ids) -> dict[str, np.ndarray]:
    """Per-dimension mean / std (floored at 1e-3) of qpos and of its one-step change over the
    trajectories ``traj_ids`` (int [n]), float64 [nq]."""
    qs = [store.read(int(t), "qpos") for t in traj_ids]
    q, dq = np.concatenate(qs), np.concatenate([np.diff(x, axis=0) for x in qs])
    return {
        "q_mu": q.mean(0),
        "q_sd": np.maximum(q.std(0), 1e-3),
        "d_mu": dq.mean(0),
        "d_sd": np.maximum(dq.std(0), 1e-3),
    }


def make_train_step(stats, learning_rate: float):
    """Jitted ``(params, opt, batch) -> (params, opt, loss)``; Adam (b1=0.9, b2=0.999, eps=1e-8).

    ``batch`` (on device): ``qpos [E, W, nq]`` float32, ``valid [E, W]`` bool, ``step [E, W]``
    int32.
    ``loss``: masked mean over pairs of the per-pair mean squared error of the standardized change.
    """
    import jax
    import jax.numpy as jnp

    s = {k: jnp.asarray(v, jnp.float32) for k, v in stats.items()}

    def loss_fn(params, batch):
        q, valid, step = batch["qpos"], batch["valid"], batch["step"]
        x = (q[:, :-1] - s["q_mu"]) / s["q_sd"]
        y = (q[:, 1:] - q[:, :-1] - s["d_mu"]) / s["d_sd"]
        pair = valid[:, :-1] & valid[:, 1:] & (step[:, 1:] == step[:, :-1] + 1)
        err = jnp.mean((_mlp(params, x) - y) ** 2, axis=-1)
        return jnp.sum(err * pair) / jnp.maximum(jnp.sum(pair), 1)

    @jax.jit
    def train_step(params, opt, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        t = opt["t"] + 1
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, opt["m"], grads)
        v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, opt["v"], grads)
        lr = learning_rate * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        params = jax.tree.map(lambda p, m, v: p - lr * m / (jnp.sqrt(v) + 1e-8), params, m, v)
        return params, {"t": t, "m": m, "v": v}, loss

    return train_step


def run_demo(
    steps: int = 300,
    *,
    num_envs: int = 32,
    window_size: int = 16,
    hidden: int = 64,
    learning_rate: float = 3e-3,
    log_every: int = 50,
    seed: int = 0,
    workdir=None,
    out=print,
) -> dict:
    """Runs the demo; returns ``{"losses": [steps] float, "initial_loss", "final_loss" (means of the
    first / last 10 steps), "seconds", "batches_per_s", "env_steps_per_s"}``.

    ``workdir``: where the temporary store goes (a fresh temporary directory by default, deleted
    after).
    """
    import jax

    from trajopt_loader.configs import load_config
    from trajopt_loader.pipeline import device_iterator, make_dataset
    from trajopt_loader.store import TrajectoryStore, export_npz

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        zarr_path = str(Path(tmp) / "cassie_sample.zarr")
        summary = export_npz(
            SAMPLE,
            zarr_path,
            source="cassie",
            convention="mujoco",
            allow_missing=("qvel", "action"),
            progress=False,
        )
        out(
            "exported the bundled sample (trajopt_loader/sample_data/cassie): "
            f"{summary.trajectories} trajectories, {summary.frames} frames"
        )
        config = load_config(
            "cassie",
            {
                "zarr_path": zarr_path,
                "keys": ("qpos",),
                "num_envs": num_envs,
                "references.enabled": False,
                "motions": (MOTION,),
                "window_size": window_size,
                "schedule": "random",
                "seed": seed,
                "num_batches": steps,
            },
        )
        store = TrajectoryStore(zarr_path)
        played = store.select(motions=(MOTION,))
        out(
            f"streaming {MOTION}: {len(played)} trajectories, dt {store.dts[played].min():.4g}-"
            f"{store.dts[played].max():.4g} s (a window of {window_size} steps is "
            f"{window_size * store.dts[played].mean():.2f} s)"
        )
        stats = _sample_stats(store, played)
        nq = stats["q_mu"].shape[0]
        params = _init_mlp(jax.random.key(seed), (nq, hidden, hidden, nq))
        opt = {
            "t": jax.numpy.zeros((), jax.numpy.int32),
            "m": jax.tree.map(jax.numpy.zeros_like, params),
            "v": jax.tree.map(jax.numpy.zeros_like, params),
        }
        train_step = make_train_step(stats, learning_rate)
        out(
            f"training a {nq}-{hidden}-{hidden}-{nq} MLP on {num_envs} x {window_size} windows "
            f"for {steps} steps (loss: standardized next-step change of qpos, masked by valid)"
        )
        losses, t0 = [], time.perf_counter()
        with device_iterator(
            make_dataset(config, store),
            host_buffer=config.host_prefetch,
            device_buffer=config.device_prefetch,
        ) as it:
            for i, batch in enumerate(it):
                params, opt, loss = train_step(params, opt, batch)
                losses.append(loss)
                if (i + 1) % log_every == 0 or i == 0:
                    window = [float(x) for x in losses[max(0, i + 1 - log_every) :]]
                    out(
                        f"  step {i + 1:5d}  loss {float(loss):.4f}  (mean of last {len(window)}: "
                        f"{np.mean(window):.4f})"
                    )
        losses = [float(x) for x in jax.device_get(losses)]
        seconds = time.perf_counter() - t0
    result = {
        "losses": losses,
        "initial_loss": float(np.mean(losses[:10])),
        "final_loss": float(np.mean(losses[-10:])),
        "seconds": seconds,
        "batches_per_s": len(losses) / seconds,
        "env_steps_per_s": len(losses) * num_envs * window_size / seconds,
    }
    out(
        f"loss {result['initial_loss']:.4f} (first 10 steps) -> {result['final_loss']:.4f} "
        f"(last 10), x{result['initial_loss'] / max(result['final_loss'], 1e-12):.1f} lower"
    )
    out(
        f"{len(losses)} steps in {seconds:.2f} s (incl. compile): {result['batches_per_s']:.1f} "
        f"batches/s, {result['env_steps_per_s']:.0f} env-steps/s"
    )
    return result


def main(argv) -> None:
    """absl entry point of ``trajopt-loader demo``."""
    if len(argv) > 1:
        raise SystemExit(f"trajopt-loader demo takes no positional arguments, got {argv[1:]}")
    run_demo(
        FLAGS.steps,
        num_envs=FLAGS["num-envs"].value,
        window_size=FLAGS["window-size"].value,
        hidden=FLAGS.hidden,
        learning_rate=FLAGS["learning-rate"].value,
        log_every=FLAGS["log-every"].value,
        seed=FLAGS.seed,
    )
