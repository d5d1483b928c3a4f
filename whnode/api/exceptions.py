"""Exceptions of the public HTTP API layer.

::

    RemoteError
    ├── RequestRefused          the HTTP request was refused before reaching the service
    │   ├── InvalidParameter    a query parameter is malformed or out of range
    │   ├── QueryTooLong        the query string exceeds limits.MAX_QUERY_STRING_BYTES
    │   ├── BodyNotAllowed      a GET/HEAD request carried a body
    │   ├── NotAcceptable       no representation matches the Accept header
    │   └── ClientRateLimited   the client's token bucket is empty (retry_after)
    └── NodeNotReady            the node cannot answer yet (starting, or cut off the network)

Each class maps to one status and one problem type in ``whnode.api.problems``.
"""

from __future__ import annotations

from collections.abc import Mapping

from whnode.errors import RemoteError

__all__ = [
    "BodyNotAllowed",
    "ClientRateLimited",
    "InvalidParameter",
    "NodeNotReady",
    "NotAcceptable",
    "QueryTooLong",
    "RequestRefused",
]


class RequestRefused(RemoteError):
    """The HTTP client sent a request that the API refuses."""


class InvalidParameter(RequestRefused):
    """A query parameter is malformed or out of range."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class QueryTooLong(RequestRefused):
    """The query string is longer than the API accepts."""


class BodyNotAllowed(RequestRefused):
    """A request that takes no body (GET, HEAD) carried one."""


class NotAcceptable(RequestRefused):
    """No representation of the resource matches the request's Accept header."""

    def __init__(self, message: str, *, available: tuple[str, ...]) -> None:
        super().__init__(message)
        self.available = available


class ClientRateLimited(RequestRefused):
    """The client exceeded its request rate; it may retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NodeNotReady(RemoteError):
    """The node cannot answer menu requests now (starting up, or no network).

    ``members`` are added to the problem document (a seed's ``/healthz`` says who it is)."""

    def __init__(self, message: str = "", *, members: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.members: Mapping[str, object] = members or {}
