"""Trajectory and batch plots (trajopt_loader.viz) on the real Cassie data and the Digit v3
model."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from _viz_data import digit_store

from trajopt_loader import TrajectoryStore, load_config, make_dataset, spec_from_mjcf
from trajopt_loader.viz.batch import batch_at, plot_batch
from trajopt_loader.viz.trajectory import plot_trajectories


def pixels(fig, dpi: int = 40) -> np.ndarray:
    """The figure as PNG bytes decoded again: uint8 [H, W, 3 or 4]."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def axes_by_title(fig) -> dict:
    return {ax.get_title(): ax for ax in fig.axes}


@pytest.fixture(scope="module")
def store(cassie_store):
    return TrajectoryStore(cassie_store, cache_bytes=0)


def test_trajectory_plot_draws_the_stored_data(store, shared_data):
    raw = np.load(shared_data / "cassie" / "trajopt" / "agility_reference" / "traj_0.npz")
    fig = plot_trajectories(store, [0])
    ax = axes_by_title(fig)
    z = ax["base height"].lines[0]
    np.testing.assert_array_equal(z.get_ydata(), raw["qpos"][:, 2])
    np.testing.assert_allclose(z.get_xdata(), np.arange(1682) * float(raw["dt"]))
    path = ax["base path from above (arrows: heading)"].lines[0]
    np.testing.assert_array_equal(path.get_xdata(), raw["qpos"][:, 0])
    joints = ax["actuated joint positions"]
    oracle = spec_from_mjcf(shared_data / "cassie" / "cassie.xml")
    assert [line.get_label() for line in joints.lines] == list(oracle.actuated_joints)
    for line, adr in zip(joints.lines, oracle.actuated_qpos_index, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), raw["qpos"][:, adr])
    vel = ax["actuated joint velocities"]
    for line, adr in zip(vel.lines, oracle.actuated_qvel_index, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), raw["qvel"][:, adr])
    img = pixels(fig)
    assert img[..., :3].std() > 20  # not blank


def test_two_trajectories_give_different_pictures(store):
    a, b = pixels(plot_trajectories(store, [0])), pixels(plot_trajectories(store, [1]))
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0


def test_inspect_flags_are_marked_on_the_time_axis(store, shared_data):
    fig = plot_trajectories(store, ["cassie/agility_reference/traj1"])
    assert "qvel frozen: 1 distinct row of 1682" in fig.get_suptitle()
    spans = [p for p in axes_by_title(fig)["base height"].patches]
    assert spans, "frozen qvel rows must be shaded"
    model = str(shared_data / "cassie" / "cassie.xml")
    fig = plot_trajectories(store, ["cassie/agility_reference/traj2"], model_path=model)
    assert "velocity: qvel is zero while qpos moves" in fig.get_suptitle()
    from trajopt_loader.viz.data import trajectory_view

    view = trajectory_view(store, "cassie/agility_reference/traj2", model_path=model)
    raw = np.load(shared_data / "cassie" / "trajopt" / "agility_reference" / "traj_2.npz")
    import mujoco

    m = mujoco.MjModel.from_xml_path(model)
    kinds = (int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE))
    hinge = [j for j in range(m.njnt) if int(m.jnt_type[j]) in kinds]
    moving = np.any(np.diff(raw["qpos"][:, m.jnt_qposadr[hinge]], axis=0) != 0, axis=1)
    np.testing.assert_array_equal(view.vel_mismatch[:-1], moving)
    assert not plot_trajectories(store, [0]).axes[1].patches  # clean data: nothing shaded


def test_refs_panels_are_the_reference_keys(store, shared_data):
    from trajopt_loader.robots import cassie
    from trajopt_loader.transforms.references import compute_references

    fig = plot_trajectories(store, [0, 1], refs=True)
    ax = axes_by_title(fig)
    qpos, qvel = store.read(0, "qpos")[None], store.read(0, "qvel")[None]
    keys = {
        k
        for k, v in compute_references(
            qpos, qvel, cassie.SPEC, (store.convention("cassie"),)
        ).items()
        if v.ndim >= 2
    }
    assert keys and keys <= set(ax) and "ref_len" not in ax
    raw = np.load(shared_data / "cassie" / "trajopt" / "agility_reference" / "traj_0.npz")
    # trajectory 0 is drawn first: its lines are the first len(QPOS_INDEX); trajectory 1 follows
    for line, adr in zip(ax["ref_motor_joint_pos"].lines, cassie.QPOS_INDEX, strict=False):
        np.testing.assert_array_equal(line.get_ydata(), raw["qpos"][:, adr])


def test_refs_without_qvel_is_one_clear_error(store):
    from trajopt_loader.errors import MissingKeyError

    with pytest.raises(MissingKeyError, match="aslip_walk/traj0 has no 'qvel'.*--derive-qvel"):
        plot_trajectories(store, ["cassie/aslip_walk/traj0"], refs=True)


def test_digit_plot_names_the_model_joints(tmp_path, shared_data):
    import mujoco

    model = mujoco.MjModel.from_xml_path(str(shared_data / "digit_v3" / "digit-v3.xml"))
    store = TrajectoryStore(digit_store(tmp_path, model))
    fig = plot_trajectories(store, [0, 1], refs=True)
    lines = axes_by_title(fig)["actuated joint positions"].lines
    oracle = spec_from_mjcf(model).actuated_joints
    assert len(lines) == 2 * len(oracle) == 40  # one line per joint per trajectory
    assert [line.get_label() for line in lines[:20]] == list(oracle)
    yaw = axes_by_title(fig)["base roll / pitch / yaw (ZYX; yaw unwrapped)"].lines[2]
    np.testing.assert_allclose(np.radians(yaw.get_ydata()), 0.4 * 0.02 * np.arange(40), atol=1e-9)
    from trajopt_loader.robots import digit_v3
    from trajopt_loader.transforms.references import compute_references

    refs = compute_references(
        store.read(0, "qpos")[None],
        store.read(0, "qvel")[None],
        digit_v3.SPEC,
        (store.convention("digit_v3"),),
        ee_pos=store.read(0, "ee_pos")[None],
    )
    ee_keys = sorted(k for k, v in refs.items() if v.ndim == 4)  # [1, T, 4 sites, 3]
    panels = axes_by_title(fig)
    assert ee_keys and all(len(panels[k].lines) == 2 * 4 * 3 for k in ee_keys)
    assert pixels(fig)[..., :3].std() > 20


def test_plot_reads_a_remote_url(shared_data):
    from trajopt_loader import export_npz

    url = "memory://trajopt-loader-viz/cassie.zarr"
    export_npz(
        shared_data / "cassie" / "trajopt",
        url,
        source="cassie",
        convention="mujoco",
        motion="agility_reference",
        progress=False,
        overwrite=True,
        single_writer=True,
    )
    fig = plot_trajectories(TrajectoryStore(url), ["cassie/agility_reference/traj0"])
    raw = np.load(shared_data / "cassie" / "trajopt" / "agility_reference" / "traj_0.npz")
    np.testing.assert_array_equal(
        axes_by_title(fig)["base height"].lines[0].get_ydata(), raw["qpos"][:, 2]
    )


def _batches(cassie_store, **over):
    config = load_config(
        "cassie",
        {
            "zarr_path": str(cassie_store),
            "motions": ("aslip_walk",),
            "num_envs": 6,
            "window_size": 24,
            "stride": 20,
            "references.enabled": False,
            "keys": ("qpos",),
            **over,
        },
    )
    return make_dataset(config, TrajectoryStore(cassie_store), process_index=0, process_count=1)


def test_batch_plot_shows_steps_valid_loops_and_starts(cassie_store):
    store = TrajectoryStore(cassie_store)
    batch = batch_at(_batches(cassie_store, end_policy="wrap"), 1)
    fig = plot_batch(batch, store)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[1].get_array(), batch["step"])
    seams = ax.collections[-1].get_segments()
    r, c = np.nonzero(np.diff(batch["loop"], axis=1) > 0)
    assert len(seams) == r.size > 0
    np.testing.assert_allclose([s[0][0] for s in seams], c + 0.5)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert (
        labels[0]
        == f"env 0: traj {batch['traj_id'][0]} {store.info(int(batch['traj_id'][0])).path}"
    )
    first = plot_batch(batch_at(_batches(cassie_store), 0), store)
    clamp = plot_batch(batch_at(_batches(cassie_store, end_policy="clamp"), 1), store)
    a, b, c2 = pixels(fig), pixels(first), pixels(clamp)
    assert a[..., :3].std() > 20 and np.abs(a.astype(int) - b.astype(int)).mean() > 1.0
    assert np.abs(a.astype(int) - c2.astype(int)).mean() > 1.0  # hatched invalid cells


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_plot_and_plot_batch_commands(cassie_store, tmp_path):
    from PIL import Image

    out = tmp_path / "plot.png"
    r = _cli(
        "plot",
        cassie_store,
        "--traj",
        "cassie/agility_reference/traj2",
        "--traj",
        "0",
        "--refs",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(out))[..., :3].std() > 20
    out = tmp_path / "batch.svg"
    r = _cli(
        "plot-batch",
        "--config=cassie",
        f"--config.zarr_path={cassie_store}",
        "--config.motions=('aslip_walk',)",
        "--config.num_envs=4",
        "--config.window_size=8",
        "--config.keys=('qpos',)",
        "--config.references.enabled=False",
        "--batch",
        "2",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert out.read_text().lstrip().startswith("<?xml") and "env 3: traj" in out.read_text()
    r = _cli("plot", cassie_store, "-o", tmp_path / "plot.txt")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "trajopt-loader plot: error: -o '" + str(tmp_path / "plot.txt") + "': expected an output "
        "file ending in one of ('.png', '.svg', '.pdf'); usage: trajopt-loader plot STORE "
        "[--traj ID|PATH ...] [--refs] -o OUT.png|svg|pdf"
    ]


@pytest.mark.slow
def test_importing_the_package_does_not_import_matplotlib():
    code = (
        "import sys, trajopt_loader, trajopt_loader.viz, trajopt_loader.viz.render, "
        "trajopt_loader.cli; assert 'matplotlib' not in sys.modules and 'imageio' not in "
        "sys.modules and 'PIL' not in sys.modules, sorted(sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_missing_matplotlib_names_the_extra(store, monkeypatch):
    from trajopt_loader.viz import VizDependencyError

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now raises ImportError
    with pytest.raises(
        VizDependencyError,
        match=r"plotting needs the Python package 'matplotlib'"
        r".*pip install 'trajopt-loader\[viz\]'",
    ):
        plot_trajectories(store, [0])


def test_one_figure_holds_one_robot(store):
    from trajopt_loader.errors import RobotSpecError
    from trajopt_loader.robots import digit_v3
    from trajopt_loader.viz.data import trajectory_view

    with pytest.raises(
        RobotSpecError, match="qpos 35 / qvel 32 wide, but robot 'digit_v3' has nq=61, nv=54"
    ):
        trajectory_view(store, 0, spec=digit_v3.SPEC)
