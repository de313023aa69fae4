"""Network behaviour of stores opened by URL: connect/read timeouts and bounded retries.

fsspec's HTTP filesystem (aiohttp) waits up to aiohttp's default of 5 minutes per request; a
server that accepts a connection and then stalls would hold a stream that long on every chunk.
Stores opened by ``http(s)://`` URL therefore get ``client_kwargs={"timeout":
aiohttp.ClientTimeout(sock_connect=timeout_s, sock_read=timeout_s)}`` unless the caller's
``storage_options`` set ``client_kwargs["timeout"]`` themselves (that one wins). Other protocols
keep their backend's own timeout options (s3fs: ``config_kwargs={"connect_timeout": ...,
"read_timeout": ...}``).

Every request of a read (open, chunk, presence check) is retried on a transient failure
(timeout, connection error, HTTP 429 / 5xx) ``retries`` times with exponential backoff
(``BACKOFF_S``, doubled each time), then fails with :class:`StoreReadError` naming the URL.
A 404 is not transient: zarr reads it as an absent chunk, which the integrity checks report; any
other HTTP error status (e.g. 403) fails at once with :class:`StoreReadError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from trajopt_loader.errors import StoreReadError
from trajopt_loader.store.layout import is_url

#: Default seconds to wait for a connection, and between bytes of a response (http(s) stores).
DEFAULT_TIMEOUT_S = 30.0
#: Default retries of a request that failed transiently (so up to 1 + retries attempts).
DEFAULT_RETRIES = 2
#: Wait before the first retry (s); doubled before each further one.
BACKOFF_S = 0.25

T = TypeVar("T")


def storage_options_for(url: str, storage_options: dict | None, timeout_s: float) -> dict:
    """fsspec ``storage_options`` for ``url`` with the default timeouts added (see module doc).

    Returns a new dict; ``storage_options`` is not modified. Only ``http://`` / ``https://`` URLs
    get ``client_kwargs["timeout"]`` (an ``aiohttp.ClientTimeout`` of ``timeout_s`` seconds for
    connecting and for each socket read; no cap on the whole transfer).
    """
    opts = dict(storage_options or {})
    if url.startswith(("http://", "https://")):
        client = dict(opts.get("client_kwargs") or {})
        if "timeout" not in client:
            import aiohttp

            client["timeout"] = aiohttp.ClientTimeout(
                total=None, sock_connect=float(timeout_s), sock_read=float(timeout_s)
            )
        opts["client_kwargs"] = client
    return opts


def is_transient(e: BaseException) -> bool:
    """True for failures worth retrying: timeouts, connection errors, HTTP 429 and 5xx."""
    if isinstance(e, (TimeoutError, ConnectionError)):
        return True
    try:
        import aiohttp
    except ImportError:  # no HTTP backend installed
        return False
    if isinstance(e, aiohttp.ClientResponseError):
        return e.status == 429 or e.status >= 500
    return isinstance(e, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError))


def retrying(url: str, retries: int, timeout_s: float) -> Callable[[Callable[[], T]], T]:
    """``attempt(fn)`` for the requests of ``url``: :func:`with_retries` for fsspec URLs, a plain
    call ``fn()`` for local paths (nothing to retry)."""
    if not is_url(url):
        return lambda fn: fn()
    return lambda fn: with_retries(fn, url, retries, timeout_s)


def with_retries(fn: Callable[[], T], url: str, retries: int, timeout_s: float) -> T:
    """``fn()``, retried ``retries`` times on a transient failure with exponential backoff.

    Raises:
      StoreReadError: still failing after ``1 + retries`` attempts (names ``url``, the error, the
        timeout and how to change timeout and retries), or at once on an HTTP error status that
        is not transient (e.g. 403). Other errors propagate unchanged.
    """
    for attempt in range(int(retries) + 1):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - filtered by is_transient
            if not is_transient(e):
                status = getattr(e, "status", None)  # e.g. aiohttp's 403: access, not damage
                if isinstance(status, int) and 400 <= status < 600:
                    raise StoreReadError(
                        f"reading {url} failed: HTTP {status} "
                        f"({type(e).__name__}: {e}); check the URL and access "
                        "(credentials, storage_options)."
                    ) from e
                raise
            if attempt == int(retries):
                raise StoreReadError(
                    f"reading {url} failed after {attempt + 1} attempt(s): {type(e).__name__}: "
                    f"{e or 'timed out'} (timeout {timeout_s:g} s per connect / read). Check that "
                    "the server is reachable; to wait longer or retry more pass "
                    "TrajectoryStore(timeout_s=..., retries=...) or set config.remote_timeout_s "
                    "/ config.remote_retries (or storage_options client_kwargs timeout)."
                ) from e
            time.sleep(BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")
