"""Error classes of trajopt-loader.

Every error subclasses :class:`TrajoptLoaderError` *and* the builtin a caller would naturally
catch (``FileNotFoundError``, ``ValueError``, ``KeyError``, ``IndexError``), following the
pattern of zarr-python's ``zarr.errors``. Messages name the file / key / value at fault, what was
expected, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "TrajoptLoaderError",
    "StoreNotFoundError",
    "StoreFormatError",
    "DataIntegrityError",
    "StoreReadError",
    "ExportError",
    "ConventionError",
    "MissingKeyError",
    "WindowIndexError",
    "ConfigError",
    "ShardingError",
    "IndexOverflowError",
    "CheckpointError",
    "RobotSpecError",
    "ReferenceInputError",
    "ModelError",
    "ModelNotFoundError",
    "CheckpointNotFoundError",
    "EnvNotAssignedError",
    "VizDependencyError",
    "GLBackendError",
    "FeedbackTimeoutError",
]


class TrajoptLoaderError(Exception):
    """Base class of every error raised by trajopt-loader."""


class StoreNotFoundError(TrajoptLoaderError, FileNotFoundError):
    """A Zarr store (or a group inside it) does not exist at the given path or URL."""


class StoreFormatError(TrajoptLoaderError, ValueError):
    """A Zarr store exists but is not a trajopt-loader store, or has an unsupported format
    version."""


class DataIntegrityError(TrajoptLoaderError, ValueError):
    """Stored data is missing or damaged: a chunk is absent, fails its checksum, cannot be decoded,
    or does not match the shape / dtype the store's index records.

    The message names the store, trajectory, key and chunk, and the fix (``trajopt-loader verify
    STORE``; re-export the data). Never raised for data that reads back as written.
    """


class StoreReadError(TrajoptLoaderError, OSError):
    """Reading a store over the network failed after its retries (timeout, connection error).

    The message names the URL, the timeout and the number of attempts.
    """


class ExportError(TrajoptLoaderError, ValueError):
    """An input ``.npz`` file or export option is invalid; nothing was written to the store."""

    @classmethod
    def for_input(cls, file: str, key: str | None, what: str, expected: str, fix: str):
        """``"FILE: key 'KEY': WHAT; expected EXPECTED. Fix: FIX"`` (the one-line input error)."""
        where = f"{file}: key {key!r}" if key else file
        return cls(f"{where}: {what}; expected {expected}. Fix: {fix}")


class ConventionError(TrajoptLoaderError, ValueError):
    """A quaternion order or velocity frame is unknown, missing, or inconsistent."""


class MissingKeyError(TrajoptLoaderError, KeyError):
    """A requested array key (``qpos``, ``ee_pos``, ...) is not in the store or window."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable.
        return str(self.args[0]) if self.args else ""


class WindowIndexError(TrajoptLoaderError, IndexError):
    """A step index is outside ``[0, length)`` of its trajectory and wrapping is off.

    When raised by a gather, ``row`` (env row of the request), ``step``, ``length`` and ``path``
    (the trajectory) say where, so callers can re-word the message in their own terms.
    """

    def __init__(
        self,
        message: str,
        *,
        row: int | None = None,
        step: int | None = None,
        length: int | None = None,
        path: str | None = None,
    ):
        super().__init__(message)
        self.row, self.step, self.length, self.path = row, step, length, path


class ConfigError(TrajoptLoaderError, ValueError):
    """A configuration field has an invalid value or an unknown name."""


class ShardingError(TrajoptLoaderError, ValueError):
    """The env axis cannot be split over the JAX processes / devices as asked."""


class IndexOverflowError(TrajoptLoaderError, OverflowError):
    """An integer array bound for the device does not fit int32 while ``jax_enable_x64`` is off."""


class CheckpointError(TrajoptLoaderError, ValueError):
    """An iterator state cannot be saved (not JSON-serializable) or a saved state is unreadable."""


class RobotSpecError(TrajoptLoaderError, ValueError):
    """A robot spec is inconsistent with itself or with its MuJoCo model (index, joint, site
    name)."""


class ReferenceInputError(TrajoptLoaderError, ValueError):
    """Input of reference building is invalid: wrong shape, non-finite or zero-norm base
    quaternion."""


class ModelError(TrajoptLoaderError, ValueError):
    """A MuJoCo model cannot be loaded, or does not fit the data (``nq``, sites, floating base)."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A MuJoCo model file (MJCF ``.xml``) does not exist at the given path."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No saved iterator state (file, or step of a checkpoint manager) exists where one was asked
    for."""


class EnvNotAssignedError(TrajoptLoaderError, ValueError):
    """An env was asked for data before a trajectory was assigned to it (``update_references``)."""


class VizDependencyError(TrajoptLoaderError, ImportError):
    """An optional package of the ``[viz]`` extra (matplotlib, imageio, ...) is not installed."""


class GLBackendError(TrajoptLoaderError, RuntimeError):
    """MuJoCo's offscreen renderer cannot create an OpenGL context (headless GL library missing)."""


class FeedbackTimeoutError(TrajoptLoaderError, TimeoutError):
    """A batch of an adaptive stream needs a failure report that did not arrive within
    ``adaptive.report_timeout_s`` (``pipeline/feedback.py``)."""
