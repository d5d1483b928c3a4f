"""Exceptions of the upstream layer: one tree, each naming the source and the dispensary.

::

    RemoteError                       (whnode.errors)
    └── UpstreamError                 an upstream menu API could not give a usable menu
        ├── UpstreamRefused           the upstream refused us: 401, 403, 406, an HTML block page
        ├── UpstreamRateLimited       429 or our own per-host pacing; ``retry_after`` seconds
        ├── UpstreamTimeout           a request timed out, or the menu deadline was reached
        ├── UpstreamBadResponse       an answer we cannot use: 5xx, other 4xx, truncated,
        │                             oversized, empty, a redirect
        ├── UpstreamParseError        the pages could not be parsed into a menu (or the parse
        │                             worker died on them)
        ├── UpstreamUnavailable       the host cannot be reached now (connection refused, reset)
        │   └── UpstreamCircuitOpen   the host's circuit breaker is open: no request was sent
        └── UnknownDispensary         no configured source serves this dispensary, or the
                                      upstream does not know it (HTTP 404)

Every error carries ``source`` (the vendor, e.g. ``"weedmaps"``), ``dispensary_id``, and when
known ``host`` and the HTTP ``status``. ``str(error)`` names them all; it never contains
request headers or query strings, where credentials live.

``UnknownDispensary`` is a ``RemoteError``, not a ``UsageError``: a malformed dispensary id is
refused earlier by ``whnode.record.model.parse_dispensary_id`` (``ModelError``); a well-formed
id that no source serves is a fact about the world outside this process, which the service
remembers for a while and answers with 404.

Errors cross process boundaries (parse workers raise ``UpstreamParseError``): ``__reduce__``
keeps their keyword-only attributes through pickling.
"""

from __future__ import annotations

from typing import Any

from whnode.errors import RemoteError

__all__ = [
    "AdapterParseError",
    "AdapterRefusal",
    "UnknownDispensary",
    "UpstreamBadResponse",
    "UpstreamCircuitOpen",
    "UpstreamError",
    "UpstreamParseError",
    "UpstreamRateLimited",
    "UpstreamRefused",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


def _restore(cls: type[UpstreamError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Rebuild an UpstreamError unpickled in another process (see ``__reduce__``)."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class UpstreamError(RemoteError):
    """An upstream menu API could not give a usable menu.

    ``message`` is the bare explanation; ``str(error)`` prefixes it with the source, the host
    and the dispensary.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        dispensary_id: str,
        host: str | None = None,
        status: int | None = None,
    ) -> None:
        where = f"{source} ({host})" if host else source
        super().__init__(f"{where} {dispensary_id}: {message}")
        self.message = message
        self.source = source
        self.dispensary_id = dispensary_id
        self.host = host
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class UpstreamRefused(UpstreamError):
    """The upstream refused to serve us (401, 403, 406, or an HTML page instead of JSON).

    Not retried: asking again at once is what gets callers blocked. It counts toward the
    host's circuit breaker. Not to be confused with a refused TCP connection, which is
    ``UpstreamUnavailable``.
    """


class UpstreamRateLimited(UpstreamError):
    """Too many requests: the upstream answered 429, or waiting for our own per-host pace
    (or the upstream's Retry-After) would run past the deadline.

    ``retry_after`` is the number of seconds after which asking again is welcome, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        dispensary_id: str,
        host: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, source=source, dispensary_id=dispensary_id, host=host, status=status
        )
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    """A request took longer than its timeout, or the menu's deadline was reached."""


class UpstreamBadResponse(UpstreamError):
    """The upstream answered something unusable: a 5xx, a 4xx other than those that mean a
    refusal or a rate limit, a truncated, oversized or empty body, or a redirect."""


class UpstreamParseError(UpstreamError):
    """The fetched pages could not be turned into a menu, or the parse worker died on them."""


class UpstreamUnavailable(UpstreamError):
    """The host cannot be reached now (connection refused or reset, DNS failure).

    ``retry_after`` is the number of seconds after which trying again may succeed, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        dispensary_id: str,
        host: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, source=source, dispensary_id=dispensary_id, host=host, status=status
        )
        self.retry_after = retry_after


class UpstreamCircuitOpen(UpstreamUnavailable):
    """The host's circuit breaker is open after consecutive failures: nothing was sent.

    ``retry_after`` is the time left before the breaker lets one probe request through.
    """


class UnknownDispensary(UpstreamError):
    """No configured source serves this dispensary, or the upstream does not know it."""


class AdapterRefusal(UpstreamRefused):
    """The upstream refused inside an HTTP 200 (Dutchie's GraphQL ``errors`` array: an
    unknown persisted query, a rejected filter): not retried, like any refusal."""


class AdapterParseError(UpstreamParseError, ValueError):
    """A page is not what its API sends: broken JSON, or an envelope without the expected
    fields.

    Raised by the pure ``parse_pages`` functions and by pagination, which know neither the
    source nor the dispensary: the fetcher and the parse pool turn it into an
    ``UpstreamParseError`` naming them. A ``ValueError`` too, as any bad input."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        self.message = message
        self.source = ""
        self.dispensary_id = ""
        self.host = None
        self.status = None
