"""ExportSummary text (trajopt_loader.store.summary)."""

from __future__ import annotations

from trajopt_loader.store.summary import ExportSummary


def test_summary_str():
    s = ExportSummary(
        out="/tmp/x.zarr",
        source="cassie",
        convention="mujoco",
        motions={"walk": 2, "run": 1},
        trajectories=3,
        frames=90,
        bytes=2**20,
        stored_bytes=2**19,
        padded={"walk/traj_0.npz": {"action": 1}},
        skipped=[f"walk/traj_{i}.npz: x (2,) skipped" for i in range(22)],
        warnings=[],
        replaced=["run"],
    )
    assert str(s).splitlines() == [
        "exported 3 trajectories, 90 frames (1.00 MiB raw, 0.50 MiB stored) to /tmp/x.zarr",
        "  source 'cassie' (convention mujoco)",
        "  cassie/walk: 2 trajectories",
        "  cassie/run: 1 trajectories (replaced)",
        "  padded (last row repeated): 1",
        "    walk/traj_0.npz: {'action': 1}",
        "  skipped arrays: 22",
        *[f"    walk/traj_{i}.npz: x (2,) skipped" for i in range(20)],
        "    ... 2 more",
    ]
