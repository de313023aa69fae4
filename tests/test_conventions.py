"""Base conventions (trajopt_loader.conventions): named conventions, attrs round trip, bad
values."""

import numpy as np
import pytest

from trajopt_loader.conventions import MUJOCO, PINOCCHIO, Convention, as_convention, flag_table
from trajopt_loader.errors import ConventionError


def test_named_conventions_match_the_documented_layouts():
    # MuJoCo free joint: quat wxyz, linear velocity world, angular body (MuJoCo docs, mjJNT_FREE).
    assert (MUJOCO.quat_order, MUJOCO.lin_vel_frame, MUJOCO.ang_vel_frame) == (
        "wxyz",
        "world",
        "body",
    )
    # Pinocchio free-flyer: quat xyzw, both velocities body (Pinocchio docs, JointModelFreeFlyer).
    assert (PINOCCHIO.quat_order, PINOCCHIO.lin_vel_frame, PINOCCHIO.ang_vel_frame) == (
        "xyzw",
        "body",
        "body",
    )
    assert Convention.named("MuJoCo") is MUJOCO
    assert Convention.named("crocoddyl") is PINOCCHIO
    assert (MUJOCO.name, PINOCCHIO.name, Convention("wxyz", "body", "body").name) == (
        "mujoco",
        "pinocchio",
        "custom",
    )


@pytest.mark.parametrize("conv", [MUJOCO, PINOCCHIO, Convention("xyzw", "world", "world")])
def test_attrs_round_trip(conv):
    attrs = conv.to_attrs()
    assert attrs == {
        "name": conv.name,
        "quat_order": conv.quat_order,
        "lin_vel_frame": conv.lin_vel_frame,
        "ang_vel_frame": conv.ang_vel_frame,
    }
    assert Convention.from_attrs(attrs) == conv


def test_bad_values_name_the_field_and_the_fix():
    with pytest.raises(
        ConventionError, match=r"quat_order='wxzy' is not one of \('wxyz', 'xyzw'\)"
    ):
        Convention("wxzy", "world", "body")
    with pytest.raises(ConventionError, match="lin_vel_frame='local'.*MuJoCo stores linear"):
        Convention("wxyz", "local", "body")
    with pytest.raises(
        ConventionError, match="convention 'drake' is unknown.*'mujoco', 'pinocchio'"
    ):
        Convention.named("drake")
    with pytest.raises(ConventionError, match="source 'x' has no convention field 'ang_vel_frame'"):
        Convention.from_attrs({"quat_order": "wxyz", "lin_vel_frame": "world"}, "source 'x'")
    assert isinstance(ConventionError("m"), ValueError)


@pytest.mark.parametrize(
    "name,want",
    [
        ("mujoco", MUJOCO),
        (" MuJoCo\n", MUJOCO),
        ("PINOCCHIO", PINOCCHIO),
        ("Crocoddyl ", PINOCCHIO),
        (PINOCCHIO, PINOCCHIO),
    ],
)
def test_names_are_case_insensitive_and_stripped(name, want):
    assert as_convention(name) is want


def test_unknown_names_and_types_list_the_valid_names():
    with pytest.raises(
        ConventionError,
        match=r"^convention 'mujuco' is unknown; expected one of "
        r"\['mujoco', 'pinocchio', 'crocoddyl'\]",
    ):
        as_convention("mujuco")
    with pytest.raises(
        ConventionError,
        match=r"^convention=3 is neither a Convention nor a name; "
        r"expected one of \['mujoco', 'pinocchio', 'crocoddyl'\]",
    ):
        as_convention(3)
    with pytest.raises(ConventionError, match=r"conventions\[1\]=None is neither"):
        flag_table(["mujoco", None])


def test_flag_table_rows_follow_each_convention_by_name_or_object():
    # (quaternion xyzw, linear velocity world-frame, angular velocity world-frame)
    np.testing.assert_array_equal(flag_table("mujoco"), [[False, True, False]])
    np.testing.assert_array_equal(
        flag_table((PINOCCHIO, "MUJOCO", Convention("xyzw", "world", "world"))),
        [[True, False, False], [False, True, False], [True, True, True]],
    )
    assert flag_table(()).shape == (0, 3)
