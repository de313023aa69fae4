"""The public facade: every name in __all__ resolves, is documented, imports lazily, and is
listed by its namespace too."""

import importlib
import inspect
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


@pytest.mark.slow
def test_import_is_lazy():
    code = (
        "import sys, trajopt_loader; "
        "print(sorted(m for m in ('jax', 'grain', 'mujoco', 'zarr', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _namespace(name: str) -> str:
    module = trajopt_loader._MODULE_OF[name]
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("name", trajopt_loader.__all__)
def test_every_public_name_is_listed_by_its_namespace(name):
    namespace = importlib.import_module(_namespace(name))
    assert namespace.__name__ in trajopt_loader.NAMESPACES
    assert name in namespace.__all__, f"{namespace.__name__}.__all__ lacks {name}"
    assert getattr(namespace, name) is getattr(trajopt_loader, name)


@pytest.mark.parametrize("namespace", trajopt_loader.NAMESPACES)
def test_every_namespace_name_resolves(namespace):
    module = importlib.import_module(namespace)
    assert len(set(module.__all__)) == len(module.__all__), f"{namespace}.__all__ repeats a name"
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{namespace}.{name}"


def test_errors_namespace_holds_every_error_class():
    import trajopt_loader.errors as errors
    import trajopt_loader.viz.render  # noqa: F401  (defines no error class of its own)

    classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.TrajoptLoaderError)
    }
    assert classes == set(errors.__all__)
    for module in ("trajopt_loader.viz", "trajopt_loader.viz.render"):
        own = {
            n
            for n, v in vars(importlib.import_module(module)).items()
            if inspect.isclass(v) and issubclass(v, Exception) and v.__module__ == module
        }
        assert not own, (
            f"{module} defines error classes {own}; they belong in trajopt_loader.errors"
        )
