"""The JAX twin of the body references equals the numpy version."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from trajopt_loader.transforms.references_bodies import compute_body_references
from trajopt_loader.transforms.references_bodies_jax import compute_body_references_jax


def test_jax_twin_matches_numpy():
    rng = np.random.default_rng(2)
    e, t, nb = 3, 6, 5
    pos = rng.standard_normal((e, t, nb, 3)).astype(np.float32)
    quat = Rotation.random(e * t * nb, random_state=4).as_quat(scalar_first=True)
    quat = quat.reshape(e, t, nb, 4).astype(np.float32)
    lin, ang = (rng.standard_normal((e, t, nb, 3)).astype(np.float32) for _ in range(2))
    valid = np.ones((e, t), bool)
    valid[0, 4:] = False
    valid[2] = False
    want = compute_body_references(pos, quat, lin, ang, 1, valid=valid)
    got = compute_body_references_jax(pos, quat, lin, ang, 1, valid=valid)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key].dtype == np.float32
        np.testing.assert_allclose(np.asarray(got[key]), value, atol=2e-5, err_msg=key)
