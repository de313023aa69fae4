"""Validation of the closed-loop sampling fields of a config: ``motion_weights``, ``adaptive.*``.

Called by :func:`trajopt_loader.configs.validate.validate_config`.
"""

from __future__ import annotations

from trajopt_loader.choices import INT32_MAX
from trajopt_loader.configs.validate import check_field, is_int, is_number
from trajopt_loader.errors import ConfigError

__all__ = ["validate_sampling"]


def validate_sampling(c) -> None:
    """Check ``motion_weights`` and ``adaptive.*`` of config ``c`` (meanings: pipeline/adaptive.py).

    Raises:
      ConfigError: naming the field, the value and what is expected.
    """
    check_field(
        isinstance(c.motion_weights, tuple)
        and all(
            isinstance(p, tuple)
            and len(p) == 2
            and isinstance(p[0], str)
            and p[0]
            and is_number(p[1], 0, float("inf"))
            and p[1] < float("inf")
            for p in c.motion_weights
        ),
        "motion_weights",
        c.motion_weights,
        "pairs ('motion' or 'source/motion', finite weight >= 0), e.g. (('aslip_walk', 2.0),)",
    )
    a = c.adaptive
    check_field(isinstance(a.enabled, bool), "adaptive.enabled", a.enabled, "True or False")
    if c.motion_weights and c.schedule != "random":
        raise ConfigError(
            f"config field motion_weights={c.motion_weights!r} needs "
            "schedule='random' (sequential assignment is closed-form round robin "
            "or permutation). Fix: --config.schedule=random, or drop the weights."
        )
    if (
        a.enabled
        and c.schedule == "sequential"
        and not (c.allow_wrap and c.end_policy == "wrap" and c.episode_length)
    ):
        raise ConfigError(
            f"config field adaptive.enabled=True with schedule='sequential' draws the first step "
            f"of every episode, which needs bounded episodes on a kept trajectory: allow_wrap="
            f"True, end_policy='wrap' and episode_length > 0 (got allow_wrap={c.allow_wrap}, "
            f"end_policy={c.end_policy!r}, episode_length={c.episode_length}). Fix: set them, "
            "or use schedule='random'."
        )
    check_field(is_int(a.lag, 1, INT32_MAX), "adaptive.lag", a.lag, "an int >= 1 (batches)")
    if a.enabled and a.lag < c.host_prefetch + c.device_prefetch:
        raise ConfigError(
            f"config field adaptive.lag={a.lag} is below the prefetch depth "
            f"host_prefetch + device_prefetch = {c.host_prefetch + c.device_prefetch}"
            ": batches read ahead would wait for reports of batches the consumer "
            "has not been given. Fix: --config.adaptive.lag="
            f"{c.host_prefetch + c.device_prefetch} or more."
        )
    check_field(
        is_number(a.bin_s, 1e-12, float("inf")) and a.bin_s < float("inf"),
        "adaptive.bin_s",
        a.bin_s,
        "a bin length in seconds > 0",
    )
    check_field(
        a.bin_steps is None or is_int(a.bin_steps, 1, INT32_MAX),
        "adaptive.bin_steps",
        a.bin_steps,
        "an int >= 1 (steps), or None to use bin_s",
    )
    check_field(
        is_number(a.ema_rate, 1e-300, 1.0), "adaptive.ema_rate", a.ema_rate, "a number in (0, 1]"
    )
    check_field(
        is_int(a.kernel_size, 1, 2**20), "adaptive.kernel_size", a.kernel_size, "an int >= 1"
    )
    check_field(
        is_number(a.kernel_decay, 0.0, 1.0),
        "adaptive.kernel_decay",
        a.kernel_decay,
        "a number in [0, 1]",
    )
    check_field(
        is_number(a.uniform_mix, 0.0, 1.0),
        "adaptive.uniform_mix",
        a.uniform_mix,
        "a number in [0, 1]",
    )
    check_field(
        is_number(a.report_timeout_s, 1e-3, float("inf")) and a.report_timeout_s < float("inf"),
        "adaptive.report_timeout_s",
        a.report_timeout_s,
        "a number of seconds > 0",
    )
