"""The model layout entry of the store index: recorded by export, checked against a model at load.

An export with a model records ``index["sources"][source]["model_layout"]`` (the layout itself is
defined in :mod:`trajopt_loader.kinematics.model_layout`): a source holds the data of one model,
so another layout for an existing source is refused, and a source that already has motions
exported without a model stays unrecorded (their model is unknown). At load,
:func:`check_store` (``TrajectoryStore.check_model``) compares the recorded layouts with the
environment's model. MuJoCo is imported only when a recorded layout is compared.
"""

from __future__ import annotations

import os
import warnings

from trajopt_loader.errors import ExportError

__all__ = ["check_export_layout", "check_store", "record_layout"]


def check_export_layout(src: dict, layout_attrs: dict | None, out: str, source: str) -> dict | None:
    """The layout recorded for the source entry ``src`` (or None).

    Raises:
      ExportError: ``layout_attrs`` (the export model's layout, or None for none) differs from
        the recorded one; names both sizes and the fix.
    """
    old = src.get("model_layout")
    if (
        layout_attrs is not None
        and old is not None
        and old.get("fingerprint") != layout_attrs["fingerprint"]
    ):
        raise ExportError(
            f"source {source!r} of {out} was exported with another model layout "
            f"(nq={old.get('nq')}, nv={old.get('nv')}, nbody={old.get('nbody')}) "
            f"than this --model (nq={layout_attrs['nq']}, nv={layout_attrs['nv']}, "
            f"nbody={layout_attrs['nbody']}); export to another source name."
        )
    return old


def record_layout(
    src: dict,
    layout_attrs: dict | None,
    new_source: bool,
    out: str,
    source: str,
    warnings_out: list,
) -> None:
    """Record ``layout_attrs`` in the source entry ``src`` (module docstring); appends to
    ``warnings_out`` when an existing source without a layout stays unrecorded. Raises as
    :func:`check_export_layout`."""
    if layout_attrs is None:
        return
    old = check_export_layout(src, layout_attrs, out, source)
    if old is None and not new_source:
        warnings_out.append(
            f"source {source!r} has motions exported without a model; its model "
            "layout stays unrecorded (export to a new source to record it)."
        )
        return
    src["model_layout"] = layout_attrs


def check_store(store, model, sources) -> None:
    """Compare the layouts ``store`` recorded for ``sources`` with ``model`` (a ``MjModel`` or an
    MJCF path; loaded only when some source has a recorded layout).

    Raises:
      ModelError: the first differing field of the first differing source (one line, with fix).
    Warns (once per store object): some of ``sources`` have no recorded layout.
    """
    layouts = {s: store.model_layout(s) for s in sources}
    unrecorded = [s for s, recorded in layouts.items() if recorded is None]
    if len(unrecorded) < len(layouts):
        from trajopt_loader.kinematics.model_layout import as_model, check_model_layout

        label = f"model {os.fspath(model)!r}" if isinstance(model, (str, os.PathLike)) else None
        model = as_model(model)
        for source, recorded in layouts.items():
            if recorded is not None:
                check_model_layout(recorded, model, f"source {source!r} of {store.path}", label)
    if unrecorded and not getattr(store, "_warned_layout", False):
        store._warned_layout = True
        warnings.warn(
            f"store has no recorded model layout for source(s) {unrecorded} of "
            f"{store.path}; cannot check their joint / body order against the model. "
            "Re-export with --model MODEL.xml to record it.",
            stacklevel=3,
        )
