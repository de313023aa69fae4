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
stored body). End effectors come from the data when ``"ee_pos"`` is in
``config.keys``; otherwise from MuJoCo forward kinematics (``kinematics.EndEffectorPositions``)
when a model path and sites are given; otherwise the ee reference keys are left out (logged).
"""

from __future__ import annotations

import dataclasses

import grain

from trajopt_loader.errors import ConfigError, RobotSpecError
from trajopt_loader.robots import ROBOTS, get_spec
from trajopt_loader.transforms.references_transform import BuildReferences


class StoreConvention:
    """Picklable ``traj_id -> Convention`` of a store (the convention of the trajectory's source)."""

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
        an ``ee_sites`` name is not in the model (checked only when ``model_path`` is set).
    """
    refs = config.references
    if not refs.enabled:
        return []
    if refs.robot not in ROBOTS:
        raise ConfigError(f"references.robot={refs.robot!r}; expected one of {sorted(ROBOTS)} "
                          "(--config.references.robot=digit_v3).")
    missing = [k for k in ("qpos", "qvel") if k not in tuple(config["keys"])]
    if missing:
        raise ConfigError(f"references need {missing} in config.keys={tuple(config['keys'])}; "
                          "add them (--config.keys=\"('qpos','qvel','action')\").")
    spec = get_spec(refs.robot, refs.model_path or None)
    if refs.ee_sites:
        spec = dataclasses.replace(spec, ee_sites=tuple(refs.ee_sites))
    transforms: list[grain.transforms.Map] = []
    if "ee_pos" not in tuple(config["keys"]) and refs.model_path and spec.ee_sites:
        from trajopt_loader.robots.spec import spec_from_mjcf
        from trajopt_loader.transforms.end_effectors import EndEffectorPositions
        try:
            spec_from_mjcf(refs.model_path, ee_sites=spec.ee_sites)  # sites exist, model loads
        except RobotSpecError as e:
            raise ConfigError(f"references.model_path / ee_sites: {e}") from None
        transforms.append(EndEffectorPositions(refs.model_path, spec.ee_sites, StoreConvention(store)))
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
        raise ConfigError(f"references.body_keys needs {missing} in config.keys="
                          f"{tuple(config['keys'])}; add them (export them with --model "
                          "MODEL.xml --bodies all).")
    from trajopt_loader.pipeline.dataset import eligible_traj_ids  # late: dataset imports us

    names = store_body_names(store, eligible_traj_ids(config, store))
    return BuildBodyReferences(names, config.references.anchor_body)
