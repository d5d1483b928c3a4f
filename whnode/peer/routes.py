"""The server side of the node-to-node HTTP protocol (see whnode.peer.wire).

Handlers are thin: they parse and cap the request, call the ``PeerHandler`` (the service),
and map each error class to one status and one problem ``kind``. Requests are rate-limited
per peer (remote address and the node id it announces).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import cbor2
from aiohttp import web

from whnode import limits
from whnode.errors import WhnodeError
from whnode.peer import wire
from whnode.peer.ratelimit import TokenBuckets
from whnode.record.exceptions import (
    AheadOfClock,
    LimitExceeded,
    ModelError,
    NotEntitled,
    PayloadMismatch,
    RecordError,
)
from whnode.record.model import parse_dispensary_id

__all__ = [
    "FillResult",
    "PeerHandler",
    "PeerProblem",
    "PeerRoute",
    "add_peer_routes",
    "error_status",
]

PeerRoute = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""A registered node-to-node route handler."""

LOG = logging.getLogger(__name__)


class PeerProblem(WhnodeError):
    """Raised by a PeerHandler to answer with a given status and error kind."""

    def __init__(self, message: str, *, status: int, kind: wire.ErrorKind) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass(frozen=True, slots=True)
class FillResult:
    """An owner's answer to a fill."""

    data: bytes
    fresh_until_ms: int
    stale: bool
    path: str


class PeerHandler(Protocol):
    """What the node-to-node endpoints need from the service."""

    async def peer_get(self, dispensary_id: str, at_ms: int | None) -> bytes | None: ...
    async def peer_put(self, dispensary_id: str, data: bytes) -> bool: ...
    async def peer_fill(
        self,
        dispensary_id: str,
        max_age: float | None,
        budget: float,
        *,
        attempt: int = 0,
        requested_at_ms: int | None = None,
    ) -> FillResult: ...
    async def peer_history(self, dispensary_id: str, limit: int) -> list[bytes]: ...
    def count_peer_error(self, kind: str) -> None: ...


def error_status(exc: BaseException) -> tuple[int, wire.ErrorKind]:
    """The one status and kind for each error class."""
    if isinstance(exc, LimitExceeded):
        return 413, wire.ErrorKind.TOO_LARGE
    if isinstance(exc, ModelError):
        return 400, wire.ErrorKind.BAD_REQUEST
    if isinstance(exc, PayloadMismatch):
        return 422, wire.ErrorKind.BAD_PAYLOAD
    if isinstance(exc, AheadOfClock):
        return 422, wire.ErrorKind.FUTURE_RECORD
    if isinstance(exc, NotEntitled):
        return 403, wire.ErrorKind.NOT_ENTITLED
    if isinstance(exc, RecordError):
        return 422, wire.ErrorKind.REJECTED_RECORD
    if isinstance(exc, PeerProblem):
        return exc.status, exc.kind
    if isinstance(exc, TimeoutError):
        return 504, wire.ErrorKind.DEADLINE
    return 500, wire.ErrorKind.INTERNAL


def _problem(status: int, kind: wire.ErrorKind, detail: str) -> web.Response:
    body = {
        "type": f"urn:whnode:peer:{kind.value}",
        "title": kind.value.replace("_", " "),
        "status": status,
        "kind": kind.value,
        "detail": detail[:500],
    }
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/problem+json"
    )


def add_peer_routes(
    app: web.Application,
    handler: PeerHandler,
    *,
    instrument: Callable[[str, PeerRoute], PeerRoute] | None = None,
) -> None:
    """Register /peer/v1 routes on ``app``; ``instrument(path, handler)``, when given, wraps
    each handler (the node counts their requests in its metrics)."""
    buckets = TokenBuckets(
        rate=limits.PEER_REQUESTS_PER_SECOND,
        burst=limits.PEER_REQUEST_BURST,
        max_keys=limits.MAX_TRACKED_SOURCES,
    )

    def fail(kind: wire.ErrorKind, status: int, detail: str) -> web.Response:
        handler.count_peer_error(kind.value)
        return _problem(status, kind, detail)

    def admit(request: web.Request) -> web.Response | None:
        key = (request.remote or "?", request.headers.get(wire.HEADER_NODE, "")[:40])
        if not buckets.take(key, time.monotonic()):
            return fail(wire.ErrorKind.RATE_LIMITED, 429, "peer request rate exceeded")
        if len(request.query_string) > limits.MAX_QUERY_STRING_BYTES:
            return fail(wire.ErrorKind.TOO_LARGE, 414, "query string too long")
        return None

    def dispensary(request: web.Request) -> str:
        return parse_dispensary_id(request.match_info["dispensary"])

    def int_param(request: web.Request, name: str, default: int | None) -> int | None:
        raw = request.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ModelError(f"{name} must be an integer") from None
        if value < 0:
            raise ModelError(f"{name} must be >= 0")
        return value

    async def guarded(request: web.Request, work: _Work) -> web.StreamResponse:
        refused = admit(request)
        if refused is not None:
            return refused
        try:
            return await work(request)
        except WhnodeError as exc:
            status, kind = error_status(exc)
            return fail(kind, status, str(exc))
        except TimeoutError:
            return fail(wire.ErrorKind.DEADLINE, 504, "deadline exceeded")
        except Exception:
            LOG.exception("peer handler failed")
            return fail(wire.ErrorKind.INTERNAL, 500, "internal error")

    async def get_record(request: web.Request) -> web.StreamResponse:
        d = dispensary(request)
        data = await handler.peer_get(d, int_param(request, "at", None))
        if data is None:
            return _problem(404, wire.ErrorKind.NOT_FOUND, "no record")
        return web.Response(body=data, content_type=wire.COSE_TYPE)

    async def put_record(request: web.Request) -> web.StreamResponse:
        d = dispensary(request)
        if request.content_length is not None and request.content_length > limits.MAX_RECORD_BYTES:
            raise LimitExceeded("record body too large")
        try:
            body = await request.read()  # bounded by the app's client_max_size
        except web.HTTPRequestEntityTooLarge:
            raise LimitExceeded("record body too large") from None
        if len(body) > limits.MAX_RECORD_BYTES:
            raise LimitExceeded("record body too large")
        created = await handler.peer_put(d, body)
        return web.Response(status=201 if created else 200)

    async def fill(request: web.Request) -> web.StreamResponse:
        d = dispensary(request)
        budget_ms = int_param(request, "budget_ms", 10_000) or 1
        budget = min(budget_ms, 120_000) / 1000.0
        raw_age = request.query.get("max_age")
        max_age: float | None = None
        if raw_age is not None:
            try:
                max_age = float(raw_age)
            except ValueError:
                raise ModelError("max_age must be a number") from None
            if not math.isfinite(max_age) or max_age < 0:
                raise ModelError("max_age must be finite and >= 0")
        attempt = int_param(request, "attempt", 0) or 0
        requested_at = int_param(request, "requested_at", None)
        async with asyncio.timeout(budget):
            answer = await handler.peer_fill(
                d, max_age, budget, attempt=attempt, requested_at_ms=requested_at
            )
        return web.Response(
            body=answer.data,
            content_type=wire.COSE_TYPE,
            headers={
                wire.HEADER_FRESH_UNTIL: str(answer.fresh_until_ms),
                wire.HEADER_STALE: "1" if answer.stale else "0",
                wire.HEADER_PATH: answer.path,
            },
        )

    async def history(request: web.Request) -> web.StreamResponse:
        d = dispensary(request)
        limit = min(int_param(request, "limit", 20) or 1, limits.MAX_HISTORY_ITEMS)
        items = await handler.peer_history(d, limit)
        if not items:
            return _problem(404, wire.ErrorKind.NOT_FOUND, "no history")
        return web.Response(body=cbor2.dumps(items), content_type=wire.CBOR_TYPE)

    def route(path: str, work: _Work) -> tuple[str, PeerRoute]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            return await guarded(request, work)

        return path, wrapped if instrument is None else instrument(path, wrapped)

    app.router.add_get(*route(wire.PREFIX + "/records/{dispensary}", get_record))
    app.router.add_put(*route(wire.PREFIX + "/records/{dispensary}", put_record))
    app.router.add_post(*route(wire.PREFIX + "/fill/{dispensary}", fill))
    app.router.add_get(*route(wire.PREFIX + "/history/{dispensary}", history))


class _Work(Protocol):
    async def __call__(self, request: web.Request) -> web.StreamResponse: ...
