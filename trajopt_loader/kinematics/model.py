"""MuJoCo models: loading an MJCF file, the kinematics-only copy, and the floating base.

Every MJCF file the project opens is loaded here, with one error type: :class:`ModelNotFoundError`
when the file does not exist, :class:`ModelError` when MuJoCo cannot parse or compile it. A model
has a *floating base* when ``qpos[0:7]`` / ``qvel[0:6]`` hold it in MuJoCo's free-joint layout
(:func:`floating_base`, one rule for forward kinematics, conventions and robot specs).
Converting ``qpos`` / ``qvel`` between a data :class:`~trajopt_loader.conventions.Convention` and
MuJoCo's checks the model here; the arithmetic is in :mod:`trajopt_loader.conventions`.
"""

from __future__ import annotations

import copy
import os

import mujoco
import numpy as np

from trajopt_loader.conventions import (
    MUJOCO,
    Convention,
    as_convention,
    qpos_base_from_mujoco,
    qpos_base_to_mujoco,
    qvel_base_from_mujoco,
    qvel_base_to_mujoco,
)
from trajopt_loader.errors import ConventionError, ModelError, ModelNotFoundError

__all__ = [
    "check_qpos",
    "floating_base",
    "quaternion_qpos_addresses",
    "has_floating_base",
    "kinematics_copy",
    "load_model",
    "load_kinematics_model",
    "model_name",
    "needs_base_conversion",
    "qpos_from_mujoco",
    "qpos_to_mujoco",
    "qvel_from_mujoco",
    "qvel_to_mujoco",
    "simulation_copy",
]

_DISABLE = int(mujoco.mjtDisableBit.mjDSBL_CONTACT) | int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)


def _existing(model_path) -> str:
    """``model_path`` as a str; ModelNotFoundError when no file is there."""
    path = os.fspath(model_path)
    if not os.path.isfile(path):
        raise ModelNotFoundError(
            f"no MuJoCo model at {path!r}; pass --model PATH/TO/robot.xml "
            "(the MJCF the data was made for)."
        )
    return path


def load_model(model_path) -> mujoco.MjModel:
    """The full ``mujoco.MjModel`` of an MJCF file (meshes, contacts and options as written).

    Args: ``model_path``: MJCF ``.xml`` file (str or PathLike; meshes resolved relative to it).
    Raises:
      ModelNotFoundError: the file does not exist.
      ModelError: MuJoCo cannot parse or compile it (MuJoCo's message is included).
    """
    path = _existing(model_path)
    try:
        return mujoco.MjModel.from_xml_path(path)
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"MuJoCo cannot load {path!r}: {e}") from e


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
    path = _existing(model_path)
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
        raise ModelError(f"MuJoCo cannot load {path!r}: {e}") from e


def simulation_copy(model: mujoco.MjModel, timestep: float | None = None) -> mujoco.MjModel:
    """Deep copy of ``model`` that ``mjx.put_model`` accepts for full physics: solver Newton
    (MJX refuses PGS, e.g. Cassie's), contacts kept; ``timestep`` (s) replaces the model's when
    given (Cassie at 5 ms gives MuJoCo's QACC instability warnings; 2.5 ms substeps do not)."""
    out = copy.deepcopy(model)
    out.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    if timestep is not None:
        out.opt.timestep = float(timestep)
    return out


def kinematics_copy(model: mujoco.MjModel) -> mujoco.MjModel:
    """Deep copy of ``model`` that MJX accepts for kinematics: collisions off, contact and
    constraint solving disabled, solver Newton. Bodies, joints and sites are unchanged."""
    out = simulation_copy(model)
    out.geom_contype[:] = 0
    out.geom_conaffinity[:] = 0
    out.opt.disableflags |= _DISABLE
    return out


def model_name(model: mujoco.MjModel) -> str:
    """The ``<mujoco model="...">`` name of ``model`` (for messages)."""
    return bytes(model.names).split(b"\0", 1)[0].decode() or "(unnamed)"


def floating_base(model: mujoco.MjModel) -> tuple[int, int, int] | None:
    """``(body id, qpos address, dof address)`` of the floating base, or None when the model has
    none: ``qpos[0:7]`` / ``qvel[0:6]`` hold a base in MuJoCo's free-joint layout when a free joint
    comes first, or 3 slides along world x, y, z then a ball, all in one world-aligned body whose
    parent is the world (Cassie, Digit)."""
    if model.njnt >= 1 and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE:
        return int(model.jnt_bodyid[0]), int(model.jnt_qposadr[0]), int(model.jnt_dofadr[0])
    if model.njnt < 4:
        return None
    slide, ball, body = mujoco.mjtJoint.mjJNT_SLIDE, mujoco.mjtJoint.mjJNT_BALL, model.jnt_bodyid[0]
    if (
        list(model.jnt_type[:4]) == [slide, slide, slide, ball]
        and np.all(model.jnt_bodyid[:4] == body)
        and model.body_parentid[body] == 0
        and np.allclose(model.body_quat[body], [1, 0, 0, 0], atol=1e-9)
        and np.allclose(model.jnt_axis[:3], np.eye(3), atol=1e-9)
        and list(model.jnt_qposadr[:4]) == [0, 1, 2, 3]
    ):
        return int(body), int(model.jnt_qposadr[0]), int(model.jnt_dofadr[0])
    return None


def quaternion_qpos_addresses(model: mujoco.MjModel) -> tuple[int, ...]:
    """qpos address of the 4 quaternion entries ``qpos[a:a+4]`` of every free and ball joint of
    ``model``, in joint order (a free joint's quaternion follows its 3 position entries)."""
    free, ball = int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL)
    return tuple(
        int(a) + (3 if int(t) == free else 0)
        for t, a in zip(model.jnt_type, model.jnt_qposadr, strict=True)
        if int(t) in (free, ball)
    )


def has_floating_base(model: mujoco.MjModel) -> bool:
    """True if the model has a floating base at ``qpos[0:7]`` (:func:`floating_base`)."""
    return floating_base(model) is not None


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
            "'mujoco' convention for data of this model."
        )
    return True


def check_qpos(model: mujoco.MjModel, qpos: np.ndarray, what: str = "qpos") -> np.ndarray:
    """``np.asarray(qpos)`` after checking its last axis is ``model.nq``; raises ModelError."""
    qpos = np.asarray(qpos)
    if qpos.ndim < 1 or qpos.shape[-1] != model.nq:
        raise ModelError(
            f"{what} has shape {qpos.shape} but model {model_name(model)!r} has nq={model.nq}; "
            "pass the model the data was made for."
        )
    return qpos


def qpos_to_mujoco(
    model: mujoco.MjModel, qpos: np.ndarray, convention: Convention | str
) -> np.ndarray:
    """``qpos [..., nq]`` in ``convention`` (a Convention or its name) -> float64 copy with the
    base quaternion ``wxyz`` (MuJoCo). Only ``qpos[3:7]`` is reordered; other ball joints are
    already in MuJoCo's layout.

    Raises:
      ModelError: last axis is not ``nq``.  ConventionError: see :func:`needs_base_conversion`.
    """
    convention = as_convention(convention)
    q = check_qpos(model, qpos)
    if needs_base_conversion(model, convention):
        return qpos_base_to_mujoco(q, convention)
    return np.array(q, dtype=np.float64)


def qpos_from_mujoco(
    model: mujoco.MjModel, qpos: np.ndarray, convention: Convention | str
) -> np.ndarray:
    """Inverse of :func:`qpos_to_mujoco`: base quaternion ``wxyz`` -> ``convention.quat_order``
    (``convention``: a Convention or its name)."""
    convention = as_convention(convention)
    q = check_qpos(model, qpos)
    if needs_base_conversion(model, convention):
        return qpos_base_from_mujoco(q, convention)
    return np.array(q, dtype=np.float64)


def qvel_from_mujoco(
    model: mujoco.MjModel, qvel: np.ndarray, qpos_mj: np.ndarray, convention: Convention | str
) -> np.ndarray:
    """MuJoCo-convention ``qvel [..., nv]`` (base ``[v_world, omega_body]``) -> ``convention``.

    ``qpos_mj [..., nq]`` (quaternion ``wxyz``) gives the base rotation ``R`` (body -> world) at the
    same frames: ``v_body = R^T v_world``, ``omega_world = R omega_body``. Returns float64.
    Raises ConventionError when a conversion is needed but the model has no floating base.
    """
    convention = as_convention(convention)
    if not needs_base_conversion(model, convention):
        return np.array(qvel, dtype=np.float64)
    return qvel_base_from_mujoco(qvel, np.asarray(qpos_mj)[..., 3:7], convention)


def qvel_to_mujoco(
    model: mujoco.MjModel, qvel: np.ndarray, qpos_mj: np.ndarray, convention: Convention | str
) -> np.ndarray:
    """Inverse of :func:`qvel_from_mujoco`: ``convention`` -> MuJoCo ``[v_world, omega_body]``."""
    convention = as_convention(convention)
    if not needs_base_conversion(model, convention):
        return np.array(qvel, dtype=np.float64)
    return qvel_base_to_mujoco(qvel, np.asarray(qpos_mj)[..., 3:7], convention)
