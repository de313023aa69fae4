"""The motion rendered offscreen by MuJoCo (``mujoco.Renderer``) to frames, MP4 or GIF.

Headless OpenGL: MuJoCo picks its GL backend from ``MUJOCO_GL`` when ``mujoco`` is first imported.
This module sets ``MUJOCO_GL=egl`` when it is unset and MuJoCo is not imported yet; EGL with
Mesa's software driver renders on machines without a GPU (and uses the GPU driver where one is
installed). On Debian / Ubuntu the libraries are::

    apt-get install -y libegl1 libopengl0 libegl-mesa0 libgl1-mesa-dri

``MUJOCO_GL=osmesa`` (``apt-get install -y libosmesa6``) works too. When the context cannot be
created, :class:`GLBackendError` names the package to install.

Camera: a free camera whose look-at point follows the body of the model's first joint (the
floating base) every frame, at a fixed azimuth / elevation / distance, so the robot stays centred
while the floor moves underneath.
"""

from __future__ import annotations

import os
import sys

from trajopt_loader.errors import GLBackendError, ModelError

if "mujoco" not in sys.modules:  # MuJoCo reads MUJOCO_GL once, when first imported
    os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from trajopt_loader.viz import require  # noqa: E402

HEADLESS = {"egl": "libegl1 libopengl0 libegl-mesa0 libgl1-mesa-dri", "osmesa": "libosmesa6"}
GHOST_ALPHA = 0.3


def gl_install_hint(backend: str | None = None) -> str:
    """One line: the ``MUJOCO_GL`` in use and the ``apt-get`` command that provides it."""
    backend = (backend or os.environ.get("MUJOCO_GL") or "glfw").lower()
    if backend in HEADLESS:
        return (
            f"MUJOCO_GL={backend} needs the system OpenGL library; install it with: "
            f"apt-get install -y {HEADLESS[backend]}"
        )
    return (
        f"MUJOCO_GL={backend!r} is not a headless backend; set MUJOCO_GL=egl (apt-get install "
        f"-y {HEADLESS['egl']}) or MUJOCO_GL=osmesa (apt-get install -y "
        f"{HEADLESS['osmesa']}) before MuJoCo is first imported."
    )


def load_render_model(model_path: str, width: int, height: int):
    """The full ``mujoco.MjModel`` (meshes kept) with an offscreen buffer of at least w x h.

    Raises:
      ModelNotFoundError: no file at ``model_path``. ModelError: MuJoCo cannot load it.
    """
    from trajopt_loader.kinematics.model import load_model

    model = load_model(model_path)
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
    return model


def make_renderer(model, width: int, height: int):
    """``mujoco.Renderer(model, height, width)``; a missing GL library raises
    :class:`GLBackendError`."""
    import mujoco

    chosen = getattr(getattr(mujoco, "GLContext", None), "__module__", "")  # what MuJoCo picked
    if chosen == "mujoco.glfw" and not os.environ.get("DISPLAY"):
        raise GLBackendError(
            "MuJoCo renders through GLFW, which needs a display (MUJOCO_GL was not egl/osmesa when "
            "mujoco was first imported); set MUJOCO_GL=egl in the environment before the first "
            f"`import mujoco` (apt-get install -y {HEADLESS['egl']}) or MUJOCO_GL=osmesa "
            f"(apt-get install -y {HEADLESS['osmesa']})."
        )
    try:
        return mujoco.Renderer(model, height, width)
    except (ImportError, OSError, RuntimeError, AttributeError) as e:
        backend = chosen.rsplit(".", 1)[-1] if chosen in ("mujoco.egl", "mujoco.osmesa") else None
        raise GLBackendError(
            f"MuJoCo cannot create an OpenGL context: {gl_install_hint(backend)} "
            f"(MuJoCo: {type(e).__name__}: {' '.join(str(e).split())[:160]})"
        ) from None


def frame_steps(length: int, dt: float, fps: float, max_frames: int | None = None) -> np.ndarray:
    """Trajectory steps ``[F]`` int shown at ``fps`` frames per second of motion time (real
    speed)."""
    times = np.arange(0.0, length * dt, 1.0 / fps)
    steps = np.minimum(np.round(times / dt).astype(np.int64), length - 1)
    return steps[:max_frames] if max_frames is not None else steps


def render_frames(
    store,
    trajs=(0,),
    model_path: str = "",
    *,
    ghost_key: str | None = None,
    width: int = 320,
    height: int = 240,
    fps: float = 30.0,
    max_frames: int | None = None,
    distance: float = 3.0,
    azimuth: float = 135.0,
    elevation: float = -15.0,
) -> np.ndarray:
    """Render trajectories side by side: uint8 ``[F, height, width * len(trajs), 3]`` RGB.

    Args:
      store: an open :class:`~trajopt_loader.TrajectoryStore` (local or remote).
      trajs: traj_ids or ``"source/motion/trajN"`` paths, one panel each, left to right.
      model_path: the MJCF the data was made for (its ``nq`` must equal the data's qpos width).
      ghost_key: a second qpos-like key (e.g. a reference) drawn transparent in the same scene.
      width, height: panel size in pixels (even numbers, for MP4). fps: frames per second of
        motion time; every trajectory plays at real speed, a shorter one holds its last pose.
      max_frames: render at most this many frames. distance (m), azimuth, elevation (deg): camera.

    Returns:
      frames, uint8 ``[F, height, width * n_traj, 3]``.

    Raises:
      ModelNotFoundError / ModelError: model missing or unloadable, or ``nq`` differs from the data.
      GLBackendError: no OpenGL context (names the package). MissingKeyError: unknown key.
    """
    import mujoco

    from trajopt_loader.kinematics import qpos_to_mujoco

    model = load_render_model(model_path, width, height)
    trajs = list(trajs)
    clips = []
    for traj in trajs:
        info = store.info(traj)
        conv = store.convention(info.source)
        keys = ["qpos"] + ([ghost_key] if ghost_key else [])
        qs = []
        for key in keys:
            q = np.asarray(store.read(info.traj_id, key), np.float64)
            if q.shape[1] != model.nq:
                raise ModelError(
                    f"{info.path} {key} is {q.shape[1]} wide but {model_path!r} has "
                    f"nq={model.nq}; pass the model the data was made for."
                )
            qs.append(qpos_to_mujoco(model, q, conv))
        clips.append((frame_steps(info.length, info.dt, fps, max_frames), qs))
    n_frames = max(len(s) for s, _ in clips)
    out = np.zeros((n_frames, height, width * len(trajs), 3), np.uint8)
    data, ghost = mujoco.MjData(model), mujoco.MjData(model)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.distance, camera.azimuth, camera.elevation = distance, azimuth, elevation
    option, perturb = mujoco.MjvOption(), mujoco.MjvPerturb()
    base = int(model.jnt_bodyid[0]) if model.njnt else 0  # the floating base's body
    with make_renderer(model, width, height) as renderer:
        for p, (steps, qs) in enumerate(clips):
            for f in range(n_frames):
                t = int(steps[min(f, len(steps) - 1)])
                data.qpos[:] = qs[0][t]
                mujoco.mj_forward(model, data)
                camera.lookat[:] = data.xpos[base]
                renderer.update_scene(data, camera, option)
                if len(qs) > 1:
                    ghost.qpos[:] = qs[1][t]
                    mujoco.mj_forward(model, ghost)
                    scene = renderer.scene
                    first = scene.ngeom
                    mujoco.mjv_addGeoms(
                        model, ghost, option, perturb, mujoco.mjtCatBit.mjCAT_DYNAMIC, scene
                    )
                    for g in range(first, scene.ngeom):
                        scene.geoms[g].rgba[3] = GHOST_ALPHA
                out[f, :, p * width : (p + 1) * width] = renderer.render()
    return out


def write_video(
    frames: np.ndarray, path: str, fps: float = 30.0, *, frame: int | None = None
) -> None:
    """Write frames ``[F, H, W, 3]`` uint8 by extension: ``.mp4`` (H.264), ``.gif``, or ``.png``.

    ``.png`` writes one frame: ``frame`` (default the middle one).

    Raises:
      ValueError: another extension. VizDependencyError: imageio / imageio-ffmpeg / Pillow missing.
    """
    ext = os.path.splitext(str(path))[1].lower()
    frames = np.asarray(frames, np.uint8)
    if ext == ".mp4":
        imageio = require("imageio.v2", "writing MP4")
        require("imageio_ffmpeg", "writing MP4")
        imageio.mimwrite(
            str(path), list(frames), fps=fps, codec="libx264", macro_block_size=2, quality=7
        )
    elif ext in (".gif", ".png"):
        image = require("PIL.Image", f"writing {ext[1:].upper()}")
        if ext == ".png":
            image.fromarray(frames[len(frames) // 2 if frame is None else frame]).save(str(path))
        else:
            pics = [image.fromarray(f) for f in frames]
            pics[0].save(
                str(path),
                save_all=True,
                append_images=pics[1:],
                loop=0,
                duration=max(20, int(round(1000.0 / fps))),
            )
    else:
        raise ValueError(
            f"output {str(path)!r}: unknown extension {ext!r}; expected .mp4, .gif "
            "or .png (one frame)."
        )
