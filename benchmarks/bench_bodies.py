"""Body states at export (``--bodies all``): frames/s of the MuJoCo loop used by export
(``kinematics.bodies.body_states``: ``mj_kinematics`` + ``mj_comPos`` + ``mj_comVel`` +
``mj_objectVelocity`` per body) vs the same quantities by MJX (``kinematics``, ``com_pos``,
``com_vel``, jitted and vmapped over frames; compile time printed separately), and a whole
``export_npz`` with ``--bodies all`` of Cassie's agility_reference (3392 frames) with and without
bodies.

    JAX_PLATFORMS=cpu python benchmarks/bench_bodies.py --frames 1000
    python benchmarks/bench_bodies.py --no-mjx     # skip MJX (its compile takes 20-30 s per model)
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from trajopt_loader.kinematics import load_kinematics_model
from trajopt_loader.kinematics.bodies import body_names_of, body_states

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = {"cassie": DATA / "cassie/cassie.xml", "digit_v3": DATA / "digit_v3/digit-v3.xml"}


def mjx_fn(model):
    """Jitted ``(qpos [n, nq], qvel [n, nv]) -> (xpos, xquat, ang, lin)`` of all bodies by MJX."""
    import jax
    import jax.numpy as jnp
    from mujoco import mjx

    from trajopt_loader.kinematics.model import kinematics_copy

    mx = mjx.put_model(kinematics_copy(model))
    d0 = mjx.make_data(mx)

    def one(q, v):
        d = mjx.com_vel(mx, mjx.com_pos(mx, mjx.kinematics(mx, d0.replace(qpos=q, qvel=v))))
        root = d.subtree_com[jnp.asarray(model.body_rootid)]
        ang, lin_com = d.cvel[:, :3], d.cvel[:, 3:]
        return d.xpos, d.xquat, ang, lin_com - jnp.cross(d.xpos - root, ang)

    return jax.jit(jax.vmap(one))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument(
        "--mjx",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time MJX (jit + vmap), compile included separately",
    )
    args = parser.parse_args()
    results = {}
    for robot, path in MODELS.items():
        model = load_kinematics_model(path)
        with np.load(DATA / "cassie/trajopt/agility_reference/traj_0.npz") as f:
            qpos, qvel = f["qpos"], f["qvel"]
        if robot != "cassie":  # Digit: qpos0 with small random joint motion
            rng = np.random.default_rng(0)
            qpos = np.tile(model.qpos0, (args.frames, 1))
            qvel = 0.1 * rng.standard_normal((args.frames, model.nv))
        qpos = np.resize(qpos, (args.frames, model.nq))
        qvel = np.resize(qvel, (args.frames, model.nv))
        names = body_names_of(model, "all")
        t0 = time.perf_counter()
        ref = body_states(model, qpos, qvel, names, "mujoco")
        t_mj = time.perf_counter() - t0
        results[robot] = {
            "frames": args.frames,
            "bodies": len(names),
            "mujoco_frames_per_s": round(args.frames / t_mj),
        }
        if args.mjx:
            fn = mjx_fn(model)
            t0 = time.perf_counter()
            out = fn(qpos.astype(np.float32), qvel.astype(np.float32))
            out[0].block_until_ready()
            t_compile = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = fn(qpos.astype(np.float32), qvel.astype(np.float32))
            out[0].block_until_ready()
            t_mjx = time.perf_counter() - t0
            err = float(np.abs(np.asarray(out[3])[:, 1:] - ref["body_lin_vel"]).max())
            results[robot].update(
                {
                    "mjx_frames_per_s": round(args.frames / t_mjx),
                    "mjx_first_call_s (compile)": round(t_compile, 2),
                    "max_lin_vel_diff_m_per_s": err,
                }
            )
    results["export_cassie_agility_reference"] = _export()
    print(json.dumps(results, indent=1))


def _export() -> dict:
    from trajopt_loader.kinematics import make_export_preprocess
    from trajopt_loader.store import export_npz

    out = {}
    tmp = Path(tempfile.mkdtemp())
    try:
        for label, bodies in (("without bodies", ()), ("with --bodies all", "all")):
            pre = make_export_preprocess(MODELS["cassie"], convention="mujoco", bodies=bodies)
            t0 = time.perf_counter()
            s = export_npz(
                DATA / "cassie/trajopt",
                tmp / f"{len(out)}.zarr",
                source="cassie",
                motion="agility_reference",
                preprocess=pre,
                progress=False,
                convention="mujoco",
            )
            out[label + " frames/s"] = round(s.frames / (time.perf_counter() - t0))
    finally:
        shutil.rmtree(tmp)
    return out


if __name__ == "__main__":
    main()
