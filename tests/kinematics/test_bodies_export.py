"""Export preprocessing with ``bodies``: refusals (no qvel, recorded body keys) and the keys
written for data in the Pinocchio convention."""

from __future__ import annotations

import numpy as np
import pytest

from trajopt_loader.errors import ExportError, MissingKeyError
from trajopt_loader.kinematics import make_export_preprocess
from trajopt_loader.kinematics.bodies import body_states
from trajopt_loader.kinematics.model import (
    load_kinematics_model,
    qpos_from_mujoco,
    qvel_from_mujoco,
)


@pytest.fixture(scope="module")
def cassie(shared_data):
    path = shared_data / "cassie" / "cassie.xml"
    with np.load(shared_data / "cassie/trajopt/agility_reference/traj_2.npz") as f:
        arrays = {k: f[k] for k in ("qpos", "qvel")}
    return path, load_kinematics_model(path), arrays


def test_bodies_need_qvel_and_never_replace_recorded(cassie):
    path, _, arrays = cassie
    pre = make_export_preprocess(path, convention="mujoco", bodies="cassie-pelvis")
    with pytest.raises(ExportError, match="pass --derive-qvel"):
        pre({"qpos": arrays["qpos"]}, 0.03, "t.npz")
    with pytest.raises(ExportError, match=r"t.npz: already has \['body_pos'\]"):
        pre({**arrays, "body_pos": np.zeros((28, 1, 3))}, 0.03, "t.npz")
    with pytest.raises(MissingKeyError, match="'nose'"):
        make_export_preprocess(path, convention="mujoco", bodies="nose,cassie-pelvis")


def test_pinocchio_data_gives_the_mujoco_body_states(cassie):
    path, model, arrays = cassie
    qpos = qpos_from_mujoco(model, arrays["qpos"], "pinocchio")
    qvel = qvel_from_mujoco(model, arrays["qvel"], arrays["qpos"], "pinocchio")
    pre = make_export_preprocess(path, convention="pinocchio", bodies="all")
    out, dt, prov = pre({"qpos": qpos, "qvel": qvel}, 0.03, "t.npz")
    want = body_states(model, arrays["qpos"], arrays["qvel"], prov["body_names"], "mujoco")
    for key, value in want.items():
        np.testing.assert_allclose(out[key], value, atol=1e-12, err_msg=key)
    np.testing.assert_array_equal(out["qpos"], qpos)  # the data keeps its convention
    assert (
        prov["body_quat_order"] == "wxyz"
        and prov["model_fingerprint"] == pre.model_layout["fingerprint"]
    )
