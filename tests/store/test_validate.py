"""Validation of single .npz files (trajopt_loader.store.validate): ragged keys, padded files, bad
values, unnamed arrays, and dt rules."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CASSIE_TRAJOPT, revealing

from trajopt_loader.errors import ExportError
from trajopt_loader.store.validate import load_trajectory


def _save(tmp_path, name="traj_0.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def _base(n=10, **kw):
    a = {"qpos": revealing(0, n, 9), "qvel": revealing(0, n, 8, base=-1e4), "dt": np.float64(0.01)}
    a.update(kw)
    return {k: v for k, v in a.items() if v is not None}


def test_named_file_loads_exactly(tmp_path):
    t = load_trajectory(
        _save(tmp_path, **_base(action=revealing(0, 10, 2, 1e4), speed=np.float64(1.5)))
    )
    assert t.length == 10 and t.rows_in_file == 10 and t.dt == 0.01
    assert np.array_equal(t.arrays["qpos"], revealing(0, 10, 9))
    assert t.arrays["qpos"][3, 2] == 3.02
    assert t.scalars == {"speed": 1.5} and t.padded == {} and t.skipped == []


def test_action_with_one_row_less_is_padded_by_repeating_last(tmp_path):
    action = revealing(0, 49, 2, 1e4)
    t = load_trajectory(_save(tmp_path, **_base(50, action=action)))
    assert t.arrays["action"].shape == (50, 2)
    assert np.array_equal(t.arrays["action"][:49], action)
    assert np.array_equal(t.arrays["action"][49], action[48])  # 10048.0, 10048.01
    assert t.arrays["action"][49, 1] == 10048.01
    assert t.padded == {"action": 1}


def test_other_action_mismatch_is_an_error(tmp_path):
    with pytest.raises(ExportError, match=r"traj_0.npz: key 'action': has 47 rows but qpos has 50"):
        load_trajectory(_save(tmp_path, **_base(50, action=np.zeros((47, 2)))))


def test_extra_array_of_other_length_is_skipped_with_warning(tmp_path):
    t = load_trajectory(
        _save(tmp_path, **_base(10, contacts=np.zeros((4, 2)), motor_pos=np.ones((10, 3))))
    )
    assert "contacts" not in t.arrays and t.arrays["motor_pos"].shape == (10, 3)
    assert t.skipped == ["traj_0.npz: contacts (4, 2) skipped (qpos has 10 rows)"]


def test_true_length_keeps_only_real_rows(tmp_path):
    qpos = revealing(0, 64, 9)
    qpos[40:] = np.nan  # padding rows may hold anything: they are never read
    t = load_trajectory(_save(tmp_path, **_base(64, qpos=qpos, true_length=np.int64(40))))
    assert t.length == 40 and t.rows_in_file == 64 and t.true_length == 40
    assert np.array_equal(t.arrays["qpos"], revealing(0, 40, 9))
    assert t.arrays["qvel"].shape == (40, 8)


@pytest.mark.parametrize("tl", [0, 65, -1, 3.5])
def test_true_length_out_of_range(tmp_path, tl):
    with pytest.raises(ExportError, match=r"key 'true_length': is .* expected an integer in 1..64"):
        load_trajectory(_save(tmp_path, **_base(64, true_length=np.float64(tl))))


def test_nan_in_qvel_names_file_key_row_column(tmp_path):
    qvel = revealing(0, 10, 8)
    qvel[7, 3] = np.nan
    with pytest.raises(ExportError) as e:
        load_trajectory(_save(tmp_path, **_base(qvel=qvel)))
    assert str(e.value).startswith(
        "traj_0.npz: key 'qvel': has a non-finite value nan at row 7, column (3,)"
    )


def test_inf_in_1d_extra(tmp_path):
    time = np.arange(10) * 0.01
    time[2] = np.inf
    with pytest.raises(ExportError, match=r"key 'time': has a non-finite value inf at row 2;"):
        load_trajectory(_save(tmp_path, **_base(time=time)))


def test_zero_rows(tmp_path):
    with pytest.raises(ExportError, match=r"traj_0.npz: key 'qpos': has 0 rows"):
        load_trajectory(_save(tmp_path, **_base(0)))


def test_object_array_needing_pickle(tmp_path):
    p = tmp_path / "traj_0.npz"
    np.savez(p, qpos=np.array([np.zeros(3), np.zeros(2)], dtype=object), qvel=np.zeros((2, 2)))
    with pytest.raises(ExportError, match=r"traj_0.npz: key 'qpos': needs pickle to load"):
        load_trajectory(p)


def test_string_array_is_not_numeric(tmp_path):
    with pytest.raises(ExportError, match=r"key 'label': has dtype <U3 .* expected a numeric"):
        load_trajectory(_save(tmp_path, **_base(label=np.array(["abc"] * 10))))


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04broken"])
def test_corrupt_file(tmp_path, content):
    p = tmp_path / "traj_9.npz"
    p.write_bytes(content)
    with pytest.raises(ExportError, match=r"^traj_9.npz: cannot be read as .npz"):
        load_trajectory(p)


def test_missing_qpos_and_qvel(tmp_path):
    with pytest.raises(ExportError, match=r"key 'qpos': is missing"):
        load_trajectory(_save(tmp_path, **_base(qpos=None)))
    with pytest.raises(ExportError) as e:
        load_trajectory(_save(tmp_path, **_base(qvel=None)))
    msg = str(e.value)
    assert "allow_missing=('qvel',)" in msg and "--allow-missing qvel" in msg
    assert "--derive-qvel" in msg
    t = load_trajectory(_save(tmp_path, **_base(qvel=None)), allow_missing=("qvel",))
    assert sorted(t.arrays) == ["qpos"]


def test_qpos_qvel_row_counts_differ(tmp_path):
    with pytest.raises(ExportError, match=r"key 'qvel': has shape \(9, 8\) but qpos has 10 rows"):
        load_trajectory(_save(tmp_path, **_base(qvel=np.zeros((9, 8)))))


def test_unnamed_arrays_refused_with_fix_then_mapped(tmp_path):
    p = tmp_path / "traj_0.npz"
    np.savez(p, revealing(0, 10, 9), revealing(0, 10, 8, -1e4), np.float64(0.01))
    with pytest.raises(ExportError) as e:
        load_trajectory(p)
    assert "--key qpos=arr_0" in str(e.value) and "cannot be guessed" in str(e.value)
    t = load_trajectory(p, key_map={"qpos": "arr_0", "qvel": "arr_1", "dt": "arr_2"})
    assert np.array_equal(t.arrays["qpos"], revealing(0, 10, 9))
    assert np.array_equal(t.arrays["qvel"], revealing(0, 10, 8, -1e4)) and t.dt == 0.01
    with pytest.raises(ExportError, match=r"key 'arr_2': unnamed arrays \(arr_2\)"):
        load_trajectory(p, key_map={"qpos": "arr_0", "qvel": "arr_1"})
    with pytest.raises(ExportError, match=r"key 'arr_7': is not in the file"):
        load_trajectory(p, key_map={"qpos": "arr_7"})


def test_mapping_that_renames_a_required_key_is_refused(tmp_path):
    p = _save(tmp_path, **_base())
    with pytest.raises(ExportError) as e:
        load_trajectory(p, key_map={"bogus": "qpos"})
    assert str(e.value) == (
        "traj_0.npz: key 'qpos': would be renamed to 'bogus' by the mapping bogus=qpos; expected "
        "'qpos' to keep its name (the mapping gives the target name first). Fix: drop --key "
        "bogus=qpos, or write --key qpos=<array name>"
    )
    # Renaming qpos away is fine when another array becomes qpos.
    p2 = _save(tmp_path, "traj_1.npz", **_base(q_ik=revealing(1, 10, 9)))
    t = load_trajectory(p2, key_map={"qpos_raw": "qpos", "qpos": "q_ik"})
    np.testing.assert_array_equal(t.arrays["qpos"], revealing(1, 10, 9))
    np.testing.assert_array_equal(t.arrays["qpos_raw"], revealing(0, 10, 9))


def test_dt_from_uniform_time_and_from_argument(tmp_path):
    t = load_trajectory(_save(tmp_path, **_base(dt=None, time=0.5 + 0.02 * np.arange(10))))
    assert t.dt == pytest.approx(0.02, rel=1e-12)
    t = load_trajectory(_save(tmp_path, **_base(dt=None)), dt=0.004)
    assert t.dt == 0.004


def test_dt_refuses_to_guess(tmp_path):
    with pytest.raises(ExportError, match=r"no 'dt' scalar and no uniform 'time'.*--dt SECONDS"):
        load_trajectory(_save(tmp_path, **_base(dt=None)))


def test_dt_nonuniform_time_is_an_error_unless_dt_key(tmp_path):
    time = np.cumsum(np.r_[0, np.full(9, 0.01)])
    time[5:] += 0.003
    with pytest.raises(ExportError, match=r"key 'time': is not uniformly spaced \(step 4->5"):
        load_trajectory(_save(tmp_path, **_base(dt=None, time=time)))
    t = load_trajectory(_save(tmp_path, **_base(dt=np.float64(0.01), time=time)))
    assert t.dt == 0.01  # the dt key wins over time


def test_dt_argument_disagreeing_with_file(tmp_path):
    with pytest.raises(ExportError, match=r"key 'dt': gives dt=0.01 s but dt=0.02 s was passed"):
        load_trajectory(_save(tmp_path, **_base()), dt=0.02)
    assert load_trajectory(_save(tmp_path, **_base()), dt=0.010001).dt == 0.010001


def test_real_cassie_files():
    t = load_trajectory(CASSIE_TRAJOPT / "agility_reference" / "traj_2.npz")
    ref = np.load(CASSIE_TRAJOPT / "agility_reference" / "traj_2.npz")
    assert t.length == 28 and t.dt == float(ref["dt"])
    assert sorted(t.arrays) == ["action", "motor_pos", "motor_vel", "qpos", "qvel", "time"]
    t = load_trajectory(CASSIE_TRAJOPT / "aslip_walk" / "traj_3.npz", allow_missing=("qvel",))
    assert t.scalars == {"speed": 0.3} and t.length == 32
    assert t.dt == float(np.load(CASSIE_TRAJOPT / "aslip_walk" / "traj_3.npz")["dt"])
