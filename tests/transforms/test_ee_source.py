"""config.references.ee_source: which end-effector source is built, and the refusals."""

import numpy as np
import pytest

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ConfigError
from trajopt_loader.store import TrajectoryStore
from trajopt_loader.transforms.end_effectors import EndEffectorPositions
from trajopt_loader.transforms.references_config import reference_transforms
from trajopt_loader.transforms.references_transform import BuildReferences


def _config(store_path, keys=("qpos", "qvel"), **refs):
    return load_config(
        "default",
        {
            "zarr_path": str(store_path),
            "keys": keys,
            "motions": ("agility_reference",),
            "allow_mixed_dt": True,
            "references.enabled": True,
            "references.robot": "cassie",
            **{f"references.{k}": v for k, v in refs.items()},
        },
    )


def test_fk_sources_pick_their_backend_and_missing_inputs_are_refused(cassie_store, shared_data):
    store = TrajectoryStore(str(cassie_store))
    xml = str(shared_data / "cassie" / "cassie.xml")
    # Cassie's model has no sites: FK needs named sites; the pelvis site list is checked on load.
    with pytest.raises(ConfigError, match="ee_sites"):
        reference_transforms(
            _config(cassie_store, ee_source="mujoco", ee_sites=("left-foot",), model_path=xml),
            store,
        )
    with pytest.raises(ConfigError, match="ee_source='mjx'.*model_path \\(now None\\)"):
        reference_transforms(_config(cassie_store, ee_source="mjx"), store)
    with pytest.raises(ConfigError, match="ee_source='store'.*not in config.keys"):
        reference_transforms(_config(cassie_store, ee_source="store"), store)
    with pytest.raises(ConfigError, match="not one of"):
        _config(cassie_store, ee_source="pinocchio")
    # auto without any source: only the references (and one warning, tested with the pipeline)
    assert [type(t) for t in reference_transforms(_config(cassie_store), store)] == [
        BuildReferences
    ]


def test_mujoco_and_mjx_sources_build_fk_with_that_backend(cassie_store, shared_data, tmp_path):
    import mujoco

    spec = mujoco.MjSpec.from_file(str(shared_data / "cassie" / "cassie.xml"))
    spec.meshdir = str(shared_data / "cassie" / spec.meshdir)
    spec.body("left-foot").add_site(name="left-toe", pos=[0.05, 0, 0])
    xml = tmp_path / "cassie_sites.xml"
    xml.write_text(spec.to_xml())
    store = TrajectoryStore(str(cassie_store))
    for backend in ("mujoco", "mjx"):
        fk, refs = reference_transforms(
            _config(cassie_store, ee_source=backend, ee_sites=("left-toe",), model_path=str(xml)),
            store,
        )
        assert isinstance(fk, EndEffectorPositions) and fk.backend == backend
        assert isinstance(refs, BuildReferences)
    # the mujoco backend's positions are MuJoCo's site_xpos of the same state
    batch = {
        "qpos": np.asarray(store.gather("qpos", np.array([0]), np.array([[0, 500]]))),
        "traj_id": np.array([0], np.int32),
    }
    out = fk.__class__(str(xml), ("left-toe",), store.convention("cassie"), backend="mujoco").map(
        batch
    )["ee_pos"]
    model = mujoco.MjModel.from_xml_path(str(xml))
    data = mujoco.MjData(model)
    for w in range(2):
        data.qpos[:] = batch["qpos"][0, w]
        mujoco.mj_kinematics(model, data)
        np.testing.assert_allclose(out[0, w, 0], data.site("left-toe").xpos, atol=1e-9)
