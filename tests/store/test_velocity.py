"""Velocity check (trajopt_loader.store.velocity): qvel vs the derivative of qpos at dt."""

from __future__ import annotations

import numpy as np
import pytest

from trajopt_loader.store.velocity import check_velocity_consistency, model_joint_addresses

DT = 0.01


def _free_base_motion(n=50, joints=3):
    """qpos [n, 7 + J] with moving hinge angles; qvel [n, 6 + J] = exact forward differences."""
    t = np.arange(n) * DT
    qpos = np.zeros((n, 7 + joints))
    qpos[:, 3] = 1.0
    for j in range(joints):
        qpos[:, 7 + j] = np.sin((j + 1) * 2.0 * t) + 0.1 * j
    qvel = np.zeros((n, 6 + joints))
    qvel[:-1, 6:] = (qpos[1:, 7:] - qpos[:-1, 7:]) / DT
    qvel[-1, 6:] = qvel[-2, 6:]
    return qpos, qvel


def test_velocity_check_consistent_velocities():
    qpos, qvel = _free_base_motion()
    v = check_velocity_consistency(qpos, qvel, DT)
    assert v.correlation == pytest.approx(1.0, abs=1e-12)
    assert v.scale == pytest.approx(1.0, abs=1e-12)
    assert (v.n_joints, v.n_samples, v.flagged) == (3, 49 * 3, False)


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_velocity_check_wrong_dt_gives_scale(factor):
    qpos, qvel = _free_base_motion()
    v = check_velocity_consistency(qpos, qvel, DT * factor)  # dt recorded wrong by `factor`
    assert v.scale == pytest.approx(factor, rel=1e-12)
    assert v.correlation == pytest.approx(1.0, abs=1e-12)
    assert v.flagged and f"is dt off by a factor {factor:.3g}?" in v.reason


def test_velocity_check_zero_shuffled_and_wrong_columns():
    qpos, qvel = _free_base_motion()
    v = check_velocity_consistency(qpos, np.zeros_like(qvel), DT)
    assert (v.scale, v.flagged, v.reason) == (0.0, True, "qvel is zero while qpos moves")
    assert np.isnan(v.correlation)
    shuffled = qvel[np.random.default_rng(0).permutation(len(qvel))]
    v = check_velocity_consistency(qpos, shuffled, DT)
    assert v.flagged and v.correlation < 0.5 and "correlates poorly" in v.reason
    swapped = qvel[:, [0, 1, 2, 3, 4, 5, 8, 7, 6]]  # columns of other joints
    assert check_velocity_consistency(qpos, swapped, DT).flagged


def test_velocity_check_explicit_addresses_and_errors():
    qpos, qvel = _free_base_motion()
    # ball joint before the hinges: without addresses the layout is unknown
    qpos_b = np.concatenate([qpos[:, :7], np.tile([1.0, 0, 0, 0], (len(qpos), 1)), qpos[:, 7:]], 1)
    qvel_b = np.concatenate([qvel[:, :6], np.zeros((len(qvel), 3)), qvel[:, 6:]], 1)
    with pytest.raises(ValueError, match=r"nq=14, nv=12: not a free/ball-base layout"):
        check_velocity_consistency(qpos_b, qvel_b, DT)
    v = check_velocity_consistency(qpos_b, qvel_b, DT, qpos_adr=[11, 12, 13], dof_adr=[9, 10, 11])
    assert v.scale == pytest.approx(1.0, abs=1e-12) and not v.flagged
    with pytest.raises(ValueError, match=r"equal T >= 2"):
        check_velocity_consistency(qpos[:1], qvel[:1], DT)


def test_model_addresses_errors_name_the_path(tmp_path):
    from trajopt_loader.errors import ModelError, ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="no MuJoCo model at '/nope/robot.xml'"):
        model_joint_addresses("/nope/robot.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body><joint type='hinge'/></body></worldbody>")
    with pytest.raises(ModelError, match=f"MuJoCo cannot load {str(bad)!r}"):
        model_joint_addresses(str(bad))
