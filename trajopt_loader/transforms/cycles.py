r"""Continue cyclic motions across the wrap seam: loop ``c`` starts where loop ``c-1`` ended.

A window that wraps reads steps ``..., L-2, L-1, 0, 1, ...`` of its trajectory; raw data would
teleport the base back to the first frame's position and heading mid-episode. Following
DeepMimic's cyclic motions (Peng et al. 2018, "DeepMimic", Sec. "cyclic motions": the root
position and heading offset between the start and the end of the clip is accumulated once per
cycle), every step with loop count ``c >= 1`` (``batch["loop"]``, see ``transforms/windows.py``)
gets its base moved by the planar transform ``Delta^c``:

* ``Delta`` is the planar (heading-yaw + horizontal translation) transform that maps the first
  frame's planar pose onto the planar pose of an extrapolated frame ``L``, the step after the
  last one, per trajectory. With ``psi`` the heading (yaw of the intrinsic ZYX decomposition
  ``R = Rz(yaw) Ry(pitch) Rx(roll)``, as in ``transforms/references.py``) and ``p = (x, y)`` the
  horizontal base position, frame ``L`` is frame ``L-1`` advanced by the last step's planar
  motion (the step ``L-2 -> L-1`` repeated in the base's heading frame; no velocity data, the
  same in every convention)::

      dpsi = wrap(psi_{L-1} - psi_{L-2}),   psi_L = psi_{L-1} + dpsi,
      p_L = p_{L-1} + R(dpsi) (p_{L-1} - p_{L-2}),
      theta = wrap(psi_L - psi_0) in (-pi, pi],   d = p_L - R(theta) p_0,
      Delta(x) = R(theta) x + d                     (so Delta(p_0) = p_L)

  A clip of one frame (``L < 2``) has no last step: ``p_L = p_{L-1}``, ``psi_L = psi_{L-1}``.

* Closed form of the c-fold composition (no loop over ``c``; complex numbers for 2-D)::

      Delta^c(x) = R(c theta) x + t_c,   t_c = sum_{j<c} R(j theta) d
                 = d * exp(i (c-1) theta / 2) * sin(c theta / 2) / sin(theta / 2)   (theta != 0)
                 = c d                                                              (theta == 0)

* Rewritten, for rows with ``c >= 1``: base ``qpos`` x, y -> ``R(c theta) (x, y) + t_c``; base
  quaternion -> ``Rz(c theta) * q`` (heading turned, roll/pitch kept; in the source's quaternion
  order, ``store.convention``); **z stays as recorded**; world-frame base velocities (MuJoCo's
  linear velocity, ``Convention.lin_vel_frame == "world"``) are turned by ``R(c theta)``, body-
  frame ones are unchanged; world points (``ee_pos``, ``[..., n_ee * 3]`` or ``[..., n_ee, 3]``,
  m) are moved like the base position; body states (``kinematics/bodies.py``): ``body_pos`` is
  moved like a world point, ``body_quat`` (wxyz) turned like the base quaternion, the world-axes
  ``body_lin_vel`` / ``body_ang_vel`` turned by ``R(c theta)``. Rows with ``c == 0`` are left
  bit-identical.

The quaternion keeps a continuous sign across the seam: ``Rz(theta) * q_0`` is compared with
``q_{L-1}`` and, when they lie in opposite hemispheres, every loop also flips the sign (the same
rotation; quaternion-based consumers see no jump from ``q`` to ``-q``).

Open cycles: the clip's ``T`` frames are ``T`` distinct phases of a periodic motion, as
trajectory optimization writes them (the Cassie ``aslip_walk`` strides: frame ``L-1`` is one
step short of the next stride's frame 0). The step across the seam, ``L-1`` of loop ``c-1`` ->
``0`` of loop ``c``, is then the last step's planar motion, and the base advances by ``L``
steps' worth per loop (``aslip_walk``: the commanded speed x ``L dt`` within 0.1%). A closed clip,
whose last frame repeats its first, would play that pose twice at each seam: drop the repeated frame
at export, or stream it with ``cyclic=False``. Joints, z, roll and pitch across the seam are as
recorded. With ``cyclic=False`` nothing is rewritten; ``loop`` still tells the consumer where the
seam is.

``make_dataset`` (``config.cyclic`` with ``end_policy="wrap"``) computes the ``Delta`` of every
played trajectory when it builds the pipeline (:meth:`ContinueCycles.deltas`), so data without a
floating base is refused there, not at the first wrap. The math lives in ``transforms/planar.py``.

Positions grow without bound in a never-ending wrapping episode (about ``|t_1|`` per loop):
float32 resolves ``|x| * 6e-8`` m (0.1 mm at 1.5 km). A warning is logged once when rewritten
positions need more resolution than the batch dtype has; use ``dtype="float64"``, or bound the
episodes (``episode_length``, ``allow_wrap=False``, or ``end_policy="clamp"``, which restarts
each pass).
"""

from __future__ import annotations

import logging

import grain
import numpy as np

from trajopt_loader.conventions import XYZW_FROM_WXYZ, flag_table
from trajopt_loader.errors import ConfigError, MissingKeyError, ReferenceInputError
from trajopt_loader.geometry import rot2, yaw_pairs, yaw_premultiply
from trajopt_loader.transforms.planar import cycle_delta, cycle_power

__all__ = ["RESOLUTION_M", "ContinueCycles", "cycle_delta", "cycle_power", "yaw_premultiply"]

_log = logging.getLogger(__name__)
RESOLUTION_M = 1e-4  # warn when the batch dtype resolves positions coarser than this (m)


def _planar(x_view, y_view, rows, cos=None, sin=None, tx=0.0, ty=0.0) -> None:
    """In place on the views: ``(x, y) -> R (x, y) + t`` where ``rows`` (float64 math; other
    entries keep their exact bits). ``cos`` None: no rotation (a straight cycle)."""
    x, y = x_view, y_view
    if cos is not None:
        x, y = rot2(x.astype(np.float64), y.astype(np.float64), cos, sin)
    for new, view, shift in ((x, x_view, tx), (y, y_view, ty)):  # float64 sum, cast on store
        np.add(new, shift, out=view, where=rows, dtype=np.float64, casting="unsafe")


def _per_step(loop, theta, disp, flip, turns: bool):
    """``(t_x, t_y)`` and, when ``turns``, ``(cos, sin, cos/2, sin/2 of c theta, quaternion
    sign)`` of ``Delta^c`` per step, each ``[E, W]`` or ``[E, 1]``.

    ``Delta^c`` is evaluated once per distinct loop count of each window (``K`` of them, usually
    1-2) and picked per step, rather than once per step.
    """
    low = loop.min(axis=1, keepdims=True).astype(np.int64)
    rel = loop - low
    counts = low + np.arange(int(rel.max()) + 1)  # [E, K]
    angle, trans, sign = cycle_power(theta[:, None], disp[:, None], flip[:, None], counts)
    tables = (trans.real, trans.imag) + (
        (np.cos(angle), np.sin(angle), np.cos(angle / 2), np.sin(angle / 2), sign) if turns else ()
    )
    if counts.shape[1] == 1:
        return tables
    return tuple(np.take_along_axis(t, rel, axis=1) for t in tables)


def _turn_bodies(batch, out, moved, cos, sin, cos_h, sin_h, sign) -> None:
    """Turn the body states of ``batch`` into ``out`` where ``moved``: world-axes body velocities
    ``[E, W, nb, 3]`` by ``R(c theta)``, ``body_quat [E, W, nb, 4]`` (wxyz) by ``Rz(c theta)``
    with the loop's quaternion sign."""
    grid = lambda g: g[..., None]  # noqa: E731  [E, W|1] -> [E, W|1, 1] over bodies
    for key in ("body_lin_vel", "body_ang_vel"):
        if key in batch:
            arr = np.array(batch[key])
            _planar(arr[..., 0], arr[..., 1], grid(moved), grid(cos), grid(sin))
            out[key] = arr
    if "body_quat" in batch:
        arr = np.array(batch["body_quat"])
        cols = [1, 2, 3, 0]  # x, y, z, w of wxyz
        new = yaw_pairs(*(arr[..., i].astype(np.float64) for i in cols), grid(cos_h), grid(sin_h))
        for i, value in zip(cols, new, strict=True):
            np.multiply(value, grid(sign), out=arr[..., i], where=grid(moved), casting="unsafe")
        out["body_quat"] = arr


class ContinueCycles(grain.transforms.Map):
    """grain Map continuing cyclic motions across the wrap seam (module docstring).

    Reads ``traj_id [E]`` and ``loop [E, W]`` (from ``WindowIndices``) and rewrites, where
    ``loop >= 1``: ``qpos [E, W, nq]`` (base ``qpos[0:7]``), ``qvel [E, W, nv]`` (world-frame base
    velocities at ``qvel[0:3]`` / ``qvel[3:6]``) and each key of ``world_points`` present in the
    batch. Other keys pass through. Returns a new dict; changed arrays are new arrays of the same
    dtype. ``Delta`` of each trajectory is computed from the store (``qpos`` frames ``0, L-2, L-1``)
    the first time the trajectory needs it (:meth:`deltas`), then cached.

    Args:
      store: ``TrajectoryStore`` (``lengths``, ``trajectories``, ``convention(source)``,
        ``gather``). world_points: batch keys of world positions (m) to move with the base.

    Raises (from ``map``):
      MissingKeyError: no ``loop`` / ``traj_id`` in the batch. ConfigError, ConventionError: see
      :meth:`deltas`. ReferenceInputError: a ``world_points`` array whose rows
      are not 3-D points.
    """

    def __init__(self, store, world_points=("ee_pos", "body_pos")):
        self.store, self.world_points = store, tuple(world_points)
        self._table = None  # (known, theta, disp, flip) per traj_id, filled lazily
        self._flags = None  # per traj_id: (quat xyzw, lin vel world, ang vel world)
        self._warned = False

    def _conventions(self) -> np.ndarray:
        if self._flags is None:
            convs = {
                s: self.store.convention(s) for s in {t.source for t in self.store.trajectories}
            }
            self._flags = flag_table([convs[t.source] for t in self.store.trajectories])
        return self._flags

    def deltas(self, traj_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(theta, disp, flip)`` of :func:`cycle_delta` for int ``traj_ids [n]`` (cached).

        Trajectories not yet cached are checked and read in one ``store.gather`` of ``qpos``
        frames ``0, L-2, L-1`` (``make_dataset`` calls it for every played trajectory up front).

        Raises:
          ConfigError: ``qpos`` rows of fewer than 7 values (no floating base), naming the
          trajectory. ConventionError: see :func:`cycle_delta`.
        """
        traj_ids = np.asarray(traj_ids, np.int64)
        n = len(self.store.lengths)
        table = self._table or (
            np.zeros(n, bool),
            np.zeros(n),
            np.zeros(n, complex),
            np.zeros(n, bool),
        )
        missing = np.unique(traj_ids[~table[0][traj_ids]])
        if missing.size:
            infos = [self.store.trajectories[int(i)] for i in missing]
            for info in infos:  # export makes qpos [T, nq] of every trajectory
                nq = info.keys["qpos"][0][-1]
                if nq < 7:
                    raise ConfigError(
                        f"trajectory {info.path} of {self.store.path!r}: qpos has nq = {nq} "
                        "columns, but continuing cycles (config.cyclic, on by default) moves a "
                        "floating base at qpos[0:7] (x, y, z, quaternion; nq >= 7). Pass "
                        "--config.cyclic=False for fixed-base data, or re-export with the "
                        "floating base at qpos[0:7]."
                    )
            last = np.asarray(self.store.lengths, np.int64)[missing] - 1
            steps = np.stack([np.zeros_like(last), np.maximum(last - 1, 0), last], axis=1)
            rows = np.asarray(self.store.gather("qpos", missing, steps), np.float64)[..., 0:7]
            names = [f"{info.path} (length {info.length})" for info in infos]
            theta, disp, flip = cycle_delta(
                rows[:, 0], rows[:, 1], rows[:, 2], self._conventions()[missing, 0], names
            )
            table = tuple(a.copy() for a in table)  # swap whole: safe with reader threads
            table[0][missing], table[1][missing], table[2][missing], table[3][missing] = (
                True,
                theta,
                disp,
                flip,
            )
            self._table = table
        return table[1][traj_ids], table[2][traj_ids], table[3][traj_ids]

    def map(self, batch: dict) -> dict:
        """Return ``batch`` with the loop ``>= 1`` rows continued (class docstring)."""
        for key in ("loop", "traj_id"):
            if key not in batch:
                raise MissingKeyError(
                    f"batch has no key {key!r} (keys: {sorted(batch)}); put "
                    "ContinueCycles after WindowIndices and GatherKeys."
                )
        loop = np.asarray(batch["loop"])
        moved = loop > 0
        if not moved.any():
            return batch
        traj = np.asarray(batch["traj_id"], np.int64)
        theta, disp, flip = self.deltas(traj)
        flags = self._conventions()[traj]  # [E, 3]: quat xyzw, lin vel world, ang vel world
        turns = bool(theta.any() or flip.any())  # else Delta^c is a pure translation
        tx, ty, *rotation = _per_step(loop, theta, disp, flip, turns)
        cos, sin, cos_h, sin_h, sign = rotation if turns else (None,) * 5
        out = dict(batch)
        if "qpos" in batch:
            qpos = np.array(batch["qpos"])
            _planar(qpos[..., 0], qpos[..., 1], moved, cos, sin, tx, ty)
            for xyzw in np.unique(flags[:, 0]) if turns else ():
                cols = [3 + i for i in (range(4) if xyzw else XYZW_FROM_WXYZ)]  # x, y, z, w
                rows = moved & (flags[:, 0] == xyzw)[:, None]
                new = yaw_pairs(*(qpos[..., i].astype(np.float64) for i in cols), cos_h, sin_h)
                for i, value in zip(cols, new, strict=True):
                    np.multiply(value, sign, out=qpos[..., i], where=rows, casting="unsafe")
            out["qpos"] = qpos
            self._check_resolution(qpos.dtype, float(np.abs(tx).max() + np.abs(ty).max()))
        if "qvel" in batch and turns and flags[:, 1:].any():
            qvel = np.array(batch["qvel"])
            for col, world in ((0, flags[:, 1]), (3, flags[:, 2])):
                if world.any():
                    _planar(qvel[..., col], qvel[..., col + 1], moved & world[:, None], cos, sin)
            out["qvel"] = qvel
        if turns:
            _turn_bodies(batch, out, moved, cos, sin, cos_h, sin_h, sign)
        for key in self.world_points:
            if key in batch:
                arr = np.array(batch[key])
                if arr.ndim < 3 or np.prod(arr.shape[2:]) % 3:
                    raise ReferenceInputError(
                        f"batch[{key!r}] has shape {arr.shape}; expected "
                        "world points [E, W, n * 3] or [E, W, n, 3] (m)."
                    )
                pts = arr.reshape(arr.shape[:2] + (-1, 3))  # a view of the copy
                grid = (moved, cos, sin, tx, ty)
                _planar(
                    pts[..., 0], pts[..., 1], *(None if g is None else g[..., None] for g in grid)
                )
                out[key] = arr
        return out

    def _check_resolution(self, dtype, max_abs: float) -> None:
        """Warn once when ``dtype`` resolves ``max_abs`` m (the largest offset ``|t_c|``) coarser
        than ``RESOLUTION_M``."""
        if self._warned or np.dtype(dtype).kind in "iu":
            return
        try:
            eps = float(np.finfo(dtype).eps)
        except ValueError:  # bfloat16 & co. (ml_dtypes, jax's dependency)
            import ml_dtypes

            eps = float(ml_dtypes.finfo(dtype).eps)
        ulp = eps * 2.0 ** np.floor(np.log2(max(max_abs, 1e-300)))  # spacing at max_abs
        if ulp > RESOLUTION_M:
            self._warned = True
            _log.warning(
                "continued base positions are offset by up to %.4g m, where %s resolves only "
                "%.2g m (loop counts grow without bound in a wrapping episode); use "
                "dtype='float64', or bound the episodes (episode_length=STEPS, "
                "allow_wrap=False or end_policy='clamp').",
                max_abs,
                dtype,
                ulp,
            )
