"""reference_transforms: config.references -> the transforms make_dataset runs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import SHARED_DATA

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ConfigError
from trajopt_loader.pipeline import make_dataset
from trajopt_loader.robots import cassie
from trajopt_loader.store import TrajectoryStore
from trajopt_loader.transforms.end_effectors import EndEffectorPositions
from trajopt_loader.transforms.references import EE_REF_KEYS, HEADING_REF_KEYS, REF_KEYS
from trajopt_loader.transforms.references_config import reference_transforms
from trajopt_loader.transforms.references_transform import BuildReferences

CASSIE_XML = SHARED_DATA / "cassie" / "cassie.xml"


def config_for(store_path, **refs):
    # All three agility trajectories on purpose (2 kHz and 29 Hz): references are per step.
    return load_config(
        "cassie",
        {
            "zarr_path": str(store_path),
            "motions": ("agility_reference",),
            "allow_mixed_dt": True,
            "num_envs": 4,
            "window_size": 8,
            "num_batches": 2,
            **{f"references.{k}": v for k, v in ({"enabled": False, "robot": None} | refs).items()},
        },
    )


def test_disabled_gives_nothing_and_enabled_streams_references(cassie_store):
    store = TrajectoryStore(str(cassie_store))
    assert reference_transforms(config_for(cassie_store), store) == []
    config = config_for(cassie_store, enabled=True, robot="cassie")
    transforms = reference_transforms(config, store)
    assert [type(t) for t in transforms] == [BuildReferences] and transforms[0].spec == cassie.SPEC
    batches = list(make_dataset(config, store, 0, 1, extra_transforms=transforms))
    assert len(batches) == 2 and all(
        set(REF_KEYS) <= set(b)
        and not set(EE_REF_KEYS) & set(b)
        and not set(HEADING_REF_KEYS) & set(b)
        for b in batches
    )
    assert all(b["ref_base_local_trans"].dtype == np.float32 for b in batches)
    # make_dataset builds the same transforms itself when the config enables references.
    implicit = list(make_dataset(config, store, 0, 1))
    for got, want in zip(implicit, batches, strict=True):
        assert set(got) == set(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_heading_frame_keys_are_opt_in(cassie_store):
    store = TrajectoryStore(str(cassie_store))
    config = config_for(cassie_store, enabled=True, robot="cassie", heading_frame_keys=True)
    (build,) = reference_transforms(config, store)
    assert build.heading_frame_keys
    plain = next(
        iter(make_dataset(config_for(cassie_store, enabled=True, robot="cassie"), store, 0, 1))
    )
    with_heading = next(iter(make_dataset(config, store, 0, 1)))
    assert set(with_heading) == set(plain) | set(HEADING_REF_KEYS)
    for key in plain:  # the predecessor's keys are the same with or without the heading keys
        np.testing.assert_array_equal(with_heading[key], plain[key], err_msg=key)
    with pytest.raises(ConfigError, match="references.heading_frame_keys"):
        config_for(cassie_store, enabled=True, robot="cassie", heading_frame_keys="yes")


def test_model_and_sites_add_forward_kinematics(cassie_store):
    store = TrajectoryStore(str(cassie_store))
    config = config_for(
        cassie_store, enabled=True, robot="cassie", model_path=str(CASSIE_XML), ee_sites=("imu",)
    )
    fk, build = reference_transforms(config, store)
    assert isinstance(fk, EndEffectorPositions) and fk.site_names == ("imu",)
    assert build.spec.ee_sites == ("imu",) and build.spec.model_path == str(CASSIE_XML)
    assert pickle.loads(pickle.dumps(fk)).convention(0) == store.convention("cassie")


def test_errors_name_the_field(cassie_store):
    store = TrajectoryStore(str(cassie_store))
    with pytest.raises(ConfigError, match="references.robot=None"):
        reference_transforms(config_for(cassie_store, enabled=True), store)
    with pytest.raises(ConfigError, match="references.robot='atlas'"):
        reference_transforms(config_for(cassie_store, enabled=True, robot="atlas"), store)
    with pytest.raises(ConfigError, match="site 'left-toe' is not in the model"):
        reference_transforms(
            config_for(
                cassie_store,
                enabled=True,
                robot="cassie",
                model_path=str(CASSIE_XML),
                ee_sites=("left-toe",),
            ),
            store,
        )
    config = config_for(cassie_store, enabled=True, robot="cassie")
    with config.unlocked():
        config["keys"] = ("qpos", "action")
    with pytest.raises(ConfigError, match=r"references need \['qvel'\] in config.keys"):
        reference_transforms(config, store)
