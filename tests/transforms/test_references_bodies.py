"""ref_body_* keys against a numpy oracle, and through make_dataset on an exported Cassie store
(body states continued with the base across cyclic wraps)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ConfigError
from trajopt_loader.transforms.references_bodies import compute_body_references


def _random_bodies(rng, n_env, n_t, nb):
    pos = rng.standard_normal((n_env, n_t, nb, 3))
    quat = Rotation.random(n_env * n_t * nb, random_state=1).as_quat()[:, [3, 0, 1, 2]]
    return (
        pos,
        quat.reshape(n_env, n_t, nb, 4),
        rng.standard_normal((n_env, n_t, nb, 3)),
        rng.standard_normal((n_env, n_t, nb, 3)),
    )


def _oracle(pos, quat, lin, ang, anchor, e, t, b):
    """Element by element: H = Rz(psi) with psi = atan2(R_a[1,0], R_a[0,0])."""
    r_a = Rotation.from_quat(quat[e, t, anchor][[1, 2, 3, 0]]).as_matrix()
    psi = np.arctan2(r_a[1, 0], r_a[0, 0])
    h = np.array([[np.cos(psi), -np.sin(psi), 0], [np.sin(psi), np.cos(psi), 0], [0, 0, 1]])
    r_b = Rotation.from_quat(quat[e, t, b][[1, 2, 3, 0]]).as_matrix()
    return (
        h.T @ (pos[e, t, b] - pos[e, t, anchor]),
        h.T @ r_b,
        h.T @ lin[e, t, b],
        h.T @ ang[e, t, b],
    )


def test_body_references_match_numpy_oracle():
    rng = np.random.default_rng(0)
    pos, quat, lin, ang = _random_bodies(rng, 3, 5, 4)
    valid = np.ones((3, 5), bool)
    valid[1, 3:] = False
    valid[2] = False
    refs = compute_body_references(pos, quat, lin, ang, 2, valid=valid)
    for e, t, b in np.ndindex(2, 5, 4):
        src = min(t, 2) if e == 1 else t  # invalid rows repeat the last valid one
        hp, hr, hl, ha = _oracle(pos, quat, lin, ang, 2, e, src, b)
        np.testing.assert_allclose(refs["ref_body_pos"][e, t, b], pos[e, src, b], atol=1e-12)
        np.testing.assert_allclose(refs["ref_body_quat"][e, t, b], quat[e, src, b], atol=1e-12)
        np.testing.assert_allclose(refs["ref_body_lin_vel"][e, t, b], lin[e, src, b], atol=1e-12)
        np.testing.assert_allclose(refs["ref_body_ang_vel"][e, t, b], ang[e, src, b], atol=1e-12)
        np.testing.assert_allclose(refs["ref_body_heading_pos"][e, t, b], hp, atol=1e-12)
        np.testing.assert_allclose(refs["ref_body_heading_lin_vel"][e, t, b], hl, atol=1e-12)
        np.testing.assert_allclose(refs["ref_body_heading_ang_vel"][e, t, b], ha, atol=1e-12)
        q = refs["ref_body_heading_quat"][e, t, b]
        np.testing.assert_allclose(Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix(), hr, atol=1e-12)
        assert np.isclose(np.linalg.norm(q), 1.0)
    for key, value in refs.items():  # env without a valid row: zeros
        assert value.dtype == np.float64 and not value[2].any(), key
    anchor_heading = refs["ref_body_heading_quat"][:2, :, 2]  # anchor has zero heading
    yaw = Rotation.from_quat(anchor_heading.reshape(-1, 4)[:, [1, 2, 3, 0]]).as_euler("ZYX")[:, 0]
    np.testing.assert_allclose(yaw, 0.0, atol=1e-12)


@pytest.fixture(scope="module")
def body_store(tmp_path_factory, shared_data):
    from trajopt_loader.kinematics import make_export_preprocess
    from trajopt_loader.store import export_npz

    root = tmp_path_factory.mktemp("refs_src")
    (root / "walk").mkdir()
    shutil.copy(shared_data / "cassie/trajopt/agility_reference/traj_2.npz", root / "walk")
    out = tmp_path_factory.mktemp("refs") / "s.zarr"
    pre = make_export_preprocess(
        shared_data / "cassie/cassie.xml",
        convention="mujoco",
        bodies="cassie-pelvis,left-foot,right-foot",
    )
    export_npz(root, out, source="cassie", convention="mujoco", preprocess=pre, progress=False)
    return out


def _config(store, **refs):
    return load_config(
        overrides={
            "zarr_path": str(store),
            "num_envs": 2,
            "window_size": 24,
            "stride": 24,
            "dtype": "float64",
            "keys": ("qpos", "qvel", "body_pos", "body_quat", "body_lin_vel", "body_ang_vel"),
            "references.enabled": True,
            "references.robot": "cassie",
            "references.body_keys": True,
            **{f"references.{k}": v for k, v in refs.items()},
        }
    )


def test_body_references_in_the_stream_follow_cyclic_wraps(body_store):
    from trajopt_loader.pipeline.dataset import make_dataset

    it = iter(
        make_dataset(_config(body_store, anchor_body="left-foot"), process_index=0, process_count=1)
    )
    batches = [next(it) for _ in range(3)]
    assert any((b["loop"] > 0).any() for b in batches)  # T=28: windows of 24 wrap
    for b in batches:
        # the pelvis is the floating base: its pose and velocity are the (continued) base's
        np.testing.assert_allclose(b["ref_body_pos"][..., 0, :], b["qpos"][..., 0:3], atol=1e-9)
        np.testing.assert_allclose(b["ref_body_quat"][..., 0, :], b["qpos"][..., 3:7], atol=1e-9)
        np.testing.assert_allclose(b["ref_body_lin_vel"][..., 0, :], b["qvel"][..., 0:3], atol=1e-9)
        want = compute_body_references(
            b["body_pos"], b["body_quat"], b["body_lin_vel"], b["body_ang_vel"], 1, valid=b["valid"]
        )
        for key, value in want.items():
            np.testing.assert_array_equal(b[key], value, err_msg=key)


def test_body_references_config_errors(body_store):
    from trajopt_loader.pipeline.dataset import make_dataset

    with pytest.raises(ConfigError, match="anchor_body='nose' is not a stored body"):
        make_dataset(_config(body_store, anchor_body="nose"), process_index=0, process_count=1)
    config = _config(body_store)
    config["keys"] = ("qpos", "qvel")
    with pytest.raises(ConfigError, match="references.body_keys needs"):
        make_dataset(config, process_index=0, process_count=1)
