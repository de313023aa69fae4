"""The adaptive update rule and start distribution against hand-computed values, static motion
weights, and the config checks of ``adaptive.*`` / ``motion_weights``."""

from __future__ import annotations

import numpy as np
import pytest

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline.adaptive import (
    BinLayout,
    bin_steps_of,
    draw_starts,
    fold,
    smooth,
    start_distribution,
)


def test_layout_bins_the_valid_starts_of_each_trajectory():
    layout = BinLayout([5, 3], [2, 2])  # traj 0: starts {0,1} {2,3} {4}; traj 1: {0,1} {2}
    assert layout.total == 5
    np.testing.assert_array_equal(layout.owner, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(layout.first, [0, 2, 4, 0, 2])
    np.testing.assert_array_equal(layout.width, [2, 2, 1, 2, 1])
    np.testing.assert_array_equal(layout.last, [2, 2, 2, 4, 4])
    # a failure past the last valid start counts in the last bin
    np.testing.assert_array_equal(layout.bin_of([0, 0, 0, 1, 1], [0, 3, 7, 1, 2]), [0, 1, 2, 3, 4])


def test_update_rule_and_distribution_match_hand_computed_values():
    layout = BinLayout([5, 3], [2, 2])
    f = fold(np.zeros(5), [0, 2, 0, 1, 0], 0.5)
    np.testing.assert_array_equal(f, [0, 1, 0, 0.5, 0])
    f = fold(f, [0, 0, 4, 0, 0], 0.5)
    np.testing.assert_array_equal(f, [0, 0.5, 2, 0.25, 0])
    # kernel (1, 0.5) / 1.5 looking one bin ahead, last bin of each trajectory replicated
    np.testing.assert_allclose(smooth(f, layout, 2, 0.5), [1 / 6, 1, 2, 1 / 6, 0], rtol=1e-15)
    np.testing.assert_array_equal(smooth(f, layout, 1, 0.5), f)
    # weights (1, 3): U = w * width / 14, G = w * g / (11/3), p = 0.8 G + 0.2 U
    p = start_distribution(f, layout, [1.0, 3.0], 2, 0.5, 0.2)
    g = np.array([1 / 22, 6 / 22, 12 / 22, 3 / 22, 0])
    u = np.array([2, 2, 1, 6, 3]) / 14
    np.testing.assert_allclose(p, 0.8 * g + 0.2 * u, rtol=1e-14)
    # before any failure: the static distribution
    np.testing.assert_allclose(
        start_distribution(np.zeros(5), layout, [1.0, 3.0], 2, 0.5, 0.2), u, rtol=1e-15
    )


def test_draws_pick_the_bin_by_u_and_the_start_by_v():
    layout = BinLayout([5, 3], [2, 2])
    cdf = np.cumsum([0.1, 0.2, 0.3, 0.0, 0.4])  # bin 3 has no mass
    u = np.array([0.0, 0.15, 0.35, 0.61, 0.65, 0.999999])
    v = np.array([0.99, 0.5, 0.49, 0.3, 0.99, 0.0])
    position, start = draw_starts(cdf, layout, u, v)
    np.testing.assert_array_equal(position, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(start, [1, 3, 4, 2, 2, 2])


def test_bins_in_seconds_need_known_dt():
    np.testing.assert_array_equal(bin_steps_of([0.01, 0.025, 0.0005], 1.0, None), [100, 40, 2000])
    np.testing.assert_array_equal(bin_steps_of([np.nan, 0.01], 1.0, 7), [7, 7])
    with pytest.raises(ConfigError, match=r"1 of 2 have an unknown dt.*adaptive.bin_steps"):
        bin_steps_of([np.nan, 0.01], 1.0, None)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"adaptive.enabled": True, "end_policy": "clamp"}, r"needs bounded episodes on a kept"),
        ({"motion_weights": (("walk", 2.0),)}, r"needs schedule='random'"),
        (
            {"schedule": "random", "adaptive.enabled": True, "adaptive.lag": 3},
            r"adaptive.lag=3 is below the prefetch depth host_prefetch \+ device_prefetch = 4",
        ),
        ({"schedule": "random", "motion_weights": (("walk", -1.0),)}, r"motion_weights="),
        ({"schedule": "random", "adaptive.uniform_mix": 1.5}, r"adaptive.uniform_mix=1.5"),
        ({"schedule": "random", "adaptive.ema_rate": 0.0}, r"adaptive.ema_rate=0.0"),
    ],
)
def test_config_refuses_bad_sampling_fields(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config("default", overrides)


def test_motion_weights_accept_a_dict():
    config = load_config("default", {"schedule": "random", "motion_weights": {"walk": 2.0}})
    assert config.motion_weights == (("walk", 2.0),)


def test_stream_fields_record_the_adaptive_settings():
    from trajopt_loader.pipeline.fingerprint import stream_fields
    from trajopt_loader.pipeline.state_check import config_differences

    plain = stream_fields(load_config("default"))
    assert plain["adaptive"] is False and plain["motion_weights"] == [] and plain["seed"] is None
    seq = stream_fields(
        load_config(
            "default", {"adaptive.enabled": True, "seed": 4, "adaptive.report_timeout_s": 5.0}
        )
    )
    assert seq["seed"] == 4  # adaptive sequential episodes draw with the seed
    assert seq["adaptive"] == {
        "lag": 8,
        "bin_s": 1.0,
        "bin_steps": None,
        "ema_rate": 0.03,
        "kernel_size": 1,
        "kernel_decay": 0.8,
        "uniform_mix": 0.1,
    }
    steps = stream_fields(
        load_config("default", {"adaptive.enabled": True, "adaptive.bin_steps": 5})
    )
    assert steps["adaptive"]["bin_s"] is None and steps["adaptive"]["bin_steps"] == 5
    weighted = stream_fields(
        load_config(
            "default",
            {"schedule": "random", "motion_weights": (("walk", 2), ("run", 0.5), ("walk", 3.0))},
        )
    )
    assert weighted["motion_weights"] == [["run", 0.5], ["walk", 3.0]]  # a later pair wins
    assert [d[:40] for d in config_differences(plain, seq)] == [
        "adaptive: saved False, config {'lag': 8,"
    ]  # on vs. off is compared
