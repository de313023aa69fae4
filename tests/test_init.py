"""The public facade: every name in __all__ resolves, is documented, and imports lazily."""

import subprocess
import sys

import pytest

import trajopt_loader


@pytest.mark.parametrize("name", trajopt_loader.__all__)
def test_every_public_name_resolves_and_has_a_docstring(name):
    value = getattr(trajopt_loader, name)
    if name not in ("MUJOCO", "PINOCCHIO"):  # constants: instances of a documented class
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"
    assert name in dir(trajopt_loader)


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'fetch_everything'"):
        trajopt_loader.fetch_everything  # noqa: B018


def test_import_is_lazy():
    code = ("import sys, trajopt_loader; "
            "print(sorted(m for m in ('jax', 'grain', 'mujoco', 'zarr') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
