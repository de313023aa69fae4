r"""Windows at a control rate: ``config.control_dt`` samples of the stored frames, interpolated.

With ``control_dt`` (s) set, a trajectory of ``T`` frames stored at ``dt`` is played as
``L = floor((T - 1) dt / control_dt) + 1`` *control steps* (:func:`control_lengths`; the last
one is at or before the last stored frame, never extrapolated). Control step ``j`` is at time
``j * control_dt`` after the trajectory's first frame, i.e. at fractional stored frame
``f = j * control_dt / dt``, between frames ``i = floor(f)`` and ``i + 1`` at ``alpha = f - i``
(the grid of :mod:`trajopt_loader.interpolation`; times within 1e-9 frame of a stored frame read
that frame bit for bit). Every window quantity keeps its meaning in control steps: ``step`` is the
control step, ``window_size``, ``stride``, ``episode_length`` count control steps, ``valid`` /
``wrap`` / ``clamp`` refer to ``L``, and the schedules see ``L`` as the trajectory length.

Values (:class:`InterpolateKeys`, which replaces ``GatherKeys``):

* floating keys (``qpos``, ``qvel``, ``action``, ``ee_pos``, ...): linear between frames ``i`` and
  ``i + 1`` (:func:`~trajopt_loader.interpolation.lerp`), except
* the quaternions of free and ball joints in ``qpos`` (4 entries each): shortest-arc slerp
  (:func:`~trajopt_loader.interpolation.slerp`; the rotation of MuJoCo's
  ``mj_integratePos(q_i, alpha * mj_differentiatePos(q_i, q_{i+1}))``), unit norm. Which entries
  are quaternions comes from the MuJoCo model (``config.references.model_path``: every free and
  ball joint, :func:`~trajopt_loader.kinematics.model.quaternion_qpos_addresses`) or, without a
  model, from the robot spec (``config.references.robot``: the floating base's ``qpos[3:7]``;
  refused when the spec's ``nq - nv`` shows further ball joints). The component order does not
  matter to slerp, so the store's convention (``wxyz`` / ``xyzw``) needs no conversion.
* velocities of free and ball joints (their 3 ``qvel`` entries each) are linear like every
  other velocity: an angular velocity vector interpolated componentwise.
* integer and bool keys: the stored frame at or before the control step (frame ``i``).

Cyclic continuation (``transforms.cycles``) is unchanged: loops count control-step wraps, and
loop ``c`` is moved by ``Delta^c`` computed from the stored frames. Interpolation stays within
a loop, so the step across the seam (control step ``L-1`` of loop ``c-1`` to step ``0`` of loop
``c``) spans ``T dt - (L - 1) control_dt`` of motion time, between ``dt`` and ``dt +
control_dt``, instead of exactly ``control_dt``.

Time steps: with ``control_dt`` every played trajectory needs a known ``dt``, and trajectories of
any stored rates stream together (``pipeline.time_step``).

Cost: interpolating a batch takes two gathers, a lerp pass and a slerp per quaternion (~9x a plain
gather at 4096 envs, ``benchmarks/bench_interpolation.py``), so :class:`InterpolateKeys` first
interpolates every played trajectory once into control-rate tables when they fit its byte budget,
and then gathers from them (~1x).
"""

from __future__ import annotations

import threading

import numpy as np

from trajopt_loader.errors import ConfigError, WindowIndexError
from trajopt_loader.interpolation import grid_lengths, grid_positions, lerp, slerp
from trajopt_loader.transforms.gather import DROPPED, GatherKeys

__all__ = ["InterpolateKeys", "control_lengths", "qpos_quaternions"]

_TABLE_BLOCK = 1 << 16  # control steps interpolated at once while building tables


def control_lengths(store, control_dt: float, traj_ids=None) -> np.ndarray:
    """Trajectory lengths in control steps, int64 ``[n_traj]`` indexed by traj_id.

    ``floor((T - 1) dt / control_dt) + 1`` for the trajectories ``traj_ids`` (int ``[n]``, None =
    all); others keep their stored length (they are never played).

    Raises:
      ConfigError: one of ``traj_ids`` has no known ``dt`` (names it and the fix: re-export with
        ``dt``), or ``control_dt`` is not a finite number > 0.
    """
    cdt = float(control_dt)
    if not (np.isfinite(cdt) and cdt > 0):
        raise ConfigError(f"control_dt={control_dt!r} must be a finite time step > 0 (s)")
    ids = (
        np.arange(len(store.lengths))
        if traj_ids is None
        else np.unique(np.asarray(traj_ids, np.int64))
    )
    dts = np.asarray(store.dts, np.float64)[ids]
    bad = ids[~(np.isfinite(dts) & (dts > 0))]
    if bad.size:
        from trajopt_loader.store.time_step import DT_FIX

        info = store.trajectories[int(bad[0])]
        raise ConfigError(
            f"control_dt={cdt} samples trajectories at times j * control_dt, but {bad.size} "
            f"played trajectories of {store.path!r} have no known dt (e.g. {info.path}, dt "
            f"{info.dt}). Fix: {DT_FIX}; or leave control_dt unset to play stored frames."
        )
    out = np.asarray(store.lengths, np.int64).copy()
    out[ids] = grid_lengths(out[ids], dts, cdt)
    return out


def qpos_quaternions(config, store, traj_ids) -> tuple[int, ...]:
    """qpos addresses ``a`` of the quaternions ``qpos[a:a+4]`` that ``config`` slerps (module
    docstring): () when ``qpos`` is not in ``config.keys``.

    Raises:
      ConfigError: neither ``references.model_path`` nor ``references.robot`` is set; the
        model's or spec's ``nq`` differs from the stored ``qpos`` width; a robot spec whose
        ``nq - nv > 1`` (ball joints beyond the base) without a model.
      ModelNotFoundError, ModelError: the model file is missing or does not load.
    """
    if "qpos" not in tuple(config["keys"]):
        return ()
    nq = int(store.check_uniform("qpos", traj_ids)[0][-1])
    refs = config.references
    if refs.model_path:
        from trajopt_loader.kinematics.model import load_kinematics_model, quaternion_qpos_addresses

        model = load_kinematics_model(refs.model_path)
        if model.nq != nq:
            raise ConfigError(
                f"references.model_path={refs.model_path!r} has nq={model.nq}, but "
                f"qpos rows of {store.path!r} have {nq} entries; pass the model "
                "the data was made for."
            )
        return quaternion_qpos_addresses(model)
    if refs.robot:
        from trajopt_loader.robots import get_spec

        spec = get_spec(refs.robot)
        if spec.nq != nq:
            raise ConfigError(
                f"references.robot={refs.robot!r} has nq={spec.nq}, but qpos rows "
                f"of {store.path!r} have {nq} entries; choose the data's robot."
            )
        if spec.nq - spec.nv != 1:
            raise ConfigError(
                f"control_dt: robot {refs.robot!r} has nq - nv = {spec.nq - spec.nv} quaternion "
                "joints, but its spec locates only the floating base's; set "
                "--config.references.model_path=ROBOT.xml so every ball joint is slerped."
            )
        return (spec.base_qpos_adr + 3,)
    raise ConfigError(
        "control_dt interpolates qpos, whose free- and ball-joint quaternions need spherical "
        "interpolation, but the config names no model or robot to find them: set "
        "--config.references.model_path=ROBOT.xml (every free / ball joint) or "
        "--config.references.robot=NAME (floating base qpos[3:7] only), or drop 'qpos' from keys."
    )


class InterpolateKeys(GatherKeys):
    """grain Map turning control-step windows into interpolated arrays (module docstring).

    Args:
      store, keys, dtype, traj_ids: as :class:`~trajopt_loader.transforms.gather.GatherKeys`
        (same construction checks). control_dt: control time step (s).
      quaternions: qpos addresses ``a`` of quaternions ``qpos[a:a+4]`` to slerp
        (:func:`qpos_quaternions`).
      table_bytes: budget (bytes) of the control-rate tables, or None for none (below).

    ``map(element)`` needs ``traj_id [E] int32`` and ``step [E, W] int32`` control steps (in
    ``[0, L)``, :func:`control_lengths`) and returns the element without ``chunk`` plus
    ``{key: [E, W, *row] dtype}``.

    Control-rate tables: on its first batch (in each process) the transform interpolates every
    played trajectory once at every control step (:meth:`interpolate`) into one host table per
    key, ``[sum of L, *row] dtype``, when all of them fit ``table_bytes`` (``make_dataset``
    passes ``config.cache_bytes``, the store cache's budget, so host memory holds at most twice
    it); every batch is then one gather from the tables, the cost of a plain gather. Otherwise
    each batch interpolates its own windows. Both give the same values, bit for bit except that
    numpy's vectorized float32 ``sin`` / ``arccos`` may round slerped quaternion entries 1 ulp
    differently for arrays of other lengths (so ``cache_bytes`` can change them at that level;
    a given config on a given machine always streams the same bits).

    Raises:
      ConfigError: a played trajectory of unknown dt (construction).
      MissingKeyError: as GatherKeys. WindowIndexError: a control step outside ``[0, L)``.
    """

    def __init__(
        self,
        store,
        keys=("qpos", "qvel", "action"),
        dtype="float32",
        traj_ids=None,
        *,
        control_dt: float,
        quaternions=(),
        table_bytes: int | None = None,
    ):
        super().__init__(store, keys, dtype, traj_ids)
        self.control_dt, self.quaternions = float(control_dt), tuple(int(a) for a in quaternions)
        self.played = np.unique(
            np.asarray(np.arange(len(store.lengths)) if traj_ids is None else traj_ids, np.int64)
        )
        self.controls = control_lengths(store, self.control_dt, self.played)
        self.table_bytes = table_bytes
        self._tables = None  # (offsets [n_traj], {key: table}) once built; False: not built
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # tables are rebuilt where the transform runs
        return {k: v for k, v in self.__dict__.items() if k not in ("_tables", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tables, self._lock = None, threading.Lock()

    def interpolate(self, traj, step) -> dict[str, np.ndarray]:
        """``{key: [E, W, *row] dtype}`` at control steps ``step`` (int ``[E, W]``, in range) of
        trajectories ``traj`` (int ``[E]``), interpolated from the store's frames. Float math in
        the gathered dtype (the store's cache dtype: float32 for a float32 pipeline, quaternions
        included; float64 data in float64). Frames ``i`` and ``i + 1`` are two gathers; one when
        every step lies on a stored frame."""
        traj = np.asarray(traj, np.int64)
        i, j, alpha = grid_positions(
            step,
            np.asarray(self.store.dts)[traj],
            self.control_dt,
            np.asarray(self.store.lengths, np.int64)[traj],
        )
        exact = not alpha.any()
        cols = np.add.outer(self.quaternions, np.arange(4)).ravel()  # [n_quat * 4]
        out = {}
        for key in self.keys:
            a = np.asarray(self.store.gather(key, traj, i))
            if not exact and a.dtype.kind == "f":
                b = np.asarray(self.store.gather(key, traj, j))  # a new array: reused for out
                quats = None
                if key == "qpos" and cols.size:  # [E, W, n_quat, 4]
                    quats = slerp(
                        a[..., cols].reshape(*a.shape[:2], -1, 4),
                        b[..., cols].reshape(*a.shape[:2], -1, 4),
                        alpha[..., None],
                    )
                a = lerp(a, b, alpha, overwrite_b=True)
                for k, q in enumerate(self.quaternions if quats is not None else ()):
                    a[..., q : q + 4] = quats[..., k, :]  # slices: faster than a fancy set
            out[key] = a.astype(self.dtype, copy=False)
        return out

    def tables(self):
        """``(offsets [n_traj] int64, {key: [sum L, *row] dtype})``, built on first call, or
        False when they do not fit ``table_bytes`` (class docstring)."""
        if self._tables is None:
            with self._lock:
                if self._tables is None:
                    self._tables = self._build()
        return self._tables

    def _build(self):
        lengths = self.controls[self.played]
        rows = {k: self.store.check_uniform(k, self.played)[0] for k in self.keys}
        row_bytes = sum(int(np.prod(shape)) for shape in rows.values()) * self.dtype.itemsize
        if self.table_bytes is None or int(lengths.sum()) * row_bytes > self.table_bytes:
            return False
        traj = np.repeat(self.played, lengths)
        step = np.arange(traj.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        tables = {k: np.empty((traj.size, *shape), self.dtype) for k, shape in rows.items()}
        for lo in range(0, traj.size, _TABLE_BLOCK):  # bounded temporaries
            hi = min(lo + _TABLE_BLOCK, traj.size)
            for key, value in self.interpolate(traj[lo:hi], step[lo:hi, None]).items():
                tables[key][lo:hi] = value[:, 0]
        offsets = np.zeros(len(self.store.lengths), np.int64)
        offsets[self.played] = np.cumsum(lengths) - lengths
        return offsets, tables

    def map(self, element: dict) -> dict:
        traj = np.asarray(element["traj_id"], np.int64)
        step = np.asarray(element["step"], np.int64)
        if traj.size and (
            np.isin(traj, self.played, invert=True).any()
            or (step < 0).any()
            or (step >= self.controls[traj][:, None]).any()
        ):
            bad = np.flatnonzero(
                np.isin(traj, self.played, invert=True)
                | ((step < 0) | (step >= self.controls[traj][:, None])).any(1)
            )
            e = int(bad[0])
            raise WindowIndexError(
                f"env row {e} (traj_id {int(traj[e])}): control steps {step[e].tolist()} leave "
                f"[0, {int(self.controls[traj[e]])}) of its trajectory, or it is not among the "
                f"{self.played.size} trajectories this transform plays."
            )
        batch = {k: v for k, v in element.items() if k not in DROPPED}
        tables = self.tables()
        if not tables:
            batch.update(self.interpolate(traj, step))
            return batch
        offsets, arrays = tables
        rows = offsets[traj][:, None] + step
        for key in self.keys:
            batch[key] = np.take(arrays[key], rows, axis=0)
        return batch
