"""The model check at load: a store exported with a model refuses a model of another layout
(reordered bodies, other nq) with one clear line; a store without a recorded layout warns once."""

from __future__ import annotations

import shutil
import warnings
import xml.etree.ElementTree as ET

import mujoco
import pytest

from trajopt_loader.configs import load_config
from trajopt_loader.errors import ModelError
from trajopt_loader.kinematics import make_export_preprocess
from trajopt_loader.kinematics.model_layout import model_layout
from trajopt_loader.pipeline.dataset import make_dataset
from trajopt_loader.store import TrajectoryStore, export_npz


@pytest.fixture(scope="module")
def cassie_xml(shared_data):
    return shared_data / "cassie" / "cassie.xml"


@pytest.fixture(scope="module")
def model_store(tmp_path_factory, shared_data, cassie_xml):
    """Store of Cassie's traj_2 (T=28) exported with the model and all bodies."""
    root = tmp_path_factory.mktemp("bodies_src")
    (root / "walk").mkdir()
    shutil.copy(shared_data / "cassie/trajopt/agility_reference/traj_2.npz", root / "walk")
    out = tmp_path_factory.mktemp("bodies") / "s.zarr"
    pre = make_export_preprocess(cassie_xml, convention="mujoco", bodies="all")
    export_npz(root, out, source="cassie", convention="mujoco", preprocess=pre, progress=False)
    return out


def _swapped_legs(cassie_xml) -> mujoco.MjSpec:
    """Cassie with the pelvis's two leg subtrees in the other order (same names, same nq)."""
    tree = ET.parse(cassie_xml)
    root = tree.getroot()
    root.find("compiler").set("meshdir", str(cassie_xml.parent / "cassie-stl-meshes"))
    pelvis = root.find(".//body[@name='cassie-pelvis']")
    left, right = [c for c in pelvis if c.tag == "body"]
    pelvis.remove(left)
    pelvis.insert(list(pelvis).index(right) + 1, left)
    return mujoco.MjSpec.from_string(ET.tostring(root, encoding="unicode"))


def _save(spec: mujoco.MjSpec, cassie_xml, path):
    """Write ``spec`` as an MJCF file at ``path`` (meshes found beside the original)."""
    spec.meshdir = str(cassie_xml.parent / "cassie-stl-meshes")
    spec.compile()
    path.write_text(spec.to_xml())
    return path


def test_recorded_layout_matches_the_model(model_store, cassie_xml):
    store = TrajectoryStore(model_store)
    recorded = store.model_layout("cassie")
    model = mujoco.MjModel.from_xml_path(str(cassie_xml))
    assert recorded == model_layout(model)
    assert recorded["nq"] == 35 and recorded["nv"] == 32
    assert recorded["body_names"][:3] == ["world", "cassie-pelvis", "left-hip-roll"]
    assert recorded["joint_types"][:4] == ["slide", "slide", "slide", "ball"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.check_model(cassie_xml)
        store.check_model(model)
    from trajopt_loader.store.inspect import inspect_store

    text = str(inspect_store(store))
    assert (
        f"model layout nq 35, nv 32, {model.njnt} joints, {model.nbody} bodies, "
        f"fingerprint {recorded['fingerprint'][:12]}"
    ) in text


def test_reordered_bodies_are_refused(model_store, cassie_xml):
    swapped = _swapped_legs(cassie_xml).compile()
    with pytest.raises(ModelError) as err:
        TrajectoryStore(model_store).check_model(swapped)
    msg = str(err.value)
    from trajopt_loader.store.inspect import inspect_store

    notes = inspect_store(TrajectoryStore(model_store), model_path=cassie_xml, keys=()).notes
    assert not any("model layout" in n for n in notes)
    assert "source 'cassie'" in msg and "than model 'cassie'" in msg and "\n" not in msg
    assert "body_names[2] (body 2) is 'left-hip-roll' in the store but 'right-hip-roll'" in msg
    assert "re-export" in msg


def test_wrong_nq_is_refused_by_make_dataset(model_store, cassie_xml, tmp_path):
    spec = mujoco.MjSpec.from_file(str(cassie_xml))
    arm = spec.body("cassie-pelvis").add_body(name="extra-arm")
    arm.add_joint(name="extra-hinge", type=mujoco.mjtJoint.mjJNT_HINGE, range=[-1, 1])
    arm.add_geom(size=[0.01, 0, 0])
    extra = _save(spec, cassie_xml, tmp_path / "cassie_plus.xml")
    config = load_config(
        overrides={
            "zarr_path": str(model_store),
            "num_envs": 2,
            "window_size": 4,
            "model_path": str(extra),
        }
    )
    with pytest.raises(
        ModelError,
        match=r"than model '.*cassie_plus.xml': nq is 35 in the store "
        r"but 36 in the model",
    ):
        make_dataset(config, process_index=0, process_count=1)
    config.model_path = str(cassie_xml)
    batch = next(iter(make_dataset(config, process_index=0, process_count=1)))
    assert batch["qpos"].shape == (2, 4, 35)


def test_store_without_layout_warns_once(cassie_store, cassie_xml):
    store = TrajectoryStore(cassie_store)
    assert store.model_layout("cassie") is None
    with pytest.warns(UserWarning, match="store has no recorded model layout"):
        store.check_model(cassie_xml)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store.check_model(cassie_xml)  # once per store object
    from trajopt_loader.store.inspect import format_report, inspect_store

    assert "model layout not recorded" in format_report(inspect_store(store, keys=("qpos",)))


def test_other_layout_into_a_source_is_refused(model_store, cassie_xml, shared_data, tmp_path):
    from trajopt_loader.errors import ExportError

    out = tmp_path / "s.zarr"
    shutil.copytree(model_store, out)
    swapped = _save(_swapped_legs(cassie_xml), cassie_xml, tmp_path / "cassie_swapped.xml")
    root = tmp_path / "src" / "run"
    root.mkdir(parents=True)
    shutil.copy(shared_data / "cassie/trajopt/agility_reference/traj_2.npz", root)
    pre = make_export_preprocess(swapped, convention="mujoco")
    with pytest.raises(ExportError, match="source 'cassie' of .* another model layout"):
        export_npz(
            root.parent, out, source="cassie", convention="mujoco", preprocess=pre, progress=False
        )
    assert TrajectoryStore(out).motions("cassie") == ["walk"]  # nothing committed
    from trajopt_loader.store.inspect import inspect_store

    notes = inspect_store(TrajectoryStore(out), model_path=str(swapped), keys=()).notes
    assert any("body_names[2] (body 2) is 'left-hip-roll'" in n for n in notes)


def test_model_into_a_source_without_layout_records_none(
    cassie_store, cassie_xml, shared_data, tmp_path
):
    """Motions exported earlier without a model keep the source unrecorded (their model is
    unknown); the export says so."""
    out = tmp_path / "s.zarr"
    shutil.copytree(cassie_store, out)
    root = tmp_path / "src" / "again"
    root.mkdir(parents=True)
    shutil.copy(shared_data / "cassie/trajopt/agility_reference/traj_2.npz", root)
    pre = make_export_preprocess(cassie_xml, convention="mujoco")
    summary = export_npz(
        root.parent, out, source="cassie", convention="mujoco", preprocess=pre, progress=False
    )
    assert any("exported without a model" in w for w in summary.warnings)
    assert TrajectoryStore(out).model_layout("cassie") is None
