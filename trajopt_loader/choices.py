"""The choice lists and the int32 index bound a stream is checked against, defined once for
configs (:mod:`trajopt_loader.configs`), schedules, windows and the device stage.

* :data:`SCHEDULES` -- ``config.schedule``: ``"sequential"`` windows march through trajectories,
  ``"random"`` windows start anywhere.
* :data:`ASSIGNMENTS` -- ``config.assignment``: how envs get trajectories in a sequential schedule.
* :data:`END_POLICIES` -- ``config.end_policy``: a window running past a trajectory's last step
  ``"wrap"`` s to step 0 or ``"clamp"`` s (repeats the last step).
* :data:`INT32_MIN` / :data:`INT32_MAX` -- bounds of the int32 indices batches carry (steps,
  loop counts, lengths, env counts).
"""

SCHEDULES = ("sequential", "random")
ASSIGNMENTS = ("round_robin", "random", "explicit")
END_POLICIES = ("wrap", "clamp")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
