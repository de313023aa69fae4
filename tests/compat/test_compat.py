"""Tests of trajopt_loader.compat: TrajoptLoader, VectorizedTrajectoryDataset (seed API).

Oracle: the ``.npz`` arrays themselves, indexed with numpy. Synthetic files carry revealing values
(``qpos[t, j] = 100 * i + t + j / 100`` for file ``i``, ``qvel = qpos + 1000``), so a wrong file,
row, key or stale buffer shows in the value.
"""

from __future__ import annotations

import types
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from conftest import SHARED_DATA, revealing
from scipy.spatial.transform import Rotation

from trajopt_loader.compat import (
    DigitRefSpec,
    TrajoptLoader,
    VectorizedTrajectoryDataset,
    build_refs_from_window,
    cfg_get,
)
from trajopt_loader.conventions import MUJOCO, PINOCCHIO
from trajopt_loader.errors import (
    ConfigError,
    EnvNotAssignedError,
    MissingKeyError,
    TrajoptLoaderError,
    WindowIndexError,
)
from trajopt_loader.robots import digit_v3_thirdarm
from trajopt_loader.store import TrajectoryStore

A_POS = [
    7,
    8,
    9,
    14,
    18,
    23,
    30,
    31,
    32,
    33,
    34,
    35,
    36,
    41,
    45,
    50,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
]
A_VEL = [
    6,
    7,
    8,
    12,
    16,
    20,
    26,
    27,
    28,
    29,
    30,
    31,
    32,
    36,
    40,
    44,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
]
CFG = {"window_size": 4, "buffer_size": 16, "allow_wrap": False}


def write_tree(root: Path, lengths: dict[str, list[int]], nq: int = 9) -> dict:
    """``root/<motion>/traj_{i}.npz`` with revealing qpos and ``qvel = qpos + 1000``; returns
    ``{(motion, i): {"qpos": ..., "qvel": ...}}`` (the oracle)."""
    oracle = {}
    for motion, lens in lengths.items():
        (root / motion).mkdir(parents=True)
        for i, n in enumerate(lens):
            qpos = revealing(i, n, nq) + (0.5 if motion.endswith("b") else 0.0)
            arrays = {"qpos": qpos, "qvel": qpos + 1000.0, "dt": np.float64(0.01)}
            np.savez(root / motion / f"traj_{i}.npz", **arrays)
            oracle[(motion, i)] = arrays
    return oracle


@pytest.fixture
def small(tmp_path):
    """A store with source ``trajopt``, motion ``digit_v3``: 3 trajectories of lengths 10, 7, 12."""
    oracle = write_tree(tmp_path / "npz", {"digit_v3": [10, 7, 12]})
    path = TrajoptLoader(tmp_path / "npz").save(
        out_dir=tmp_path / "out", dataset_source="trajopt", motion="digit_v3"
    )
    return path, [oracle[("digit_v3", i)] for i in range(3)]


def test_save_path_convention_and_rerun(tmp_path, small):
    path, _ = small
    assert path == str(tmp_path / "out" / "trajectories.zarr")
    assert (
        TrajectoryStore(path).convention("trajopt") == PINOCCHIO
    )  # default: the seed's Digit data
    loader = TrajoptLoader(tmp_path / "npz")
    again = loader.save(out_dir=tmp_path / "out", dataset_source="trajopt", motion="digit_v3")
    assert again == path and loader.summary.replaced == [
        "digit_v3"
    ]  # re-running works, as the seed
    other = loader.save(
        out_dir=tmp_path / "out",
        dataset_source="sim",
        motion="digit_v3",
        zarr_name="x.zarr",
        convention="mujoco",
        max_trajs_per_motion=2,
    )
    assert TrajectoryStore(other).convention("sim") == MUJOCO
    assert TrajectoryStore(other).lengths.tolist() == [10, 7]


def test_seed_usage_flat_dir_float32(tmp_path):
    """The seed's own usage: float32 files directly in a folder, motion named at save, keywords."""
    (tmp_path / "npz").mkdir()
    for i in range(2):
        np.savez(
            tmp_path / "npz" / f"traj_{i}.npz",
            qpos=revealing(i, 40, 8).astype(np.float32),
            qvel=revealing(i, 40, 6, base=1000).astype(np.float32),
        )
    zarr_path = TrajoptLoader(str(tmp_path / "npz")).save(
        out_dir=str(tmp_path), dataset_source="trajopt", motion="digit_v3", dt=0.02
    )  # files carry no dt
    ds = VectorizedTrajectoryDataset(
        zarr_path=zarr_path,
        num_envs=8,
        cfg=AttrItemConfig({"window_size": 32, "buffer_size": 64, "allow_wrap": True}),
    )
    ds.update_references(
        env_to_traj={e: e % 2 for e in range(8)}, env_to_step={e: 0 for e in range(8)}
    )
    qpos = ds.fetch_window(idx=list(range(8)), key="qpos", window_size=32)
    assert qpos.dtype == np.float32 and qpos.shape == (8, 32, 8) and qpos[3, 5, 0] == 105.0
    assert ds.zarr_dataset["trajopt/digit_v3/traj1/qvel"].shape == (40, 6)
    assert ds.available_trajectories_in("trajopt", "digit_v3") == ["traj0", "traj1"]


def test_multi_motion_export_natural_order(tmp_path):
    lengths = {"walk": [5 + i for i in range(12)], "walkb": [20 - i for i in range(11)]}
    oracle = write_tree(tmp_path / "npz", lengths)
    path = TrajoptLoader(tmp_path / "npz").save(
        out_dir=tmp_path, dataset_source="trajopt", motion=None
    )
    ds = VectorizedTrajectoryDataset(path, 23, {"window_size": 3})
    assert ds.available_dataset_sources == ["trajopt"]
    assert ds.available_motions == ["walk", "walkb"] and ds.available_motions_in("trajopt") == [
        "walk",
        "walkb",
    ]
    want = [f"trajopt/{m}/traj{i}" for m in lengths for i in range(len(lengths[m]))]
    assert ds.available_trajectories == want
    assert ds.available_trajectories_in("trajopt", "walk") == [f"traj{i}" for i in range(12)]
    assert ds.traj_lengths.tolist() == lengths["walk"] + lengths["walkb"]
    ds.update_references(
        env_to_traj={e: e for e in range(23)}, env_to_step={e: 4 for e in range(23)}
    )
    got = ds.fetch(range(23), key="qpos")
    exp = np.stack([oracle[(m, i)]["qpos"][4] for m in lengths for i in range(len(lengths[m]))])
    np.testing.assert_array_equal(got, exp)
    assert got[10, 0] == 1004.0 and got[2, 0] == 204.0  # trajectory 10 is traj_10.npz, 2 is traj_2
    with pytest.raises(MissingKeyError, match="walk"):
        ds.available_trajectories_in("trajopt", "run")


def test_fetch_mixed_steps_paths_and_ints(small):
    path, oracle = small
    ds = VectorizedTrajectoryDataset(zarr_path=path, num_envs=6, cfg=CFG)
    ds.update_references(
        env_to_traj={0: 0, 1: "trajopt/digit_v3/traj2", 2: 1, 3: 2, 4: 0, 5: 1},
        env_to_step={0: 9, 1: 11, 2: 0, 3: 5, 4: 3, 5: 6},
    )
    assert ds.env_traj_ids.tolist() == [0, 2, 1, 2, 0, 1] and ds.env_steps[1] == 11
    traj, steps = [0, 2, 1, 2, 0, 1], [9, 11, 0, 5, 3, 6]
    for key in ("qvel", "qpos"):
        want = np.stack([oracle[t][key][s] for t, s in zip(traj, steps, strict=True)])
        np.testing.assert_array_equal(ds.fetch(range(6), key=key), want)
    np.testing.assert_array_equal(ds.fetch([3, 1], "qpos"), oracle[2]["qpos"][[5, 11]])
    win = ds.fetch_window(range(6), key="qpos", window_size=1)
    np.testing.assert_array_equal(
        win[:, 0], np.stack([oracle[t]["qpos"][s] for t, s in zip(traj, steps, strict=True)])
    )
    win = ds.fetch_window([2, 3], "qvel")  # cfg window_size 4
    np.testing.assert_array_equal(win, np.stack([oracle[1]["qvel"][0:4], oracle[2]["qvel"][5:9]]))
    assert ds.env_steps.tolist() == steps  # fetch_window leaves cursors unchanged


def test_wrap(small):
    path, oracle = small
    ds = VectorizedTrajectoryDataset(path, 3, {"window_size": 25, "allow_wrap": True})
    ds.update_references(env_to_traj={0: 0, 1: 1, 2: 2}, env_to_step={0: 8, 1: -3, 2: 100})
    win = ds.fetch_window(range(3), "qpos")
    for e, (t, s) in enumerate([(0, 8), (1, -3), (2, 100)]):
        n = len(oracle[t]["qpos"])
        np.testing.assert_array_equal(win[e], oracle[t]["qpos"][(s + np.arange(25)) % n])
    assert ds.env_steps.tolist() == [8, -3, 100]
    np.testing.assert_array_equal(ds.fetch(range(3), "qvel")[:, 0], [1008.0, 1104.0, 1204.0])
    assert ds.env_steps.tolist() == [8, 4, 4]  # fetch stores the wrapped cursor, as the seed did


def test_errors(small):
    path, _ = small
    ds = VectorizedTrajectoryDataset(path, 4, CFG)
    with pytest.raises(EnvNotAssignedError, match=r"env\(s\) \[0, 3\].*update_references") as e:
        ds.fetch([0, 3], "qpos")
    assert isinstance(e.value, ValueError) and isinstance(e.value, TrajoptLoaderError)
    ds.update_references(env_to_traj={0: 1, 1: 0, 2: 0, 3: 0}, env_to_step={0: 7, 1: 2})
    with pytest.raises(
        IndexError, match=r"env 0: step 7 is outside \[0, 7\).*traj1.*allow_wrap"
    ) as e:
        ds.fetch(range(4), "qpos")
    assert isinstance(e.value, WindowIndexError)
    ds.update_references(env_to_step={0: 1})
    with pytest.raises(WindowIndexError, match=r"env 1: step 10 is outside \[0, 10\)"):
        ds.fetch_window([2, 1], "qpos", window_size=9)  # env 1 reads steps 2..10
    ds.update_references(env_to_step={0: -1})
    with pytest.raises(IndexError, match=r"env 0: step -1"):
        ds.fetch([0], "qpos")
    with pytest.raises(KeyError, match=r"'ee_pos'.*available keys: \['qpos', 'qvel'\]") as e:
        ds.fetch([1], key="ee_pos")
    assert isinstance(e.value, MissingKeyError)
    with pytest.raises(IndexError, match=r"env id 4 is outside \[0, 4\)"):
        ds.update_references(env_to_step={4: 0})
    with pytest.raises(IndexError, match=r"trajectory index 3 is outside \[0, 3\)"):
        ds.update_references(env_to_traj={0: 3})
    with pytest.raises(KeyError, match="trajopt/digit_v3/traj9"):
        ds.update_references(env_to_traj={0: "trajopt/digit_v3/traj9"})
    with pytest.raises(ValueError, match="integers"):
        ds.update_references(env_to_step={0: 1.5})
    with pytest.raises(ValueError, match="key='qpos'"):
        ds.fetch([1])
    with pytest.raises(ConfigError, match="num_envs"):
        VectorizedTrajectoryDataset(path, 0, CFG)
    ds.update_references(env_to_traj={1: -1})
    with pytest.raises(EnvNotAssignedError, match=r"\[1\]"):
        ds.fetch([1], "qpos")


class AttrItemConfig:
    """Attribute + item access, missing keys raise their own error (like OmegaConf DictConfig)."""

    def __init__(self, d):
        self.__dict__.update(d)

    def __getitem__(self, k):
        if k not in self.__dict__:
            raise RuntimeError(f"missing {k}")
        return self.__dict__[k]


@pytest.mark.parametrize(
    "make", [dict, ml_collections.ConfigDict, AttrItemConfig, lambda d: types.SimpleNamespace(**d)]
)
def test_cfg_kinds(small, make):
    path, oracle = small
    ds = VectorizedTrajectoryDataset(path, 2, make({"window_size": 5, "allow_wrap": True}))
    assert (ds.window_size, ds.buffer_size, ds.allow_wrap) == (5, 128, True)
    ds.update_references(env_to_traj={0: 1, 1: 1}, env_to_step={0: 6, 1: 0})
    np.testing.assert_array_equal(
        ds.fetch_window([0], "qpos")[0], oracle[1]["qpos"][[6, 0, 1, 2, 3]]
    )
    assert cfg_get(make({"a": None}), "a", 3) == 3 and cfg_get(None, "a", 4) == 4


@pytest.mark.parametrize("regime", ["whole", "chunks"])
def test_random_jumps_and_key_orders_match_oracle(tmp_path, regime):
    """Random cursor jumps, reassignments, key orders and fetch kinds vs numpy; no stale rows."""
    lengths = [300, 130, 64, 257]
    oracle = write_tree(tmp_path / "npz", {"m": lengths}, nq=1024)  # 8 KiB rows: 64 rows per chunk
    path = TrajoptLoader(tmp_path / "npz").save(out_dir=tmp_path, motion="m")
    cfg = {"window_size": 7, "buffer_size": 4, "allow_wrap": True}
    # whole: both keys (2 x 6 MB) held decoded; chunks: three time-chunks, far less than one key
    cfg["cache_bytes"] = 2**25 if regime == "whole" else 3 * 64 * 8192
    n_env = 5
    ds = VectorizedTrajectoryDataset(path, n_env, cfg)
    rng = np.random.default_rng(0)
    traj = rng.integers(0, 4, n_env)
    steps = rng.integers(-500, 500, n_env)
    ds.update_references(
        env_to_traj=dict(enumerate(traj.tolist())), env_to_step=dict(enumerate(steps.tolist()))
    )
    for _ in range(40):
        envs = rng.choice(n_env, rng.integers(1, n_env + 1), replace=False)
        if rng.random() < 0.3:
            new = rng.integers(0, 4, envs.size)
            ds.update_references(env_to_traj=dict(zip(envs.tolist(), new.tolist(), strict=True)))
            traj[envs] = new
        jump = (
            rng.integers(-(10**6), 10**6, envs.size)
            if rng.random() < 0.5
            else rng.integers(0, 3, envs.size)
        )
        steps[envs] += jump
        ds.update_references(
            env_to_step=dict(zip(envs.tolist(), steps[envs].tolist(), strict=True))
        )
        for key in rng.permutation(["qpos", "qvel"]):
            w = int(rng.integers(1, 80))
            got = ds.fetch_window(envs, key, window_size=w)
            want = np.stack(
                [
                    oracle[("m", int(traj[e]))][key][(steps[e] + np.arange(w)) % lengths[traj[e]]]
                    for e in envs
                ]
            )
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(ds.fetch(envs, key), want[:, 0])
            steps[envs] = ds.env_steps[envs]  # fetch wrapped the cursors
    info = ds.store.cache_info()
    assert info["budget"] == ds.cache_bytes and info["bytes_used"] <= ds.cache_bytes
    assert info["whole_keys"] == ([] if regime == "chunks" else ["qpos", "qvel"])


def test_cache_budget_from_buffer_size(small, tmp_path):
    path, _ = small
    # rows of 9 float64 per key, 2 keys: 144 B; 1000 envs x 16 rows = 2.3 MB > 2 x 512 KiB floor
    ds = VectorizedTrajectoryDataset(path, 1000, {"window_size": 4, "buffer_size": 16})
    assert ds.cache_bytes == 1000 * 16 * 2 * 9 * 8 == ds.store.cache_info()["budget"]
    tiny = VectorizedTrajectoryDataset(path, 2, {"buffer_size": 1})
    assert tiny.cache_bytes == 2 * 512 * 1024  # at least one stored time-chunk per key


def digit_window(n: int, i: int = 0) -> dict[str, np.ndarray]:
    """Synthetic Digit + third arm rows (nq=65, nv=58), Pinocchio convention: base at
    ``p_t = (0.1 t, 0.2 t, 1)`` with yaw ``pi/2 + 0.1 t`` (quaternion xyzw), body-frame base
    velocity ``(1, 0, 0)``, angular ``(0, 0, 0.5)``; joints revealing."""
    t = np.arange(n, dtype=np.float64)
    qpos, qvel = revealing(i, n, 65), revealing(i, n, 58, base=-1e4)
    qpos[:, 0:3] = np.stack([0.1 * t, 0.2 * t, np.ones(n)], axis=1)
    yaw = np.pi / 2 + 0.1 * t
    qpos[:, 3:7] = np.stack([0 * t, 0 * t, np.sin(yaw / 2), np.cos(yaw / 2)], axis=1)
    qvel[:, 0:6] = [1.0, 0.0, 0.0, 0.0, 0.0, 0.5]
    return {"qpos": qpos, "qvel": qvel, "dt": np.float64(0.03)}


def test_digit_refs_from_fetched_window(tmp_path):
    """Seed Digit flow: export (Pinocchio default) -> fetch_window -> build_refs_from_window with
    the 24-index third-arm DigitRefSpec; values checked against a hand-computed case."""
    assert (
        tuple(A_POS) == digit_v3_thirdarm.QPOS_INDEX
        and tuple(A_VEL) == digit_v3_thirdarm.QVEL_INDEX
    )
    (tmp_path / "npz").mkdir()
    for i in range(2):
        np.savez(tmp_path / "npz" / f"traj_{i}.npz", **digit_window(40, i))
    path = TrajoptLoader(tmp_path / "npz").save(out_dir=tmp_path, motion="digit_v3")
    ds = VectorizedTrajectoryDataset(path, 2, {"window_size": 8})
    ds.update_references(env_to_traj={0: 0, 1: 1}, env_to_step={0: 5, 1: 5})
    qpos, qvel = ds.fetch_window([0, 1], "qpos"), ds.fetch_window([0, 1], "qvel")
    assert qpos.shape == (2, 8, 65) and qvel.shape == (2, 8, 58)
    spec = DigitRefSpec(a_pos_index=A_POS, a_vel_index=A_VEL)
    refs = build_refs_from_window(
        qpos[1], qvel[1], spec, convention=ds.convention("trajopt"), heading_frame_keys=True
    )
    t = np.arange(8.0)  # window-local time; the window starts at trajectory step 5
    np.testing.assert_array_equal(
        refs["ref_motor_joint_pos"], 100 + 5 + t[:, None] + np.array(A_POS) / 100
    )
    np.testing.assert_array_equal(
        refs["ref_motor_joint_vel"], -1e4 + 100 + 5 + t[:, None] + np.array(A_VEL) / 100
    )
    # p_t - p_0 = (0.1 t, 0.2 t, 0) seen from heading pi/2 + 0.5: rotate by -(pi/2 + 0.5)
    yaw0 = np.pi / 2 + 0.5
    local = np.stack(
        [
            np.cos(yaw0) * 0.1 * t + np.sin(yaw0) * 0.2 * t,
            -np.sin(yaw0) * 0.1 * t + np.cos(yaw0) * 0.2 * t,
            0 * t,
        ],
        axis=1,
    )
    world = np.stack([0.1 * (t + 5), 0.2 * (t + 5), 0 * t + 1], axis=1)  # the seed's meanings:
    np.testing.assert_allclose(refs["ref_base_local_pos"], world, atol=1e-12)  # world position,
    np.testing.assert_allclose(
        refs["ref_base_local_trans"], world - world[0], atol=1e-12
    )  # from row 0,
    np.testing.assert_allclose(
        refs["ref_base_local_ori"],  # absolute roll, pitch, yaw
        np.stack([0 * t, 0 * t, yaw0 + 0.1 * t], 1),
        atol=1e-12,
    )
    np.testing.assert_allclose(refs["ref_base_heading_pos"], local, atol=1e-12)
    np.testing.assert_allclose(refs["ref_base_heading_trans"], local, atol=1e-12)
    np.testing.assert_allclose(
        refs["ref_base_heading_ori"], np.stack([0 * t, 0 * t, 0.1 * t], 1), atol=1e-12
    )
    # Pinocchio: base velocities are already body-frame, so they are not rotated again.
    np.testing.assert_allclose(
        refs["ref_base_robot_lin_vel"], np.tile([1.0, 0, 0], (8, 1)), atol=1e-12
    )
    np.testing.assert_allclose(
        refs["ref_base_robot_ang_vel"], np.tile([0, 0, 0.5], (8, 1)), atol=1e-12
    )
    assert refs["ref_len"].tolist() == [8] and "ref_local_ee_pos" not in refs
    # Read as MuJoCo data the same rows would give a rotated linear velocity: the convention
    # matters.
    wrong = build_refs_from_window(qpos[1], qvel[1], spec, convention=MUJOCO)
    assert not np.allclose(wrong["ref_base_robot_lin_vel"], refs["ref_base_robot_lin_vel"])
    r = Rotation.from_quat(qpos[1, 0, 3:7])  # scipy reads xyzw: the stored order is Pinocchio's
    assert np.isclose(r.as_euler("ZYX")[0], yaw0)


#: The predecessor's documented flow (its README's five steps), verbatim but for the import line
#: and the two placeholder paths, filled in from NPZ_DIR / OUT_DIR (kept verbatim: long lines too).
PREDECESSOR_FLOW = """
from trajopt_loader import (TrajoptLoader, VectorizedTrajectoryDataset, DoubleBufferStreamer,
                            DigitRefSpec, build_refs_from_window)

zarr_path = TrajoptLoader(NPZ_DIR).save(out_dir=OUT_DIR, dataset_source="trajopt",
                                        motion="digit_v3")
ds = VectorizedTrajectoryDataset(zarr_path=zarr_path, num_envs=64,
                                 cfg={"window_size": 32, "buffer_size": 128, "allow_wrap": True})
ds.update_references(env_to_traj={e: e % 8 for e in range(64)}, env_to_step={e: 0 for e in range(64)})
window = ds.fetch_window(range(64), key="qpos", window_size=32)

def host_fetch_window():
    batch = {k: ds.fetch_window(range(64), key=k, window_size=32) for k in ("qpos", "qvel")}
    for e in range(64):
        ds.env_steps[e] += 32
    return batch

with DoubleBufferStreamer(window_fn=host_fetch_window) as streamer:
    batch = streamer.next_window()
    batch2 = streamer.next_window()
"""  # noqa: E501 (verbatim text)


def test_predecessor_flow_on_dt_less_files_12_trajectories_64_envs(tmp_path):
    """Twelve dt-less files cut from the real Cassie data (no ``dt``, no ``time``: the
    predecessor's own files); its flow runs unchanged, records dt as unknown with one warning,
    and every env's windows are the file rows (steps wrapped modulo the length)."""
    import warnings

    src = SHARED_DATA / "cassie" / "trajopt"
    npz_dir = tmp_path / "npz"
    (npz_dir / "digit_v3").mkdir(parents=True)
    files = []
    for i in range(12):
        with np.load(src / "agility_reference" / f"traj_{i % 2}.npz") as f:
            lo, n = 100 * i, 20 + 7 * i  # lengths 20..97: windows of 32 wrap in the short ones
            arrays = {k: f[k][lo : lo + n] for k in ("qpos", "qvel", "action")}
        np.savez(npz_dir / "digit_v3" / f"traj_{i}.npz", **arrays)
        files.append(arrays)
    namespace = {"NPZ_DIR": str(npz_dir), "OUT_DIR": str(tmp_path / "zarr")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(PREDECESSOR_FLOW, "predecessor_flow", "exec"), namespace)
    dt_warnings = [str(w.message) for w in caught if "no 'dt'" in str(w.message)]
    assert len(dt_warnings) == 1 and "dt=SECONDS" in dt_warnings[0], dt_warnings
    ds = namespace["ds"]
    assert len(ds.available_trajectories) == 12 and np.isnan(ds.store.dts).all()
    assert [t.source_file for t in ds.store.trajectories] == [f"traj_{i}.npz" for i in range(12)]
    steps = np.arange(32)
    for e in range(64):
        rows = files[e % 8]
        n = len(rows["qpos"])
        np.testing.assert_array_equal(namespace["window"][e], rows["qpos"][steps % n])
        for key in ("qpos", "qvel"):  # on the device as float32 (x64 off), as JAX puts float64
            np.testing.assert_array_equal(
                np.asarray(namespace["batch"][key][e]), rows[key][steps % n].astype(np.float32)
            )
            np.testing.assert_array_equal(
                np.asarray(namespace["batch2"][key][e]),
                rows[key][(32 + steps) % n].astype(np.float32),
            )
