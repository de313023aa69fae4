"""The JSON form of failure statistics (``get_state()["feedback"]``), exact to the bit.

::

    {"version": 1, "bins": n_bins,
     "folded": F,                  # reports folded so far (batches 0 .. F-1)
     "base_index": B,              # the statistics after B folds ...
     "base": "<base64>",           # ... float64 little-endian bytes: restored bit-exactly
     "counts": [[j, [bin, ...], [count, ...]], ...],   # batches B .. F-1 (sparse failure counts)
     "pending": [[j, bins, counts], ...]}              # reports received ahead of order

Refolding ``counts`` from ``base`` repeats the same float64 operations in the same order, so a
restored :class:`~trajopt_loader.pipeline.feedback.FailureFeedback` holds bit-identical
statistics (and draws bit-identical starts).
"""

from __future__ import annotations

import base64

import numpy as np

from trajopt_loader.errors import CheckpointError

__all__ = ["STATE_VERSION", "pack_state", "parse_state"]

STATE_VERSION = 1
Reports = dict[int, tuple[np.ndarray, np.ndarray]]  # batch -> (bins int64, counts int64)


def _rows(table: Reports) -> list:
    return [[j, table[j][0].tolist(), table[j][1].tolist()] for j in sorted(table)]


def pack_state(
    bins: int, folded: int, base_index: int, base: np.ndarray, counts: Reports, pending: Reports
) -> dict:
    """The JSON dict of statistics ``base`` (float64 ``[bins]`` after ``base_index`` folds), the
    reports folded since (``counts``, batches ``base_index .. folded - 1``) and ``pending``."""
    text = base64.b64encode(np.ascontiguousarray(base, "<f8").tobytes()).decode("ascii")
    return {
        "version": STATE_VERSION,
        "bins": int(bins),
        "folded": int(folded),
        "base_index": int(base_index),
        "base": text,
        "counts": _rows({j: c for j, c in counts.items() if j >= base_index}),
        "pending": _rows(pending),
    }


def parse_state(state, bins: int) -> tuple[int, np.ndarray, Reports]:
    """``(base_index, base float64 [bins], reports)`` of a :func:`pack_state` dict, ``reports``
    holding ``counts`` and ``pending`` together (to fold in batch order).

    Raises:
      CheckpointError: malformed, another version, another number of bins, or counts that do
        not cover ``base_index .. folded - 1``; names what is wrong.
    """
    try:
        if state["version"] != STATE_VERSION or state["bins"] != bins:
            raise CheckpointError(
                f"version {state['version']} with {state['bins']} bins; this "
                f"stream has version {STATE_VERSION} with {bins} bins"
            )
        base_index, folded = int(state["base_index"]), int(state["folded"])
        base = np.frombuffer(
            base64.b64decode(state["base"].encode("ascii"), validate=True), "<f8"
        ).astype(np.float64)
        if base.size != bins:
            raise CheckpointError(f"base holds {base.size} bins, expected {bins}")

        def unpack(rows):
            return {int(j): (np.asarray(b, np.int64), np.asarray(c, np.int64)) for j, b, c in rows}

        counts, pending = unpack(state["counts"]), unpack(state["pending"])
        if sorted(counts) != list(range(base_index, folded)):
            raise CheckpointError(
                f"counts of batches {sorted(counts)}, expected {base_index}..{folded - 1}"
            )
    except CheckpointError as e:
        raise CheckpointError(f"feedback state does not fit this stream: {e}") from e
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(
            f"feedback state is malformed ({type(e).__name__}: {e}); pass "
            "the state saved by it.get_state()"
        ) from e
    return base_index, base, {**counts, **pending}
