"""The reference transforms a config asks for (``config.references``), ready for ``make_dataset``.

::

    ds = make_dataset(config, store, extra_transforms=reference_transforms(config, store))

``config.references``: ``enabled`` (bool), ``robot`` (``"digit_v3"``, ``"digit_v3_thirdarm"``,
``"cassie"``), ``model_path`` (MJCF, optional), ``ee_sites`` (tuple of site names, optional:
overrides the robot's own), ``heading_frame_keys`` (bool, default False: also add the
heading-frame keys ``ref_base_heading_pos``, ... defined in ``transforms/references.py``),
``body_keys`` (bool, default False: also add the ``ref_body_*`` keys of
``transforms/references_bodies.py`` from the exported body states, which must be in
``config.keys``), ``anchor_body`` (anchor of the ``ref_body_heading_*`` keys; None = the first
stored body),
``ee_source`` (where end-effector positions come from, :data:`~trajopt_loader.choices.EE_SOURCES`):

* ``"store"``: the data's ``ee_pos`` (exported with ``--ee-sites``); ``"ee_pos"`` must be in
  ``config.keys``.
* ``"mujoco"`` / ``"mjx"``: forward kinematics on the host of the batch's ``qpos`` at the sites,
  by ``mj_kinematics`` (float64, no compile) or MJX
  (:class:`~trajopt_loader.transforms.end_effectors.EndEffectorPositions`); needs ``model_path``
  and sites, and ``"ee_pos"`` must not be in ``config.keys``. Exporting them is cheapest at
  stream time: host FK runs for every batch.
* ``"auto"`` (default): ``"store"`` when ``"ee_pos"`` is in ``config.keys``, else ``"mjx"`` when
  ``model_path`` and sites are given, else none: the ee reference keys are left out, with one
  warning (also when the robot has no end-effector sites, as Cassie's model has none).
"""

from __future__ import annotations

import dataclasses
import logging

import grain

from trajopt_loader.errors import ConfigError, RobotSpecError
from trajopt_loader.robots import ROBOTS, get_spec
from trajopt_loader.transforms.references import EE_REF_KEYS
from trajopt_loader.transforms.references_transform import BuildReferences

_log = logging.getLogger(__name__)


def _ee_source(refs, spec, ee_in_keys: bool) -> str | None:
    """The resolved end-effector source (``"store"``, ``"mujoco"``, ``"mjx"`` or None: none) of
    ``config.references`` (module docstring); warns once for a robot without sites."""
    source = refs.ee_source
    if source == "auto":
        source = "store" if ee_in_keys else "mjx" if refs.model_path and spec.ee_sites else None
    if source == "store" and not ee_in_keys:
        raise ConfigError(
            "references.ee_source='store' reads the data's 'ee_pos', which is not "
            "in config.keys; add it (--config.keys=\"('qpos','qvel','ee_pos')\") "
            "or compute it with --config.references.ee_source=mujoco."
        )
    if source in ("mujoco", "mjx") and (ee_in_keys or not refs.model_path or not spec.ee_sites):
        raise ConfigError(
            f"references.ee_source={source!r} computes 'ee_pos' by forward kinematics: it needs "
            f"references.model_path (now {refs.model_path!r}) and end-effector sites (robot "
            f"{spec.name!r} has {tuple(spec.ee_sites)}; set references.ee_sites) and 'ee_pos' "
            "not in config.keys (use ee_source='store' to read the data's)."
        )
    if source is None and not spec.ee_sites:  # with sites, BuildReferences warns at the batch
        _log.warning(
            "references: robot %r has no end-effector sites, so the ee reference keys "
            "(%s) are left out; set references.ee_sites and references.model_path to "
            "compute them.",
            spec.name,
            ", ".join(EE_REF_KEYS),
        )
    return source


class StoreConvention:
    """Picklable ``traj_id -> Convention`` of a store (the convention of the trajectory's
    source)."""

    def __init__(self, store):
        self.store = store

    def __call__(self, traj_id: int):
        return self.store.convention(self.store.trajectories[int(traj_id)].source)


def reference_transforms(config, store) -> list[grain.transforms.Map]:
    """Grain transforms for ``config.references``: ``[]`` when disabled, else
    ``[EndEffectorPositions (when computed by FK)], BuildReferences(store, spec)``.

    Args:
      config: a trajopt-loader ConfigDict. store: the open ``TrajectoryStore`` of the pipeline.

    Raises:
      ConfigError: no or unknown ``references.robot``; ``qpos`` / ``qvel`` not in ``config.keys``;
        an ``ee_sites`` name is not in the model (checked only when ``model_path`` is set);
        an ``ee_source`` whose inputs are missing (module docstring).
    """
    refs = config.references
    if not refs.enabled:
        return []
    if refs.robot not in ROBOTS:
        raise ConfigError(
            f"references.robot={refs.robot!r}; expected one of {sorted(ROBOTS)} "
            "(--config.references.robot=digit_v3)."
        )
    missing = [k for k in ("qpos", "qvel") if k not in tuple(config["keys"])]
    if missing:
        raise ConfigError(
            f"references need {missing} in config.keys={tuple(config['keys'])}; "
            "add them (--config.keys=\"('qpos','qvel','action')\")."
        )
    spec = get_spec(refs.robot, refs.model_path or None)
    if refs.ee_sites:
        spec = dataclasses.replace(spec, ee_sites=tuple(refs.ee_sites))
    source = _ee_source(refs, spec, "ee_pos" in tuple(config["keys"]))
    transforms: list[grain.transforms.Map] = []
    if source in ("mujoco", "mjx"):
        from trajopt_loader.robots.spec import spec_from_mjcf
        from trajopt_loader.transforms.end_effectors import EndEffectorPositions

        try:
            spec_from_mjcf(refs.model_path, ee_sites=spec.ee_sites)  # sites exist, model loads
        except RobotSpecError as e:
            raise ConfigError(f"references.model_path / ee_sites: {e}") from None
        transforms.append(
            EndEffectorPositions(
                refs.model_path, spec.ee_sites, StoreConvention(store), backend=source
            )
        )
    transforms.append(BuildReferences(store, spec, heading_frame_keys=refs.heading_frame_keys))
    if refs.body_keys:
        transforms.append(_body_references(config, store))
    return transforms


def _body_references(config, store):
    """``BuildBodyReferences`` for ``references.body_keys`` (checks config.keys and the store)."""
    from trajopt_loader.store.layout import BODY_KEYS
    from trajopt_loader.transforms.references_bodies import BuildBodyReferences, store_body_names

    missing = [k for k in BODY_KEYS if k not in tuple(config["keys"])]
    if missing:
        raise ConfigError(
            f"references.body_keys needs {missing} in config.keys="
            f"{tuple(config['keys'])}; add them (export them with --model "
            "MODEL.xml --bodies all)."
        )
    from trajopt_loader.pipeline.stages import eligible_traj_ids  # late: pipeline imports us

    names = store_body_names(store, eligible_traj_ids(config, store))
    return BuildBodyReferences(names, config.references.anchor_body)
