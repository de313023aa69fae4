"""Shared pytest fixtures: real data paths, a session-wide Cassie store, synthetic npz trees."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# MuJoCo picks its OpenGL backend when first imported: headless EGL for the render tests
os.environ.setdefault("MUJOCO_GL", "egl")

#: The checkout's root, and the real data beside it (test modules import both from here).
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CASSIE_TRAJOPT = SHARED_DATA / "cassie" / "trajopt"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``<clone>/../shared/data`` (real Cassie / Digit data and models; see its README.md)."""
    assert SHARED_DATA.is_dir(), f"real test data missing: expected {SHARED_DATA} beside the clone"
    return SHARED_DATA


@pytest.fixture(scope="session")
def cassie_store(tmp_path_factory, shared_data) -> Path:
    """Path of a store with source ``cassie`` (MuJoCo convention): motions ``agility_reference``
    (3 trajectories, qpos/qvel/action/...) and ``aslip_walk`` (21, no qvel: exported with
    ``allow_missing=("qvel",)``). Read-only: tests must not write into it."""
    from trajopt_loader.store import export_npz

    out = tmp_path_factory.mktemp("cassie") / "cassie.zarr"
    export_npz(
        shared_data / "cassie" / "trajopt",
        out,
        source="cassie",
        convention="mujoco",
        allow_missing=("qvel",),
        progress=False,
    )
    return out


def revealing(i: int, length: int, cols: int, base: float = 0.0) -> np.ndarray:
    """float64 ``[length, cols]`` with ``x[t, j] = base + 100 * i + t + j / 100``: every value
    tells its file index ``i``, row ``t`` and column ``j``."""
    t = np.arange(length, dtype=np.float64)[:, None]
    j = np.arange(cols, dtype=np.float64)[None, :]
    return base + 100.0 * i + t + j / 100.0


def _make_npz_tree(
    root: Path,
    spec: dict,
    *,
    nq: int = 9,
    nv: int = 8,
    nu: int = 2,
    dt: float | None = 0.01,
    name: str = "traj_{i}.npz",
) -> Path:
    """Write ``root/<motion>/traj_{i}.npz`` for ``spec = {motion: [item, ...]}``.

    An item is a length ``T`` or a dict ``{"length": T, key: array | None, ...}`` (``None`` drops a
    default key, an array replaces or adds one). Defaults per file ``i``: ``qpos = revealing(i, T,
    nq)``, ``qvel = revealing(i, T, nv, base=-1e4)``, ``action = revealing(i, T, nu, base=1e4)``,
    ``dt`` scalar (omitted when ``dt`` is None). Returns ``root``.
    """
    root = Path(root)
    for motion, items in spec.items():
        d = root / motion if motion else root
        d.mkdir(parents=True, exist_ok=True)
        for i, item in enumerate(items):
            item = {"length": item} if isinstance(item, (int, np.integer)) else dict(item)
            n = int(item.pop("length", 10))
            arrays = {
                "qpos": revealing(i, n, nq),
                "qvel": revealing(i, n, nv, base=-1e4),
                "action": revealing(i, n, nu, base=1e4),
            }
            if dt is not None:
                arrays["dt"] = np.float64(dt)
            for k, v in item.items():
                if v is None:
                    arrays.pop(k, None)
                else:
                    arrays[k] = v
            np.savez(d / name.format(i=i), **arrays)
    return root


@pytest.fixture
def make_npz_tree():
    """The function ``make_npz_tree(root, spec, **kw)`` (see ``_make_npz_tree``) for synthetic trees
    with revealing values (``qpos[t, j] = 100 * i + t + j / 100`` for file ``i``)."""
    return _make_npz_tree
