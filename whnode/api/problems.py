"""RFC 9457 problem documents: the one mapping from each error class to a status and a type.

Every error the public API answers with is an ``application/problem+json`` document whose
``type`` is one of ``PROBLEM_TYPES``. ``problem_for(exc)`` walks the exception's MRO and uses
the most specific class listed in ``ERROR_PROBLEMS``, so each class maps to exactly one status
and one problem type; anything unlisted is an internal error (500), logged and counted by the
API guards. The table in docs/api.md is generated from this module (``describe_problems``).

Members beyond RFC 9457's ``type``/``title``/``status``/``detail``/``instance``:
``dispensary_id`` (when the error concerns one), ``parameter`` (the offending query
parameter), ``retry_after`` (seconds, also sent as the Retry-After header) and ``available``
(media types offered, on 406).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from whnode.api.exceptions import (
    BodyNotAllowed,
    ClientRateLimited,
    InvalidParameter,
    NodeNotReady,
    NotAcceptable,
    QueryTooLong,
    RequestRefused,
)
from whnode.dht.exceptions import DhtError
from whnode.errors import RemoteError
from whnode.peer.exceptions import PeerError
from whnode.record.exceptions import ModelError, RecordError
from whnode.service.exceptions import MenuNotFound, NoOwnerReachable
from whnode.store.exceptions import StoreError
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamParseError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "ERROR_PROBLEMS",
    "HTTP_PROBLEMS",
    "INTERNAL_ERROR",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPES",
    "Problem",
    "ProblemType",
    "describe_problems",
    "problem_for",
    "problem_for_http",
    "problem_response",
]

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_PREFIX: Final = "urn:whnode:problem:"
DEFAULT_UPSTREAM_RETRY_AFTER: Final = 60
"""Retry-After seconds sent on upstream-rate-limited when the upstream named no delay."""
MAX_DETAIL_CHARS: Final = 500
"""Longest ``detail`` member sent (exception messages are truncated, never dumped whole)."""


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One kind of problem: a stable type URI, a status and a human title."""

    slug: str
    status: int
    title: str
    description: str
    """When it happens and what a client should do (docs table)."""

    @property
    def uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.slug


def _type(slug: str, status: int, title: str, description: str) -> ProblemType:
    return ProblemType(slug=slug, status=status, title=title, description=description)


INVALID_DISPENSARY_ID = _type(
    "invalid-dispensary-id",
    400,
    "Invalid dispensary id",
    "The dispensary id is not `vendor:store` (lowercase vendor, then up to 128 of "
    "`A-Za-z0-9._~-`). Fix the id; retrying will not help.",
)
INVALID_PARAMETER = _type(
    "invalid-parameter",
    400,
    "Invalid query parameter",
    "A query parameter is malformed, repeated, out of range or combined with one it excludes; "
    "`parameter` names it.",
)
BODY_NOT_ALLOWED = _type(
    "body-not-allowed",
    400,
    "Request body not allowed",
    "A GET or HEAD request carried a body. Send none.",
)
QUERY_TOO_LONG = _type(
    "query-too-long",
    414,
    "Query string too long",
    "The query string exceeds `MAX_QUERY_STRING_BYTES` (whnode.limits).",
)
NOT_ACCEPTABLE = _type(
    "not-acceptable",
    406,
    "Not acceptable",
    "No representation matches the Accept header; `available` lists the media types offered.",
)
RATE_LIMITED = _type(
    "rate-limited",
    429,
    "Too many requests",
    "This client (IP address; IPv6 by /64) exceeded its request rate. Wait `retry_after` "
    "seconds (also the Retry-After header).",
)
UNKNOWN_DISPENSARY = _type(
    "unknown-dispensary",
    404,
    "Unknown dispensary",
    "No upstream source is configured for the dispensary's vendor, or the upstream does not "
    "know the store. Remembered for `freshness.negative_ttl` seconds.",
)
MENU_NOT_FOUND = _type(
    "menu-not-found",
    404,
    "Menu not found",
    "No snapshot matches: e.g. nothing was current at the time given by `at`, or no history "
    "is held.",
)
UPSTREAM_REFUSED = _type(
    "upstream-refused",
    502,
    "Upstream refused",
    "The upstream menu API refused the fetch (403, 406, a block page). whnode backs off and "
    "does not retry at once.",
)
UPSTREAM_BAD_RESPONSE = _type(
    "upstream-bad-response",
    502,
    "Upstream answered badly",
    "The upstream menu API answered with an error status or an unusable body.",
)
UPSTREAM_PARSE_ERROR = _type(
    "upstream-parse-error",
    502,
    "Upstream menu could not be parsed",
    "The upstream answer could not be turned into a menu (the vendor changed its format?).",
)
UPSTREAM_FAILED = _type(
    "upstream-failed",
    502,
    "Upstream failed",
    "The upstream fetch failed for another reason.",
)
UPSTREAM_RATE_LIMITED = _type(
    "upstream-rate-limited",
    503,
    "Upstream rate-limited",
    "The upstream menu API is rate-limiting whnode. Retry after `retry_after` seconds "
    "(also the Retry-After header).",
)
UPSTREAM_UNAVAILABLE = _type(
    "upstream-unavailable",
    503,
    "Upstream unavailable",
    "The upstream host is considered down (circuit breaker open) or this node makes no "
    "upstream calls, and no usable snapshot exists.",
)
UPSTREAM_TIMEOUT = _type(
    "upstream-timeout",
    504,
    "Upstream timed out",
    "The upstream menu API did not answer in time.",
)
NO_OWNER_REACHABLE = _type(
    "no-owner-reachable",
    503,
    "No owner reachable",
    "None of the nodes owning the dispensary answered before the request deadline.",
)
DEADLINE_EXCEEDED = _type(
    "deadline-exceeded",
    504,
    "Deadline exceeded",
    "The request could not be answered within `node.request_deadline` seconds.",
)
RECORD_REJECTED = _type(
    "record-rejected",
    502,
    "Record rejected",
    "A record obtained from a peer or from storage failed validation (signature, sizes, "
    "timestamps, trust policy) and no valid one was available.",
)
PEER_FAILED = _type(
    "peer-failed",
    502,
    "Peer failed",
    "A peer node's answer was unusable.",
)
ROUTING_FAILED = _type(
    "routing-failed",
    503,
    "Routing failed",
    "The DHT lookup of the dispensary's owners failed.",
)
STORE_UNAVAILABLE = _type(
    "store-unavailable",
    503,
    "Store unavailable",
    "The node's local store failed (disk full, file damaged or unreadable).",
)
REMOTE_FAILED = _type(
    "remote-failed",
    502,
    "Remote failure",
    "A peer, file or upstream misbehaved in a way not listed above.",
)
NODE_NOT_READY = _type(
    "node-not-ready",
    503,
    "Node not ready",
    "The node is starting, stopping or cut off from the network (`/healthz`, `/readyz`).",
)
NOT_FOUND = _type(
    "not-found",
    404,
    "Not found",
    "No resource at this path.",
)
METHOD_NOT_ALLOWED = _type(
    "method-not-allowed",
    405,
    "Method not allowed",
    "The path exists but not with this method; the Allow header lists those that do.",
)
CONTENT_TOO_LARGE = _type(
    "content-too-large",
    413,
    "Content too large",
    "The request body exceeds the size accepted.",
)
BAD_REQUEST = _type(
    "bad-request",
    400,
    "Bad request",
    "The HTTP request is malformed.",
)
INTERNAL_ERROR = _type(
    "internal-error",
    500,
    "Internal error",
    "A bug in the node. It is logged and counted (`whnode_http_unexpected_errors_total`); "
    "the detail never includes internals.",
)

ERROR_PROBLEMS: Final[tuple[tuple[type[BaseException], ProblemType], ...]] = (
    (ModelError, INVALID_DISPENSARY_ID),
    (InvalidParameter, INVALID_PARAMETER),
    (BodyNotAllowed, BODY_NOT_ALLOWED),
    (QueryTooLong, QUERY_TOO_LONG),
    (NotAcceptable, NOT_ACCEPTABLE),
    (ClientRateLimited, RATE_LIMITED),
    (RequestRefused, BAD_REQUEST),
    (UnknownDispensary, UNKNOWN_DISPENSARY),
    (MenuNotFound, MENU_NOT_FOUND),
    (UpstreamRefused, UPSTREAM_REFUSED),
    (UpstreamBadResponse, UPSTREAM_BAD_RESPONSE),
    (UpstreamParseError, UPSTREAM_PARSE_ERROR),
    (UpstreamRateLimited, UPSTREAM_RATE_LIMITED),
    (UpstreamUnavailable, UPSTREAM_UNAVAILABLE),
    (UpstreamTimeout, UPSTREAM_TIMEOUT),
    (UpstreamError, UPSTREAM_FAILED),
    (NoOwnerReachable, NO_OWNER_REACHABLE),
    (TimeoutError, DEADLINE_EXCEEDED),
    (RecordError, RECORD_REJECTED),
    (PeerError, PEER_FAILED),
    (DhtError, ROUTING_FAILED),
    (StoreError, STORE_UNAVAILABLE),
    (NodeNotReady, NODE_NOT_READY),
    (RemoteError, REMOTE_FAILED),
)
"""Exception class → problem type; the most specific class in an exception's MRO wins."""

HTTP_PROBLEMS: Final[tuple[tuple[type[web.HTTPException], ProblemType], ...]] = (
    (web.HTTPNotFound, NOT_FOUND),
    (web.HTTPMethodNotAllowed, METHOD_NOT_ALLOWED),
    (web.HTTPRequestEntityTooLarge, CONTENT_TOO_LARGE),
    (web.HTTPBadRequest, BAD_REQUEST),
)
"""aiohttp's own HTTP errors (routing, body size) → problem type; others use about:blank."""

_BY_CLASS: Final[dict[type[BaseException], ProblemType]] = {
    **dict(ERROR_PROBLEMS),
    **dict(HTTP_PROBLEMS),
}

PROBLEM_TYPES: Final[tuple[ProblemType, ...]] = tuple(
    dict.fromkeys([*(p for _, p in ERROR_PROBLEMS), *(p for _, p in HTTP_PROBLEMS), INTERNAL_ERROR])
)
"""Every problem type the API can answer with (plus about:blank for unlisted HTTP errors)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem document, ready to be sent."""

    type: ProblemType | None
    """None means ``about:blank`` (an HTTP status with no further meaning)."""
    status: int
    detail: str
    extensions: Mapping[str, Any]
    headers: Mapping[str, str]

    @property
    def type_uri(self) -> str:
        return "about:blank" if self.type is None else self.type.uri

    @property
    def title(self) -> str:
        if self.type is not None:
            return self.type.title
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Error"

    def document(self, instance: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail[:MAX_DETAIL_CHARS],
        }
        if instance is not None:
            body["instance"] = instance
        body.update(self.extensions)
        return body


def _retry_after_seconds(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return max(1, math.ceil(value))


def problem_for(exc: BaseException) -> Problem:
    """The problem document for ``exc`` (INTERNAL_ERROR when its class is not listed)."""
    problem_type = INTERNAL_ERROR
    for cls in type(exc).__mro__:
        found = _BY_CLASS.get(cls)
        if found is not None:
            problem_type = found
            break
    if isinstance(exc, web.HTTPException):
        return problem_for_http(exc)
    extensions: dict[str, Any] = {}
    headers: dict[str, str] = {}
    dispensary_id = getattr(exc, "dispensary_id", None)
    if isinstance(dispensary_id, str):
        extensions["dispensary_id"] = dispensary_id
    if isinstance(exc, InvalidParameter):
        extensions["parameter"] = exc.parameter
    if isinstance(exc, NotAcceptable):
        extensions["available"] = list(exc.available)
    if isinstance(exc, NodeNotReady):
        extensions.update(exc.members)
    retry_after: int | None = None
    if isinstance(exc, ClientRateLimited | UpstreamRateLimited | UpstreamUnavailable):
        retry_after = _retry_after_seconds(exc.retry_after)
        if retry_after is None and isinstance(exc, UpstreamRateLimited):
            retry_after = DEFAULT_UPSTREAM_RETRY_AFTER
    if retry_after is not None:
        extensions["retry_after"] = retry_after
        headers["Retry-After"] = str(retry_after)
    if problem_type is INTERNAL_ERROR:
        detail = "internal error; it has been logged"
    elif problem_type is DEADLINE_EXCEEDED and not str(exc):
        detail = "the request deadline passed"
    else:
        detail = str(exc) or problem_type.title
    return Problem(
        type=problem_type,
        status=problem_type.status,
        detail=detail,
        extensions=extensions,
        headers=headers,
    )


_PASSED_HEADERS: Final = ("Allow", "Retry-After")


def problem_for_http(exc: web.HTTPException) -> Problem:
    """The problem document for an aiohttp HTTP error (404 from routing, 405, 413...)."""
    problem_type: ProblemType | None = None
    for cls in type(exc).__mro__:
        found = _BY_CLASS.get(cls)
        if found is not None:
            problem_type = found
            break
    status = exc.status
    if problem_type is not None and problem_type.status != status:
        problem_type = None
    headers = {name: exc.headers[name] for name in _PASSED_HEADERS if name in exc.headers}
    extensions: dict[str, Any] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        extensions["allowed"] = sorted(exc.allowed_methods)
    detail = exc.reason or (problem_type.title if problem_type is not None else "")
    return Problem(
        type=problem_type, status=status, detail=detail, extensions=extensions, headers=headers
    )


def problem_response(problem: Problem, *, instance: str | None) -> web.Response:
    """An ``application/problem+json`` response for ``problem``."""
    body = json.dumps(problem.document(instance), separators=(",", ":")).encode()
    return web.Response(
        status=problem.status,
        body=body,
        content_type=PROBLEM_MEDIA_TYPE,
        headers={"Cache-Control": "no-store", **problem.headers},
    )


def describe_problems() -> list[tuple[str, int, str, str, str]]:
    """(type URI, status, title, exception classes, description) for each problem type."""
    classes: dict[str, list[str]] = {}
    for cls, problem_type in (*ERROR_PROBLEMS, *HTTP_PROBLEMS):
        classes.setdefault(problem_type.slug, []).append(f"{cls.__module__}.{cls.__qualname__}")
    classes.setdefault(INTERNAL_ERROR.slug, []).append("any other exception")
    return [
        (
            problem_type.uri,
            problem_type.status,
            problem_type.title,
            ", ".join(classes[problem_type.slug]),
            problem_type.description,
        )
        for problem_type in PROBLEM_TYPES
    ]
