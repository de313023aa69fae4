"""MuJoCo models for kinematics, base-quaternion order, and forward kinematics of sites.

``site_positions`` runs MJX (``mujoco.mjx.kinematics``) jitted and vmapped over frames in fixed
size chunks; ``site_positions_mujoco`` is the float64 ``mj_kinematics`` loop (test oracle, exports).
``EndEffectorPositions`` is a grain ``Map`` adding ``ee_pos`` to batches whose data has none.

MJX rejects models it cannot simulate (e.g. solver PGS: ``NotImplementedError mjSOL_PGS``); site
positions need no contacts or solver, so MJX gets a kinematics-only copy (:func:`kinematics_copy`).
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Callable, Sequence

import grain
import mujoco
import numpy as np

from trajopt_loader.conventions import MUJOCO, Convention, as_convention
from trajopt_loader.errors import (ConfigError, ConventionError, MissingKeyError, ModelError,
                                   ModelNotFoundError)

_DISABLE = int(mujoco.mjtDisableBit.mjDSBL_CONTACT) | int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)


def load_kinematics_model(model_path: str) -> mujoco.MjModel:
    """Load an MJCF file as a kinematics-only MuJoCo model.

    The result keeps every body, joint and site (``nq``, ``nv``, ``jnt_qposadr``, ``jnt_dofadr`` and
    site poses equal the original's) but has no collisions (``contype = conaffinity = 0``), no
    contact pairs or excludes, contact and constraint solving disabled, solver Newton (MJX rejects
    PGS) and, where a body's inertia is explicit, no mesh geoms (so meshes are not even loaded).

    Args: ``model_path``: MJCF ``.xml`` file (meshes resolved relative to it).
    Raises:
      ModelNotFoundError: the file does not exist.
      ModelError: MuJoCo cannot parse or compile it (MuJoCo's message is included).
    """
    path = os.fspath(model_path)
    if not os.path.isfile(path):
        raise ModelNotFoundError(
            f"MuJoCo model {path!r} does not exist; pass the path of an MJCF .xml file, "
            "e.g. /work/shared/data/digit_v3/digit-v3.xml.")
    try:
        spec = mujoco.MjSpec.from_file(path)
        for item in list(spec.pairs) + list(spec.excludes):
            spec.delete(item)
        # mesh geoms may go where the inertia is explicit (and not forced from geoms)
        explicit = spec.compiler.inertiafromgeom != mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_TRUE
        for geom in list(spec.geoms):
            geom.contype, geom.conaffinity, mesh = 0, 0, geom.type == mujoco.mjtGeom.mjGEOM_MESH
            if mesh and explicit and geom.parent.explicitinertial:
                spec.delete(geom)
        used = {g.meshname for g in spec.geoms if g.type == mujoco.mjtGeom.mjGEOM_MESH}
        for item in list(spec.meshes):
            if item.name not in used:
                spec.delete(item)
        spec.option.solver = mujoco.mjtSolver.mjSOL_NEWTON
        spec.option.disableflags |= _DISABLE
        return spec.compile()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"MuJoCo cannot load model {path!r}: {e}") from e


def kinematics_copy(model: mujoco.MjModel) -> mujoco.MjModel:
    """Deep copy of ``model`` that MJX accepts for kinematics: collisions off, contact and
    constraint solving disabled, solver Newton. Bodies, joints and sites are unchanged."""
    out = copy.deepcopy(model)
    out.geom_contype[:] = 0
    out.geom_conaffinity[:] = 0
    out.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    out.opt.disableflags |= _DISABLE
    return out


def model_name(model: mujoco.MjModel) -> str:
    """The ``<mujoco model="...">`` name of ``model`` (for messages)."""
    return bytes(model.names).split(b"\0", 1)[0].decode() or "(unnamed)"


def has_floating_base(model: mujoco.MjModel) -> bool:
    """True if ``qpos[0:7]`` / ``qvel[0:6]`` hold a floating base in MuJoCo's free-joint layout:
    a free joint first, or 3 slides along world x, y, z then a ball, all in one world-aligned body
    whose parent is the world (Cassie, Digit)."""
    if model.njnt >= 1 and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE:
        return True
    if model.njnt < 4:
        return False
    slide, ball, body = mujoco.mjtJoint.mjJNT_SLIDE, mujoco.mjtJoint.mjJNT_BALL, model.jnt_bodyid[0]
    return bool(list(model.jnt_type[:4]) == [slide, slide, slide, ball]
                and np.all(model.jnt_bodyid[:4] == body) and model.body_parentid[body] == 0
                and np.allclose(model.body_quat[body], [1, 0, 0, 0], atol=1e-9)
                and np.allclose(model.jnt_axis[:3], np.eye(3), atol=1e-9)
                and list(model.jnt_qposadr[:4]) == [0, 1, 2, 3])


def needs_base_conversion(model: mujoco.MjModel, convention: Convention | str) -> bool:
    """False for MuJoCo's convention, else True. Raises ConventionError when ``convention`` is
    neither a Convention nor a name of one (:func:`~trajopt_loader.conventions.as_convention`), or
    needs a floating base (:func:`has_floating_base`) the model lacks."""
    convention = as_convention(convention)
    if convention == MUJOCO:
        return False
    if not has_floating_base(model):
        raise ConventionError(
            f"convention {convention} converts a floating base, but model {model_name(model)!r} "
            "has none at qpos[0:7] (a free joint, or 3 world-aligned slides + a ball); use the "
            "'mujoco' convention for data of this model.")
    return True


def check_qpos(model: mujoco.MjModel, qpos: np.ndarray, what: str = "qpos") -> np.ndarray:
    """``np.asarray(qpos)`` after checking its last axis is ``model.nq``; raises ModelError."""
    qpos = np.asarray(qpos)
    if qpos.ndim < 1 or qpos.shape[-1] != model.nq:
        raise ModelError(
            f"{what} has shape {qpos.shape} but model {model_name(model)!r} has nq={model.nq}; "
            "pass the model the data was made for.")
    return qpos


def qpos_to_mujoco(model: mujoco.MjModel, qpos: np.ndarray, convention: Convention | str) -> np.ndarray:
    """``qpos [..., nq]`` in ``convention`` (a Convention or its name) -> float64 copy with the
    base quaternion ``wxyz`` (MuJoCo). Only ``qpos[3:7]`` is reordered; other ball joints are
    already in MuJoCo's layout.

    Raises:
      ModelError: last axis is not ``nq``.  ConventionError: see :func:`needs_base_conversion`.
    """
    convention = as_convention(convention)
    q = np.array(check_qpos(model, qpos), dtype=np.float64)
    if needs_base_conversion(model, convention) and convention.quat_order == "xyzw":
        q[..., 3:7] = q[..., [6, 3, 4, 5]]
    return q


def site_ids(model: mujoco.MjModel, site_names: Sequence[str]) -> np.ndarray:
    """Site ids ``[n_sites]`` int32 of ``site_names`` (order kept). Raises MissingKeyError for a
    name that is not a site of the model (the message lists the available sites) or no name."""
    if isinstance(site_names, str):
        site_names = (site_names,)
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, name) for name in site_names]
    bad = [name for name, i in zip(site_names, ids) if i < 0]
    if bad or not ids:
        available = [model.site(i).name for i in range(model.nsite)]
        raise MissingKeyError(
            f"site(s) {bad or list(site_names)} not in model {model_name(model)!r}; available "
            f"sites: {available}. Pass at least one of these names.")
    return np.asarray(ids, dtype=np.int32)


def site_positions_mujoco(model: mujoco.MjModel, qpos: np.ndarray, site_names: Sequence[str],
                          convention: Convention) -> np.ndarray:
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
_MJX_LOCK, _LOAD_LOCK = threading.Lock(), threading.Lock()
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


def site_positions(model: mujoco.MjModel, qpos: np.ndarray, site_names: Sequence[str],
                   convention: Convention, *, chunk_size: int = 8192) -> np.ndarray:
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
            chunk = flat[start:start + size]
            if chunk.shape[0] < size:
                pad = np.broadcast_to(model.qpos0, (size - chunk.shape[0], model.nq))
                chunk = np.concatenate([chunk, pad.astype(np.float32)])
            out[start:start + size] = np.asarray(fn(chunk))[: n - start]
    return out.reshape(q.shape[:-1] + (ids.size, 3))


class EndEffectorPositions(grain.transforms.Map):
    """Grain ``Map``: add ``ee_pos [E, W, n_sites, 3]`` (world, m; forward kinematics of ``qpos
    [E, W, nq]``) to batches without ``ee_pos``; batches with data ``ee_pos`` pass unchanged.
    Never fills zeros: with neither data nor model it raises.

    Args:
      model: MJCF path (loaded lazily per process by :func:`load_kinematics_model`), an
        ``MjModel``, or None when the data is expected to carry ``ee_pos``.
      site_names: sites to compute, in output order.
      convention: the data's Convention, or a callable ``traj_id -> Convention`` (e.g.
        ``lambda i: store.convention(store.trajectories[i].source)``) applied per env through
        ``batch["traj_id"] [E]``.
      chunk_size: frames per MJX call (see :func:`site_positions`).
      backend: ``"mjx"`` (:func:`site_positions`) or ``"mujoco"`` (:func:`site_positions_mujoco`:
        no compile, float64; on CPU about as fast, see ``benchmarks/bench_fk.py``).
    Raises (from ``map``):
      MissingKeyError: no ``ee_pos`` and no model; no ``qpos``; a callable convention without
        ``traj_id``; unknown site.  ModelError, ConventionError: see :func:`site_positions`.
    Output dtype: that of ``qpos`` when floating, else float32.
    """

    def __init__(self, model: str | os.PathLike | mujoco.MjModel | None, site_names: Sequence[str],
                 convention: Convention | Callable[[int], Convention], *, chunk_size: int = 8192,
                 backend: str = "mjx"):
        if backend not in ("mjx", "mujoco"):
            raise ConfigError(f"backend={backend!r}; expected 'mjx' or 'mujoco'.")
        self._model = model if isinstance(model, mujoco.MjModel) else None
        self.model_path = None if model is None or self._model is not None else os.fspath(model)
        self.site_names = tuple((site_names,) if isinstance(site_names, str) else site_names)
        self.convention = convention if callable(convention) else as_convention(convention)
        self.chunk_size, self.backend = int(chunk_size), backend

    def __getstate__(self) -> dict:  # pickled into grain workers: reload from the path there
        return {**self.__dict__, "_model": None} if self.model_path else dict(self.__dict__)

    def _get_model(self) -> mujoco.MjModel:
        with _LOAD_LOCK:
            if self._model is None:
                model = load_kinematics_model(self.model_path)
                site_ids(model, self.site_names)
                self._model = model
            return self._model

    def map(self, batch: dict) -> dict:
        if "ee_pos" in batch:
            return batch
        if self.model_path is None and self._model is None:
            raise MissingKeyError(
                "the batch has no 'ee_pos' and EndEffectorPositions has no model to compute it; "
                "export the data with ee_pos (--model ... --ee-sites ...) or give a MuJoCo model.")
        if "qpos" not in batch:
            raise MissingKeyError("computing 'ee_pos' needs 'qpos' in the batch; add 'qpos' to "
                                  f"config.keys (batch keys: {sorted(batch)}).")
        model, qpos = self._get_model(), np.asarray(batch["qpos"])
        if isinstance(self.convention, Convention):
            q = qpos_to_mujoco(model, qpos, self.convention)
        else:
            if "traj_id" not in batch:
                raise MissingKeyError("a per-trajectory convention needs 'traj_id' [E] in batches.")
            q = np.empty(qpos.shape, dtype=np.float64)
            traj = np.asarray(batch["traj_id"])
            for tid in np.unique(traj):
                rows = traj == tid
                q[rows] = qpos_to_mujoco(model, qpos[rows], self.convention(int(tid)))
        if self.backend == "mjx":
            pos = site_positions(model, q, self.site_names, MUJOCO, chunk_size=self.chunk_size)
        else:
            pos = site_positions_mujoco(model, q, self.site_names, MUJOCO)
        dtype = qpos.dtype if np.issubdtype(qpos.dtype, np.floating) else np.float32
        return {**batch, "ee_pos": pos.astype(dtype, copy=False)}
