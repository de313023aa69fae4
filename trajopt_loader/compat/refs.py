"""Seed-API names for Digit references: ``DigitRefSpec``, ``build_refs_from_window``,
``DigitTrajoptRefBuilder``.

Thin wrappers over :func:`trajopt_loader.transforms.references.compute_references`; the ``ref_*``
keys keep the seed code's names and meanings (world-frame ``ref_base_local_pos``, absolute
``ref_base_local_ori``, world ``ref_local_ee_pos``, ...), defined with their frames in that
module's docstring. Differences from the seed code these names come from: the base convention is
explicit, a :class:`Convention` or its name (default ``"pinocchio"`` = Crocoddyl: quaternion
``(x, y, z, w)`` in ``qpos[3:7]``, both base velocities in the body frame, so they are not rotated
again), base rotations use scipy, files are listed in natural order (``traj_2`` before ``traj_10``)
and loaded with ``allow_pickle=False``, ``true_length`` is honoured, and end-effector keys are
left out (never zero-filled) when a file has no ``ee_pos``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trajopt_loader.conventions import PINOCCHIO, Convention, as_convention
from trajopt_loader.errors import ExportError, MissingKeyError, ReferenceInputError
from trajopt_loader.robots.spec import RobotSpec
from trajopt_loader.store.layout import natural_key
from trajopt_loader.store.time_step import UNKNOWN_DT
from trajopt_loader.store.validate import load_trajectory
from trajopt_loader.transforms.references import compute_references


@dataclasses.dataclass(frozen=True)
class DigitRefSpec:
    """Actuated-joint indices of a Digit-like robot, without a model.

    Attributes:
      a_pos_index: int [n_act], qpos addresses of the actuated joints (``digit_v3.QPOS_INDEX``).
      a_vel_index: int [n_act], dof (qvel) addresses of the same joints (``digit_v3.QVEL_INDEX``).
      subsample: keep every ``subsample``-th row of each file (:class:`DigitTrajoptRefBuilder`).
    The floating base is assumed at ``qpos[0:7]`` / ``qvel[0:6]``.
    """

    a_pos_index: Sequence[int]
    a_vel_index: Sequence[int]
    subsample: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "a_pos_index", tuple(int(i) for i in np.ravel(self.a_pos_index)))
        object.__setattr__(self, "a_vel_index", tuple(int(i) for i in np.ravel(self.a_vel_index)))
        if int(self.subsample) < 1:
            raise ReferenceInputError(f"subsample={self.subsample}; expected an int >= 1.")

    def to_robot_spec(self, nq: int, nv: int) -> RobotSpec:
        """A :class:`RobotSpec` for rows of length ``nq`` / ``nv`` (base at address 0)."""
        return RobotSpec(
            name="digit_ref_spec",
            nq=int(nq),
            nv=int(nv),
            actuated_qpos_index=self.a_pos_index,
            actuated_qvel_index=self.a_vel_index,
        )


def _robot_spec(spec, nq: int, nv: int) -> RobotSpec:
    if isinstance(spec, RobotSpec):
        return spec
    if isinstance(spec, DigitRefSpec):
        return spec.to_robot_spec(nq, nv)
    raise ReferenceInputError(f"spec={spec!r}: expected a DigitRefSpec or a RobotSpec.")


def build_refs_from_window(
    qpos,
    qvel,
    spec,
    ee_pos=None,
    convention: Convention | str = PINOCCHIO,
    *,
    heading_frame_keys: bool = False,
) -> dict[str, np.ndarray]:
    """References of one window; its first row is the episode origin (``ref_base_local_trans``
    is 0 there).

    Args:
      qpos: float [T, nq]; qvel: float [T, nv], in ``convention``.
      spec: :class:`DigitRefSpec` or :class:`RobotSpec` (``subsample`` is not applied here).
      ee_pos: float [T, n_ee, 3] or [T, 3*n_ee] end-effector world positions (m), or None (then the
        ee keys are absent).
      convention: base convention of the data, a :class:`Convention` or its name (``"mujoco"``,
        ``"pinocchio"``, ``"crocoddyl"``; case-insensitive); default Pinocchio/Crocoddyl (xyzw,
        body, body).
      heading_frame_keys: also return the heading-frame keys (``ref_base_heading_pos``, ...).

    Returns:
      dict: each ``ref_*`` array [T, ...] (float dtype of ``qpos``, at least float32) and
      ``ref_len`` int32 [1] = T.

    Raises:
      ReferenceInputError: wrong shapes or an invalid base quaternion.
      ConventionError: an unknown convention name (lists the valid ones).
    """
    qpos, qvel = np.asarray(qpos), np.asarray(qvel)
    if qpos.ndim != 2 or qvel.ndim != 2 or qpos.shape[0] != qvel.shape[0]:
        raise ReferenceInputError(
            f"qpos {qpos.shape} / qvel {qvel.shape}: expected [T, nq] / [T, nv]."
        )
    rspec = _robot_spec(spec, qpos.shape[1], qvel.shape[1])
    ee = None if ee_pos is None else np.asarray(ee_pos).reshape(qpos.shape[0], -1, 3)[None]
    refs = compute_references(
        qpos[None],
        qvel[None],
        rspec,
        as_convention(convention),
        ee_pos=ee,
        heading_frame_keys=heading_frame_keys,
    )
    return {k: (v if k == "ref_len" else v[0]) for k, v in refs.items()}


class DigitTrajoptRefBuilder:
    """References of trajopt ``.npz`` files (keys ``qpos``, ``qvel``, optional ``ee_pos``,
    ``true_length``), one file at a time, padded to the longest file.

    Args:
      data_dir: directory of ``*.npz`` files (natural order) or one ``.npz`` file.
      spec: :class:`DigitRefSpec` (its ``subsample`` applies) or :class:`RobotSpec`.
      convention: base convention of the files, a :class:`Convention` or its name; default
        Pinocchio/Crocoddyl.
      ee_key: key of end-effector world positions ``[T, n_ee, 3]`` / ``[T, 3*n_ee]``.

    Attributes:
      files: list[str] in natural order; lengths: list[int] rows per file after ``true_length``
      and subsampling; max_len: int, the padded length.

    Raises:
      FileNotFoundError: no ``.npz`` at ``data_dir``.
      MissingKeyError / ReferenceInputError: a file lacks ``qpos``/``qvel`` or needs pickle
        (raised when that file is read; lengths are read at construction).
    """

    def __init__(
        self, data_dir, spec, convention: Convention | str = PINOCCHIO, *, ee_key: str = "ee_pos"
    ):
        self.data_dir, self.spec, self.ee_key = os.fspath(data_dir), spec, ee_key
        self.convention = as_convention(convention)
        if os.path.isdir(self.data_dir):
            names = sorted(
                (f for f in os.listdir(self.data_dir) if f.endswith(".npz")), key=natural_key
            )
            self.files = [os.path.join(self.data_dir, f) for f in names]
        else:
            self.files = (
                [self.data_dir]
                if self.data_dir.endswith(".npz") and os.path.isfile(self.data_dir)
                else []
            )
        if not self.files:
            raise FileNotFoundError(
                f"no .npz files at {self.data_dir!r}; pass a directory of trajopt "
                "traj_*.npz files or one .npz file."
            )
        self.step = int(getattr(spec, "subsample", 1))
        self.lengths = [len(range(0, self._true_length(p), self.step)) for p in self.files]
        self.max_len = int(max(self.lengths))

    @property
    def num_trajectories(self) -> int:
        """Number of files."""
        return len(self.files)

    def _load(self, path: str, need_qvel: bool = True) -> dict[str, np.ndarray]:
        """The file's arrays through the store's reading and validation
        (:func:`~trajopt_loader.store.validate.load_trajectory`: no pickle, ``true_length``
        applied, one-per-interval rows padded, finite values; dt is not needed here).

        Raises: MissingKeyError (no ``qvel``), ReferenceInputError (any other rule, its message).
        """
        try:
            t = load_trajectory(Path(path), allow_missing=("qvel",), dt=UNKNOWN_DT)
        except ExportError as e:
            raise ReferenceInputError(f"{os.path.dirname(path)}/{e}") from None
        if need_qvel and "qvel" not in t.arrays:
            raise MissingKeyError(
                f"{path}: no key 'qvel' (keys: {sorted(t.arrays)}); trajopt "
                "files need qpos and qvel."
            )
        return t.arrays

    def _true_length(self, path: str) -> int:
        return int(self._load(path, need_qvel=False)["qpos"].shape[0])

    def build_by_index(self, traj_index: int) -> dict[str, np.ndarray]:
        """References of file ``traj_index``, padded to ``max_len`` by repeating the last row.

        Returns:
          dict: ``ref_*`` arrays [max_len, ...] and ``ref_len`` int32 [1] (real rows).

        Raises:
          IndexError: ``traj_index`` outside ``[0, num_trajectories)``.
        """
        if not 0 <= int(traj_index) < len(self.files):
            raise IndexError(
                f"traj_index={traj_index} outside [0, {len(self.files)}) "
                f"({len(self.files)} files under {self.data_dir!r})."
            )
        path = self.files[int(traj_index)]
        data = self._load(path)
        rows = slice(0, data["qpos"].shape[0], self.step)
        ee = data.get(self.ee_key)
        try:
            refs = build_refs_from_window(
                data["qpos"][rows],
                data["qvel"][rows],
                self.spec,
                None if ee is None else ee[rows],
                self.convention,
            )
        except ReferenceInputError as e:
            raise ReferenceInputError(f"{path}: {e}") from None
        pad = self.max_len - int(refs["ref_len"][0])
        return {
            k: v if k == "ref_len" else np.concatenate([v, np.repeat(v[-1:], pad, axis=0)])
            for k, v in refs.items()
        }
