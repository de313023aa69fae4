"""Error classes (trajopt_loader.errors) subclass both the package base and the natural builtin."""

import inspect

import pytest

from trajopt_loader import errors

EXPECTED_BUILTIN = {
    "StoreNotFoundError": FileNotFoundError,
    "StoreFormatError": ValueError,
    "ExportError": ValueError,
    "ConventionError": ValueError,
    "MissingKeyError": KeyError,
    "WindowIndexError": IndexError,
    "ConfigError": ValueError,
    "ShardingError": ValueError,
    "IndexOverflowError": OverflowError,
    "CheckpointError": ValueError,
    "CheckpointNotFoundError": FileNotFoundError,
    "ModelNotFoundError": FileNotFoundError,
    "ModelError": ValueError,
    "RobotSpecError": ValueError,
    "ReferenceInputError": ValueError,
    "EnvNotAssignedError": ValueError,
    "DataIntegrityError": ValueError,
    "StoreReadError": OSError,
    "VizDependencyError": ImportError,
    "GLBackendError": RuntimeError,
    "FeedbackTimeoutError": TimeoutError,
}


def test_every_error_class_is_listed_and_documented():
    classes = {
        n
        for n, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.TrajoptLoaderError) and c is not errors.TrajoptLoaderError
    }
    assert classes == set(EXPECTED_BUILTIN)
    assert all(getattr(errors, n).__doc__ for n in classes)


@pytest.mark.parametrize("name,builtin", sorted(EXPECTED_BUILTIN.items()))
def test_catchable_as_package_error_and_as_builtin(name, builtin):
    cls = getattr(errors, name)
    with pytest.raises(builtin):
        raise cls("x")
    with pytest.raises(errors.TrajoptLoaderError):
        raise cls("x")


def test_missing_key_message_is_not_quoted_like_a_bare_key_error():
    assert str(errors.MissingKeyError("key 'ee_pos' is missing")) == "key 'ee_pos' is missing"
    assert str(KeyError("key 'ee_pos' is missing")) == "\"key 'ee_pos' is missing\""
