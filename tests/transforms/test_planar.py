"""Planar algebra of continued cycles against hand-built oracles.

Oracles: 2x2 rotation matrices applied in a loop (``Delta^c``), scipy's ``Rotation``
composition (yaw-premultiplied quaternions), and an analytic constant-curvature arc, whose
extrapolated frame ``L`` (the last step repeated in the heading frame) is exactly the arc's
next point.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trajopt_loader.errors import ConventionError
from trajopt_loader.geometry import yaw_premultiply
from trajopt_loader.transforms.planar import cycle_delta, cycle_power


def _rot2(a):
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _arc_rows(n, yaw0, rate, speed, dt=0.02, pitch=0.1):
    """Base rows ``[n, 7]`` (x, y, z, quaternion xyzw) and ``xy [n, 2]`` on a circle: heading
    ``yaw0 + rate t`` (rad, rate rad/s; 0 = a line), forward speed ``speed`` (m/s), pitch (rad)."""
    t = np.arange(n) * dt
    psi = yaw0 + rate * t
    if rate == 0:  # a straight line
        xy = speed * t[:, None] * [np.cos(yaw0), np.sin(yaw0)]
    else:
        r = speed / rate
        xy = np.stack([r * (np.sin(psi) - np.sin(yaw0)), -r * (np.cos(psi) - np.cos(yaw0))], 1)
    quat = Rotation.from_euler("ZYX", np.stack([psi, np.full(n, pitch), np.zeros(n)], 1)).as_quat()
    return np.concatenate([xy, np.full((n, 1), 0.9), quat], 1), xy


@pytest.mark.parametrize("xyzw", [True, False], ids=["xyzw", "wxyz"])
@pytest.mark.parametrize(
    "yaw0, rate",
    [(0.3, 0.8), (3.0, 0.9), (-3.0, -1.1), (1.0, 0.0)],
    ids=["left", "across-pi", "right-across-pi", "straight"],
)
def test_delta_maps_frame_0_onto_the_arcs_next_point(xyzw, yaw0, rate):
    L = 40
    rows, xy = _arc_rows(L + 1, yaw0, rate, speed=1.3)  # frame L: the oracle
    rows_in = rows if xyzw else rows[:, [0, 1, 2, 6, 3, 4, 5]]
    flags = np.array([xyzw])
    theta, disp, flip = cycle_delta(
        rows_in[None, 0], rows_in[None, L - 2], rows_in[None, L - 1], flags
    )
    want_theta = (rate * L * 0.02 + np.pi) % (2 * np.pi) - np.pi
    assert theta[0] == pytest.approx(want_theta, abs=1e-12) and not flip[0]
    got = _rot2(theta[0]) @ xy[0] + [disp[0].real, disp[0].imag]
    np.testing.assert_allclose(got, xy[L], atol=1e-12)
    # Loop c starts at arc point c L: Delta^c of frame 0 (closed form) is on the same circle.
    for c in (2, 7):
        _, trans, _ = cycle_power(theta, disp, flip, np.array([c]))
        _, long_xy = _arc_rows(c * L + 1, yaw0, rate, speed=1.3)
        p = _rot2(c * theta[0]) @ xy[0] + [trans[0].real, trans[0].imag]
        np.testing.assert_allclose(p, long_xy[c * L], atol=1e-9)


def test_short_clips_and_quaternion_sign():
    rows, xy = _arc_rows(3, 0.2, 0.5, speed=1.0)
    flags = np.array([True])
    # One frame (prev = last = first): no step to repeat, Delta is the identity.
    theta, disp, _ = cycle_delta(rows[None, 0], rows[None, 0], rows[None, 0], flags)
    assert theta[0] == 0 and disp[0] == 0
    # Two frames: frame 1 repeats the step 0 -> 1, so frame L = frame 2 of the arc.
    theta, disp, _ = cycle_delta(rows[None, 0], rows[None, 0], rows[None, 1], flags)
    np.testing.assert_allclose(
        _rot2(theta[0]) @ xy[0] + [disp[0].real, disp[0].imag], xy[2], atol=1e-12
    )
    # q and -q are the same base rotation; the sign flip keeps the seam continuous.
    neg = rows.copy()
    neg[2, 3:7] *= -1
    t1, d1, flip = cycle_delta(rows[None, 0], rows[None, 1], neg[None, 2], flags)
    t0, d0, _ = cycle_delta(rows[None, 0], rows[None, 1], rows[None, 2], flags)
    assert flip[0] and t1 == pytest.approx(t0, abs=1e-12) and d1 == pytest.approx(d0, abs=1e-12)


def test_non_unit_quaternion_names_trajectory_and_frame():
    rows, _ = _arc_rows(4, 0.0, 0.5, speed=1.0)
    prev = rows[None, 2].copy()
    prev[0, 3:7] = [0.0, 0.0, 0.0, 2.0]
    msg = (
        "trajectory s/m/traj0 (length 4), frame L-2: qpos[3:7] = [0.0, 0.0, 0.0, 2.0] has norm "
        "2, not a unit base quaternion (xyzw, the source's convention)."
    )
    with pytest.raises(ConventionError, match=re.escape(msg) + ".*--config.cyclic=False"):
        cycle_delta(rows[None, 0], prev, rows[None, 3], np.array([True]), ["s/m/traj0 (length 4)"])


def test_closed_form_power_equals_iterated_delta():
    rng = np.random.default_rng(0)
    for th in (0.0, 1e-14, 0.3, -2.9, np.pi):
        d = rng.standard_normal(2)
        for c in (0, 1, 2, 5, 1000):
            want = np.zeros(2)
            for _ in range(c):
                want = _rot2(th) @ want + d
            angle, trans, sign = cycle_power(
                np.array([th]), np.array([d[0] + 1j * d[1]]), np.array([True]), np.array([c])
            )
            np.testing.assert_allclose([trans.real[0], trans.imag[0]], want, atol=1e-9 * max(1, c))
            assert angle[0] == c * th and sign[0] == (-1.0) ** c


def test_yaw_premultiply_is_scipy_composition_with_its_sign():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((500, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    a = rng.uniform(-20, 20, 500)
    want = (Rotation.from_euler("z", a[:, None]) * Rotation.from_quat(q)).as_quat()
    np.testing.assert_allclose(yaw_premultiply(q, a), want, atol=1e-15)
