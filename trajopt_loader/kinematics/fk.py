"""Forward kinematics of sites: world positions of MuJoCo sites from ``qpos``.

``site_positions`` runs MJX (``mujoco.mjx.kinematics``) jitted and vmapped over frames in fixed
size chunks; ``site_positions_mujoco`` is the float64 ``mj_kinematics`` loop (test oracle, exports).
The grain ``Map`` adding ``ee_pos`` to batches is
:class:`~trajopt_loader.transforms.end_effectors.EndEffectorPositions`.

MJX rejects models it cannot simulate (e.g. solver PGS: ``NotImplementedError mjSOL_PGS``); site
positions need no contacts or solver, so MJX gets a kinematics-only copy
(:func:`~trajopt_loader.kinematics.model.kinematics_copy`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import mujoco
import numpy as np

from trajopt_loader.conventions import Convention
from trajopt_loader.errors import MissingKeyError
from trajopt_loader.kinematics.model import kinematics_copy, model_name, qpos_to_mujoco

__all__ = ["site_ids", "site_positions", "site_positions_mujoco"]


def site_ids(model: mujoco.MjModel, site_names: Sequence[str]) -> np.ndarray:
    """Site ids ``[n_sites]`` int32 of ``site_names`` (order kept). Raises MissingKeyError for a
    name that is not a site of the model (the message lists the available sites) or no name."""
    if isinstance(site_names, str):
        site_names = (site_names,)
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, name) for name in site_names]
    bad = [name for name, i in zip(site_names, ids, strict=True) if i < 0]
    if bad or not ids:
        available = [model.site(i).name for i in range(model.nsite)]
        raise MissingKeyError(
            f"site(s) {bad or list(site_names)} not in model {model_name(model)!r}; available "
            f"sites: {available}. Pass at least one of these names."
        )
    return np.asarray(ids, dtype=np.int32)


def site_positions_mujoco(
    model: mujoco.MjModel, qpos: np.ndarray, site_names: Sequence[str], convention: Convention
) -> np.ndarray:
    """World positions of sites by ``mj_kinematics`` frame by frame (float64 oracle): ``qpos
    [..., nq]`` (m, rad; base quaternion in ``convention.quat_order``) -> ``[..., n_sites, 3]``
    float64, world frame, m. Raises as :func:`site_positions`."""
    ids = site_ids(model, site_names)
    q = qpos_to_mujoco(model, qpos, convention)
    flat = q.reshape(-1, model.nq)
    out = np.empty((flat.shape[0], ids.size, 3))
    data = mujoco.MjData(model)
    for k, row in enumerate(flat):
        data.qpos[:] = row
        mujoco.mj_kinematics(model, data)
        out[k] = data.site_xpos[ids]
    return out.reshape(q.shape[:-1] + (ids.size, 3))


_MJX_CACHE: dict = {}  # id(model) -> (model, mjx Model, mjx Data); the 8 most recent
_MJX_LOCK = threading.Lock()
_JIT: list = []  # [jitted fk(mjx_model, mjx_data, site_ids, qpos [n, nq]) -> [n, n_sites, 3]]


def _mjx_sites(model: mujoco.MjModel, ids: np.ndarray) -> Callable:
    """``qpos [n, nq] float32 -> site_xpos [n, n_sites, 3]`` by one jitted, vmapped MJX function
    taking the MJX model as an argument (half the compile time of a constant; shared by models
    of equal structure)."""
    import jax  # deferred: importing MJX is slow and warns about optional backends
    from mujoco import mjx

    def one(mx, d0, sel, q):
        return mjx.kinematics(mx, d0.replace(qpos=q)).site_xpos[sel]

    with _MJX_LOCK:
        if not _JIT:
            _JIT.append(jax.jit(jax.vmap(one, in_axes=(None, None, None, 0))))
        hit = _MJX_CACHE.get(id(model))
        if hit is None or hit[0] is not model:
            mx = mjx.put_model(kinematics_copy(model))
            while len(_MJX_CACHE) >= 8:
                _MJX_CACHE.pop(next(iter(_MJX_CACHE)))
            hit = _MJX_CACHE[id(model)] = (model, mx, mjx.make_data(mx))
    fn, (_, mx, d0), sel = _JIT[0], hit, np.asarray(ids, dtype=np.int32)
    return lambda q: fn(mx, d0, sel, q)


def site_positions(
    model: mujoco.MjModel,
    qpos: np.ndarray,
    site_names: Sequence[str],
    convention: Convention,
    *,
    chunk_size: int = 8192,
) -> np.ndarray:
    """World positions of sites with MJX, jitted and vmapped over frames.

    Frames are processed ``chunk_size`` at a time (the last chunk padded with ``qpos0``), which
    bounds memory and compiles once per (model structure, number of sites, chunk shape); the MJX
    model of the 8 most recent model objects is kept. Computed in float32 (x64 off).

    Args: ``model`` (any; MJX gets a :func:`kinematics_copy`), ``qpos [..., nq]`` (m, rad; base
    quaternion in ``convention.quat_order``), ``site_names`` (e.g. ``("left-hand",)``).
    Returns: ``[..., n_sites, 3]`` float32, world frame, m.
    Raises:
      ModelError, ConventionError, MissingKeyError: see :func:`qpos_to_mujoco`, :func:`site_ids`.
    """
    ids = site_ids(model, site_names)
    q = qpos_to_mujoco(model, qpos, convention).astype(np.float32)
    flat = q.reshape(-1, model.nq)
    n = flat.shape[0]
    out = np.empty((n, ids.size, 3), dtype=np.float32)
    if n:
        fn, size = _mjx_sites(model, ids), min(int(chunk_size), n)
        for start in range(0, n, size):
            chunk = flat[start : start + size]
            if chunk.shape[0] < size:
                pad = np.broadcast_to(model.qpos0, (size - chunk.shape[0], model.nq))
                chunk = np.concatenate([chunk, pad.astype(np.float32)])
            out[start : start + size] = np.asarray(fn(chunk))[: n - start]
    return out.reshape(q.shape[:-1] + (ids.size, 3))
