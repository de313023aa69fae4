"""The predecessor's API: ``TrajoptLoader``, ``VectorizedTrajectoryDataset``,
``DoubleBufferStreamer``, ``DigitRefSpec``, ``build_refs_from_window``, ``DigitTrajoptRefBuilder``.

Names and signatures of the project this one replaces: its users' code runs with only the imports
changed (``from trajopt_loader import TrajoptLoader`` or ``from trajopt_loader.compat import ...``).
Thin layers over the store, the device transfer and the references:

* :mod:`~trajopt_loader.compat.loader` -- ``TrajoptLoader`` (export through ``export_npz``).
* :mod:`~trajopt_loader.compat.dataset` -- ``VectorizedTrajectoryDataset`` (per-env cursors, reads).
* :mod:`~trajopt_loader.compat.stream` -- ``DoubleBufferStreamer`` (host -> device double buffer).
* :mod:`~trajopt_loader.compat.refs` -- ``DigitRefSpec``, ``build_refs_from_window``,
  ``DigitTrajoptRefBuilder`` (references from windows or ``.npz`` files).
"""

from trajopt_loader.compat.dataset import VectorizedTrajectoryDataset, cfg_get
from trajopt_loader.compat.loader import TrajoptLoader
from trajopt_loader.compat.refs import DigitRefSpec, DigitTrajoptRefBuilder, build_refs_from_window
from trajopt_loader.compat.stream import DoubleBufferStreamer

__all__ = [
    "TrajoptLoader",
    "VectorizedTrajectoryDataset",
    "DoubleBufferStreamer",
    "DigitRefSpec",
    "build_refs_from_window",
    "DigitTrajoptRefBuilder",
    "cfg_get",
]
