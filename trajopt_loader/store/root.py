"""Opening the root group of a trajopt-loader store (local path, ``file://`` or fsspec URL).

One place maps what zarr and fsspec raise on open to the project's errors: nothing there
(``StoreNotFoundError``), a missing fsspec backend (``ImportError`` naming the package), a server
that stalls past its timeout and retries (``StoreReadError``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import zarr

from trajopt_loader.errors import StoreNotFoundError, StoreReadError
from trajopt_loader.store import layout, remote


def open_root(
    path: str,
    storage_options: dict | None,
    timeout_s: float = remote.DEFAULT_TIMEOUT_S,
    retries: int = remote.DEFAULT_RETRIES,
):
    """The root group of ``path``, read-only, Zarr v3, from its consolidated metadata if present.

    ``zarr_format=3`` and ``use_consolidated=True`` let a remote store open with one request for
    ``zarr.json`` (which holds the metadata of every node, written by ``export_npz``): no probing
    for Zarr v2 files and no listing, so plain HTTP servers work. A store without consolidated
    metadata is opened node by node instead. URLs get timeouts and retries (:mod:`.remote`).
    """
    target = layout.local_path(path)
    url = layout.is_url(path)
    if not url and not Path(target).exists():
        raise StoreNotFoundError(
            f"no store at {path!r}; create one with `trajopt-loader export "
            f"ROOT {path} --source NAME --convention mujoco`."
        )
    kw = (
        {"storage_options": remote.storage_options_for(path, storage_options, timeout_s)}
        if url
        else {}
    )

    def open_group():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return zarr.open_group(target, mode="r", zarr_format=3, use_consolidated=True, **kw)
            except ValueError as e:
                if "onsolidated" not in str(e):
                    raise
                return zarr.open_group(
                    target, mode="r", zarr_format=3, use_consolidated=False, **kw
                )

    try:
        return remote.retrying(f"{path}/zarr.json", retries, timeout_s)(open_group)
    except StoreReadError as e:  # a stalled server; nothing listening is "not found" (below)
        if isinstance(e.__cause__, TimeoutError):
            raise
        raise StoreNotFoundError(f"cannot open {path!r}: {e}") from e
    except (FileNotFoundError, KeyError, zarr.errors.NodeNotFoundError) as e:
        raise StoreNotFoundError(
            f"no Zarr v3 group at {path!r} ({e}); expected a store written "
            "by `trajopt-loader export`."
        ) from None
    except ImportError as e:
        scheme = path.split("://", 1)[0]
        raise ImportError(
            f"cannot open {path!r}: {e}. Reading {scheme}:// stores needs the "
            "fsspec backend of that protocol (s3fs for s3://, gcsfs for gs://, "
            "aiohttp for http(s)://); pip install it."
        ) from e
    except OSError as e:  # e.g. connection refused, DNS failure, access denied
        raise StoreNotFoundError(
            f"cannot open {path!r}: {type(e).__name__}: {e}. Check the URL, "
            "that the server is reachable, and storage_options "
            "(credentials, endpoint_url)."
        ) from e
