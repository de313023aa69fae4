"""Body reference keys (``ref_body_*``) from the exported body states, and the grain transform
adding them (``config.references.body_keys``).

Inputs are the store keys written by ``export --model M.xml --bodies ...``
(:mod:`trajopt_loader.kinematics.bodies`): ``body_pos``, ``body_quat`` (wxyz), ``body_lin_vel``,
``body_ang_vel``, world frame, gathered as windows ``[E, T, nb, ...]``. The definitions (notation
``x_b,t``, ``R_b,t``, ``v_b,t``, ``omega_b,t``, anchor ``a``, ``H(psi_a,t)``) are in the table of
:mod:`trajopt_loader.transforms.references`, the one definition of every ``ref_*`` key.
``references_bodies_jax.py`` is the jit-able twin (e.g. for the simulated robot's bodies).
"""

from __future__ import annotations

from collections.abc import Sequence

import grain
import numpy as np
from scipy.spatial.transform import Rotation

from trajopt_loader.errors import ConfigError, MissingKeyError, ReferenceInputError
from trajopt_loader.geometry import heading_mats, yaw_premultiply
from trajopt_loader.store.layout import BODY_KEYS
from trajopt_loader.transforms.references import fill_index
from trajopt_loader.transforms.references_heading import to_heading

__all__ = ["BODY_REF_KEYS", "BuildBodyReferences", "compute_body_references", "store_body_names"]

BODY_REF_KEYS = (
    "ref_body_pos",
    "ref_body_quat",
    "ref_body_lin_vel",
    "ref_body_ang_vel",
    "ref_body_heading_pos",
    "ref_body_heading_quat",
    "ref_body_heading_lin_vel",
    "ref_body_heading_ang_vel",
)


def compute_body_references(
    body_pos, body_quat, body_lin_vel, body_ang_vel, anchor: int, *, valid=None, dtype=None
) -> dict[str, np.ndarray]:
    """The ``ref_body_*`` keys of a batch of windows (definitions: ``transforms/references.py``).

    Args:
      body_pos: float ``[E, T, nb, 3]`` world positions (m). body_quat: float ``[E, T, nb, 4]``
        body -> world rotations, wxyz. body_lin_vel, body_ang_vel: float ``[E, T, nb, 3]``
        world-axes velocities (m/s, rad/s) of the body frame origins.
      anchor: index of the anchor body along ``nb`` (its heading frame is used).
      valid: bool ``[E, T]`` or None (all valid); invalid rows repeat the nearest earlier valid
        row (else the first valid one); envs without a valid row get zeros.
      dtype: output float dtype (default: float32 for float32 input, else float64).

    Returns:
      dict of ``BODY_REF_KEYS``: quaternion keys ``[E, T, nb, 4]`` (wxyz), the others
      ``[E, T, nb, 3]``.

    Raises:
      ReferenceInputError: shapes that do not fit, ``anchor`` out of range, or a valid row whose
        anchor quaternion is not finite or of norm below 1e-6 (names env row and step).
    """
    arrays = [np.asarray(a) for a in (body_pos, body_quat, body_lin_vel, body_ang_vel)]
    pos = arrays[0]
    if pos.ndim != 4 or pos.shape[-1] != 3:
        raise ReferenceInputError(f"body_pos has shape {pos.shape}; expected [E, T, nb, 3].")
    n_env, n_t, nb = pos.shape[:3]
    for name, a, width in zip(BODY_KEYS, arrays, (3, 4, 3, 3), strict=True):
        if a.shape != (n_env, n_t, nb, width):
            raise ReferenceInputError(
                f"{name} has shape {a.shape}; expected "
                f"[{n_env}, {n_t}, {nb}, {width}] like body_pos."
            )
    if not 0 <= int(anchor) < nb:
        raise ReferenceInputError(f"anchor body index {anchor} is outside [0, {nb}).")
    out_dtype = np.dtype(dtype) if dtype is not None else np.result_type(pos.dtype, np.float32)
    valid = np.ones((n_env, n_t), bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != (n_env, n_t):
        raise ReferenceInputError(f"valid has shape {valid.shape}; expected [{n_env}, {n_t}].")
    empty = ~valid.any(axis=1)
    if not valid.all():
        rows = fill_index(valid)[..., None, None]
        arrays = [np.take_along_axis(a, rows, axis=1) for a in arrays]
    pos, quat, lin, ang = (a.astype(np.float64) for a in arrays)
    quat[empty] = (1.0, 0.0, 0.0, 0.0)
    q_a = quat[:, :, anchor]
    norm = np.linalg.norm(q_a, axis=-1)
    bad = ~(np.isfinite(norm) & (norm > 1e-6))
    if bad.any():
        e, t = np.argwhere(bad)[0]
        raise ReferenceInputError(
            f"body_quat env row {e}, step {t}: anchor quaternion "
            f"{q_a[e, t].tolist()} (wxyz) has norm {norm[e, t]}; expected "
            "a unit quaternion. Re-export the bodies with the model."
        )
    psi = Rotation.from_quat(q_a[..., [1, 2, 3, 0]].reshape(-1, 4)).as_euler("ZYX")[:, 0]
    heading = heading_mats(psi.reshape(n_env, n_t))  # [E, T, 3, 3]
    turned = yaw_premultiply(quat[..., [1, 2, 3, 0]].reshape(-1, 4), np.repeat(-psi, nb))[
        :, [3, 0, 1, 2]
    ].reshape(quat.shape)
    refs = {
        "ref_body_pos": pos,
        "ref_body_quat": quat,
        "ref_body_lin_vel": lin,
        "ref_body_ang_vel": ang,
        "ref_body_heading_pos": to_heading(heading, pos - pos[:, :, anchor, None]),
        "ref_body_heading_quat": turned,
        "ref_body_heading_lin_vel": to_heading(heading, lin),
        "ref_body_heading_ang_vel": to_heading(heading, ang),
    }
    for key, arr in refs.items():
        arr = arr.astype(out_dtype)
        arr[empty] = 0.0
        refs[key] = arr
    return refs


def store_body_names(store, traj_ids=None) -> tuple[str, ...]:
    """The body names recorded at export (``derived["body_names"]``) shared by the trajectories
    ``traj_ids`` (None = all) of ``store``.

    Raises:
      ConfigError: a trajectory without body keys, or two with different body lists (names
        them and the fix).
    """
    infos = [
        store.trajectories[int(i)]
        for i in (range(len(store.trajectories)) if traj_ids is None else traj_ids)
    ]
    names = None
    for info in infos:
        got = info.derived.get("body_names")
        if got is None:
            raise ConfigError(
                f"trajectory {info.path} of {store.path!r} has no body states; "
                "re-export it with --model MODEL.xml --bodies all, or set "
                "references.body_keys=False."
            )
        if names is not None and tuple(got) != names:
            raise ConfigError(
                f"trajectory {info.path} of {store.path!r} stores bodies {got} but "
                f"others store {list(names)}; re-export with one --bodies list."
            )
        names = tuple(got)
    if names is None:
        raise ConfigError(f"store {store.path!r} has no trajectories with body states.")
    return names


class BuildBodyReferences(grain.transforms.Map):
    """Grain transform adding the ``ref_body_*`` keys (``BODY_REF_KEYS``) to a batch dict.

    Reads ``body_pos``, ``body_quat``, ``body_lin_vel``, ``body_ang_vel`` ``[E, W, nb, ...]``
    and optional ``valid [E, W]``; outputs have the dtype of ``body_pos``.

    Args:
      body_names: the stored bodies, in store order (:func:`store_body_names`).
      anchor_body: name of the anchor body; None = the first stored body (with ``--bodies all``
        the model's first body, the floating base of Cassie and Digit).

    Raises:
      ConfigError: ``anchor_body`` is not one of ``body_names`` (lists them).
      MissingKeyError (from ``map``): a body key is missing from the batch (add it to
        ``config.keys``).
    """

    def __init__(self, body_names: Sequence[str], anchor_body: str | None = None):
        self.body_names = tuple(body_names)
        if anchor_body is not None and anchor_body not in self.body_names:
            raise ConfigError(
                f"references.anchor_body={anchor_body!r} is not a stored body; "
                f"stored bodies: {list(self.body_names)}."
            )
        self.anchor = 0 if anchor_body is None else self.body_names.index(anchor_body)

    def map(self, batch: dict) -> dict:
        """Return ``batch`` plus the ``ref_body_*`` keys."""
        missing = [k for k in BODY_KEYS if k not in batch]
        if missing:
            raise MissingKeyError(
                f"batch has no key(s) {missing} (keys: {sorted(batch)}); add "
                f"{list(BODY_KEYS)} to config.keys."
            )
        refs = compute_body_references(
            *(batch[k] for k in BODY_KEYS),
            self.anchor,
            valid=batch.get("valid"),
            dtype=np.asarray(batch["body_pos"]).dtype,
        )
        return {**batch, **refs}
