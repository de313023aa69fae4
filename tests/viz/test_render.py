"""MuJoCo offscreen rendering (trajopt_loader.viz.render) of the Cassie data and the Digit model."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from _viz_data import digit_store

from trajopt_loader import TrajectoryStore
from trajopt_loader.errors import ModelNotFoundError
from trajopt_loader.viz.render import GLBackendError, frame_steps, render_frames, write_video

pytestmark = pytest.mark.slow
W, H = 64, 48


def robot_pixels(frame: np.ndarray) -> float:
    """Fraction of pixels of the robots' orange (red exceeds blue by > 50): the floor and sky of
    these models have none (checked against an empty view in the tests)."""
    f = frame.astype(int)
    return float(((f[..., 0] - f[..., 2]) > 50).mean())


@pytest.fixture(scope="module")
def store(cassie_store):
    return TrajectoryStore(cassie_store, cache_bytes=0)


@pytest.fixture(scope="module")
def cassie_xml(shared_data):
    return str(shared_data / "cassie" / "cassie.xml")


def test_background_has_no_robot_colour(cassie_xml):
    import mujoco

    from trajopt_loader.viz.render import load_render_model, make_renderer

    m = load_render_model(cassie_xml, W, H)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    cam = mujoco.MjvCamera()
    cam.lookat[:], cam.distance, cam.elevation = (40.0, 40.0, 0.0), 3.0, -15.0
    with make_renderer(m, W, H) as r:
        r.update_scene(d, cam)
        empty = r.render()
    assert empty.std() > 5 and robot_pixels(empty) == 0.0


def test_cassie_video_moves_and_shows_the_robot(store, cassie_xml, tmp_path):
    info = store.info(0)
    frames = render_frames(
        store, [0, "cassie/aslip_walk/traj10"], cassie_xml, width=W, height=H, fps=10, max_frames=4
    )
    assert frames.shape == (4, H, 2 * W, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(
        frame_steps(info.length, info.dt, 10, 4), np.round(np.arange(4) * 0.1 / info.dt).astype(int)
    )
    left, right = frames[:, :, :W], frames[:, :, W:]
    for panel in (left, right):
        assert panel.std() > 10 and all(robot_pixels(f) > 0.005 for f in panel)
        assert np.abs(panel[-1].astype(int) - panel[0]).mean() > 0.5  # it moves over time
    assert np.abs(left.astype(int) - right).mean() > 1.0  # two trajectories, two pictures
    mp4, gif = tmp_path / "c.mp4", tmp_path / "c.gif"
    write_video(frames, mp4, fps=10)
    write_video(frames, gif, fps=10)
    import imageio.v2 as imageio
    from PIL import Image, ImageSequence

    back = np.stack(imageio.mimread(mp4))
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 8  # lossy, but the same pictures
    pics = [np.asarray(p.convert("RGB")) for p in ImageSequence.Iterator(Image.open(gif))]
    assert len(pics) == 4 and np.abs(pics[-1].astype(int) - pics[0]).mean() > 0.5


def test_digit_model_renders_side_by_side(tmp_path, shared_data):
    import mujoco

    xml = shared_data / "digit_v3" / "digit-v3.xml"
    store = TrajectoryStore(digit_store(tmp_path, mujoco.MjModel.from_xml_path(str(xml))))
    frames = render_frames(store, [0, 1], str(xml), width=W, height=H, fps=10, max_frames=3)
    assert frames.shape == (3, H, 2 * W, 3)
    assert all(robot_pixels(f) > 0.005 for f in frames)
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 0.5
    assert np.abs(frames[:, :, :W].astype(int) - frames[:, :, W:]).mean() > 0.5


def test_ghost_draws_the_second_key(tmp_path, shared_data, cassie_xml):
    from trajopt_loader import export_npz

    raw = np.load(shared_data / "cassie" / "trajopt" / "agility_reference" / "traj_0.npz")
    ghost = raw["qpos"][:200].copy()
    ghost[:, 1] += 0.6  # the ghost walks 0.6 m to the left
    (tmp_path / "g" / "walk").mkdir(parents=True)
    np.savez(
        tmp_path / "g" / "walk" / "traj_0.npz", qpos=raw["qpos"][:200], qpos_ref=ghost, dt=raw["dt"]
    )
    export_npz(
        tmp_path / "g",
        tmp_path / "g.zarr",
        source="cassie",
        convention="mujoco",
        allow_missing=("qvel",),
        progress=False,
    )
    store = TrajectoryStore(tmp_path / "g.zarr")
    plain = render_frames(store, [0], cassie_xml, width=W, height=H, max_frames=1)
    both = render_frames(
        store, [0], cassie_xml, width=W, height=H, max_frames=1, ghost_key="qpos_ref"
    )
    assert robot_pixels(both[0]) > robot_pixels(plain[0])  # more robot: the (translucent) ghost


@pytest.mark.slow
def test_missing_model_is_one_clear_error(store, tmp_path):
    with pytest.raises(ModelNotFoundError, match="no MuJoCo model at .*nope.xml.*--model"):
        render_frames(store, [0], str(tmp_path / "nope.xml"), width=W, height=H, max_frames=1)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "trajopt_loader.cli",
            "render",
            store.path,
            "--model",
            str(tmp_path / "nope.xml"),
            "-o",
            str(tmp_path / "x.gif"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"trajopt-loader render: error: no MuJoCo model at {str(tmp_path / 'nope.xml')!r}; pass "
        "--model PATH/TO/robot.xml (the MJCF the data was made for)."
    ]


def test_missing_gl_library_names_the_package(store, cassie_xml, monkeypatch):
    import mujoco

    def missing(*args, **kwargs):  # what MuJoCo raises when libEGL cannot be loaded
        raise ImportError(
            "Failed to import OpenGL backend (MUJOCO_GL='egl'): libEGL.so.1: cannot "
            "open shared object file"
        )

    monkeypatch.setattr(mujoco, "Renderer", missing)
    with pytest.raises(
        GLBackendError, match="apt-get install -y libegl1 libopengl0 libegl-mesa0 libgl1-mesa-dri"
    ):
        render_frames(store, [0], cassie_xml, width=W, height=H, max_frames=1)


@pytest.mark.slow
def test_gl_backend_errors_from_the_environment(store, cassie_xml, tmp_path):
    """A fresh process: the backend MuJoCo picks at import comes from the environment."""
    code = (
        "from trajopt_loader import TrajectoryStore; from trajopt_loader.viz.render import "
        f"render_frames; render_frames(TrajectoryStore({store.path!r}), [0], {cassie_xml!r}, "
        "width=64, height=48, max_frames=1)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MUJOCO_GL")}
    cases = [
        ({"MUJOCO_GL": "glfw"}, "MuJoCo renders through GLFW, which needs a display"),
        (
            {"MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "osmesa"},
            "MUJOCO_GL=egl needs the system OpenGL library; install it with: apt-get install -y "
            "libegl1 libopengl0 libegl-mesa0 libgl1-mesa-dri",
        ),
    ]
    for extra, text in cases:
        r = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 1 and "GLBackendError" in r.stderr and text in r.stderr, r.stderr


@pytest.mark.slow
def test_render_command_writes_a_video(store, cassie_xml, tmp_path):
    from PIL import Image

    out = tmp_path / "frame.png"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "trajopt_loader.cli",
            "render",
            store.path,
            "--model",
            cassie_xml,
            "--width",
            "64",
            "--height",
            "48",
            "--max_frames",
            "3",
            "--frame",
            "2",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    img = np.asarray(Image.open(out))
    assert img.shape == (48, 64, 3) and robot_pixels(img) > 0.005
