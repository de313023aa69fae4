"""Export preprocessing with MuJoCo: resampling, derived ``qvel``, end-effector positions and
body poses / velocities.

:func:`make_export_preprocess` builds the ``preprocess`` hook of
:func:`~trajopt_loader.store.export.export_npz` (CLI ``--model``, ``--derive-qvel``,
``--resample-dt``, ``--ee-sites``, ``--bodies``) from :mod:`trajopt_loader.kinematics.derive` and
:mod:`trajopt_loader.kinematics.fk`, :mod:`trajopt_loader.kinematics.bodies`. The hook carries
the model's layout (``preprocess.model_layout``, :mod:`trajopt_loader.kinematics.model_layout`),
which ``export_npz`` records per source.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import mujoco
import numpy as np

from trajopt_loader.conventions import Convention, as_convention
from trajopt_loader.errors import ExportError
from trajopt_loader.kinematics.bodies import (
    BODY_QUAT_ORDER,
    BODY_VEL_FRAME,
    body_names_of,
    body_states,
)
from trajopt_loader.kinematics.derive import (
    QVEL_METHOD,
    check_dt,
    qvel_from_qpos,
    resample_linear,
    resample_qpos,
)
from trajopt_loader.kinematics.fk import site_ids, site_positions_mujoco
from trajopt_loader.kinematics.model import (
    load_kinematics_model,
    needs_base_conversion,
    qpos_to_mujoco,
)
from trajopt_loader.kinematics.model_layout import model_layout
from trajopt_loader.store.layout import BODY_KEYS
from trajopt_loader.store.time_step import require_dt

__all__ = ["make_export_preprocess"]


def make_export_preprocess(
    model_path: str,
    *,
    convention: Convention | str,
    derive_qvel: bool = False,
    resample_dt: float | None = None,
    ee_sites: Sequence[str] = (),
    bodies: str | Sequence[str] = (),
) -> Callable:
    """Build the ``preprocess`` hook of ``export_npz`` (CLI ``--model``, ``--derive-qvel``,
    ``--resample-dt``, ``--ee-sites``, ``--bodies``).

    ``preprocess(arrays: dict[str, np.ndarray], dt: float, source_file: str) -> (arrays, dt,
    provenance)``, applied per trajectory file, in this order:

    1. resample (``resample_dt`` s): ``qpos`` by :func:`resample_qpos`; every other array with
       ``T`` rows by :func:`resample_linear` (``qvel`` too, unless re-derived); 0-d arrays are kept
       (a 0-d ``dt`` key is set to the new step); any other shape is an error.
    2. ``derive_qvel``: ``qvel [T, nv]`` by :func:`qvel_from_qpos` in ``convention`` for a file
       that has no ``qvel``; a file that has one keeps its recorded ``qvel`` (recorded data is
       never replaced; provenance says ``"recorded"``), so one export can mix both.
    3. ``ee_sites``: ``ee_pos [T, n_sites, 3]`` float64 (world, m) by ``mj_kinematics``, likewise
       only where the file has no ``ee_pos``.
    4. ``bodies`` (``"all"``, ``"name,name"`` or a sequence of names; ``()`` = none): the keys
       ``body_pos``, ``body_quat`` (wxyz), ``body_lin_vel``, ``body_ang_vel`` ``[T, nb, ...]``
       float64 by :func:`~trajopt_loader.kinematics.bodies.body_states` (world frame; needs
       ``qvel``, recorded or derived).

    ``provenance`` (JSON-serializable) records the model file name, convention and each step done:
    ``qvel``, ``resampled_from_dt`` and ``resample``, ``ee_pos`` and ``ee_sites``, ``body_names``,
    ``body_quat_order``, ``body_vel_frame`` and ``model_fingerprint``. ``preprocess.model_layout``
    is the model's layout.

    Raises:
      ModelNotFoundError, ModelError, MissingKeyError (unknown site or body), ValueError (bad
      ``resample_dt``) here; ExportError from ``preprocess`` naming the file and the key at fault
      (no ``qpos``, ``nq`` mismatch with both numbers, ...).
    """
    model = load_kinematics_model(model_path)
    conv = as_convention(convention)
    needs_base_conversion(model, conv)
    sites = tuple((ee_sites,) if isinstance(ee_sites, str) else ee_sites)
    if sites:
        site_ids(model, sites)
    names = body_names_of(model, bodies) if bodies else ()
    layout = model_layout(model)
    new_dt = None if resample_dt is None else check_dt(resample_dt, "resample_dt")
    base = {"model": os.path.basename(os.fspath(model_path)), "convention": conv.name}

    def preprocess(arrays: dict, dt: float, source_file: str):
        arrays, prov = dict(arrays), dict(base)
        if arrays.get("qpos") is None:
            raise ExportError(
                f"{source_file}: no 'qpos' key; kinematics (--model) needs qpos "
                f"[T, {model.nq}] (keys: {sorted(arrays)}); map it with key_map."
            )
        qpos = arrays["qpos"] = np.asarray(arrays["qpos"])
        if qpos.ndim != 2 or qpos.shape[1] != model.nq:
            raise ExportError(
                f"{source_file}: 'qpos' has shape {qpos.shape} (width "
                f"{qpos.shape[-1] if qpos.ndim else 0}) but model {base['model']} "
                f"has nq={model.nq}; pass the model this data was made for."
            )
        _check_quaternions(model, qpos, conv, source_file)
        do_qvel = derive_qvel and "qvel" not in arrays
        do_ee = bool(sites) and "ee_pos" not in arrays
        for key, asked, done in (("qvel", derive_qvel, do_qvel), ("ee_pos", bool(sites), do_ee)):
            if asked and not done:
                prov[key] = "recorded"
        if new_dt is not None or do_qvel:
            dt = require_dt(
                dt, "--resample-dt" if new_dt is not None else "--derive-qvel", source_file
            )
        if new_dt is not None:
            arrays = _resample_arrays(model, arrays, dt, new_dt, conv, source_file)
            prov.update(
                resampled_from_dt=float(dt),
                resample=(
                    "qpos: mj_integratePos interpolation (slerp for quaternions); "
                    "other per-frame arrays: linear"
                ),
            )
            if "qvel" in arrays and not do_qvel:
                prov["qvel"] = "recorded, linearly interpolated"
            dt = new_dt
        if do_qvel:
            if arrays["qpos"].shape[0] < 2:
                raise ExportError(
                    f"{source_file}: qpos has {arrays['qpos'].shape[0]} frame(s); "
                    "deriving qvel needs >= 2."
                )
            arrays["qvel"] = qvel_from_qpos(model, arrays["qpos"], dt, conv)
            prov["qvel"] = QVEL_METHOD
        if do_ee:
            arrays["ee_pos"] = site_positions_mujoco(model, arrays["qpos"], sites, conv)
            prov.update(ee_pos="mj_kinematics site_xpos (world frame, m)", ee_sites=list(sites))
        if names:
            recorded = [k for k in BODY_KEYS if k in arrays]
            if recorded:
                raise ExportError(
                    f"{source_file}: already has {recorded}; --bodies computes "
                    f"{list(BODY_KEYS)} from qpos / qvel and never replaces "
                    "recorded data: drop those arrays, or export without --bodies."
                )
            if "qvel" not in arrays:
                raise ExportError(
                    f"{source_file}: no 'qvel'; body velocities (--bodies) need "
                    "qvel [T, nv]: pass --derive-qvel (derive_qvel=True)."
                )
            arrays.update(body_states(model, arrays["qpos"], arrays["qvel"], names, conv))
            prov.update(
                body_names=list(names),
                body_quat_order=BODY_QUAT_ORDER,
                body_vel_frame=BODY_VEL_FRAME,
                model_fingerprint=layout["fingerprint"],
            )
        return arrays, float(dt), prov

    preprocess.model_layout = layout
    return preprocess


def _check_quaternions(model, qpos: np.ndarray, conv: Convention, source_file: str) -> None:
    """MuJoCo silently treats a zero quaternion as identity: refuse norms off 1 by > 1e-2."""
    q = qpos_to_mujoco(model, qpos, conv)
    for j in np.flatnonzero(model.jnt_type <= int(mujoco.mjtJoint.mjJNT_BALL)):  # free, ball
        a = model.jnt_qposadr[j] + (3 if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE else 0)
        norm = np.linalg.norm(q[:, a : a + 4], axis=1)
        bad = np.flatnonzero(~(np.abs(norm - 1.0) <= 1e-2))
        if bad.size:
            raise ExportError(
                f"{source_file}: 'qpos' row {bad[0]} has a quaternion of norm {norm[bad[0]]:.4g} "
                f"in columns {a}:{a + 4} (joint {model.joint(j).name!r}); expected unit norm. "
                f"{bad.size} row(s) affected; fix or drop them before export."
            )


def _resample_arrays(
    model, arrays: dict, dt: float, new_dt: float, conv: Convention, source_file: str
) -> dict:
    length, out = arrays["qpos"].shape[0], {}
    for key, value in arrays.items():
        value = np.asarray(value)
        if key == "qpos":
            out[key] = resample_qpos(model, value, dt, new_dt, conv).astype(value.dtype)
        elif value.ndim == 0:
            out[key] = np.asarray(new_dt, dtype=value.dtype) if key == "dt" else value
        elif value.shape[0] == length:
            out[key] = resample_linear(value, dt, new_dt)
        else:
            raise ExportError(
                f"{source_file}: '{key}' has shape {value.shape}, not {length} rows like qpos, so "
                "it cannot be resampled; drop it, or pad it to one row per frame before export."
            )
    return out
