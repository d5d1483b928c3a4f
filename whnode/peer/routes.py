"""The server side of the node-to-node HTTP protocol (see whnode.peer.wire).

Handlers are thin: they parse and cap the request, call the ``PeerHandler`` (the service),
and map each error class to one status and one problem ``kind``. Requests are rate-limited
per IP address (IPv6: /64) and, inside it, per announced node id (``whnode.peer.ratelimit``);
a 429 carries ``Retry-After``. Every route enforces the body cap (``limits.MAX_RECORD_BYTES``
for a record, ``limits.MAX_UNUSED_BODY_BYTES`` for the routes that use no body: their body
is discarded while counted, never kept), and a client that hangs up or breaks the body framing
mid-request is counted as ``client_disconnected``, not as an internal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import cbor2
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from whnode import limits
from whnode.api.ratelimit import client_key
from whnode.errors import WhnodeError
from whnode.peer import wire
from whnode.peer.evidence import EvidenceHandler, evidence_routes
from whnode.peer.exceptions import PeerProblem
from whnode.peer.ratelimit import PeerRateLimiter
from whnode.peer.types import FillResult, Sender
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
    "Sender",
    "add_peer_routes",
    "error_status",
]

PeerRoute = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""A registered node-to-node route handler."""

LOG = logging.getLogger(__name__)


class PeerHandler(Protocol):
    """What the node-to-node endpoints need from the service."""

    async def peer_get(self, dispensary_id: str, at_ms: int | None) -> bytes | None: ...
    async def peer_put(
        self, dispensary_id: str, data: bytes, sender: Sender | None = None
    ) -> bool: ...
    async def peer_fill(
        self,
        dispensary_id: str,
        max_age: float | None,
        budget: float,
        *,
        attempt: int = 0,
        requested_at_ms: int | None = None,
        hedge_from: bytes | None = None,
    ) -> FillResult: ...

    """``hedge_from``: set for a hedge (``hedge=1``), the asking node's id (b"" when it did
    not announce one)."""

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


class _ClientGone(Exception):
    """The request body could not be read to its end: the client hung up or broke framing."""


def _problem(
    status: int, kind: wire.ErrorKind, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "type": f"urn:whnode:peer:{kind.value}",
        "title": kind.value.replace("_", " "),
        "status": status,
        "kind": kind.value,
        "detail": detail[:500],
    }
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/problem+json",
        headers=headers,
    )


async def read_body(
    request: web.Request, cap: int, *, idle_timeout: float = limits.BODY_IDLE_SECONDS
) -> bytes:
    """The request body, at most ``cap`` bytes (LimitExceeded beyond). Raises _ClientGone
    when the client hangs up, breaks the framing, or sends nothing for ``idle_timeout``."""
    return await _consume(request, cap, idle_timeout, keep=True)


async def discard_body(
    request: web.Request, cap: int, *, idle_timeout: float = limits.BODY_IDLE_SECONDS
) -> None:
    """Read and drop a body nobody uses, refusing it (LimitExceeded) beyond ``cap`` bytes."""
    if request.body_exists:
        await _consume(request, cap, idle_timeout, keep=False)


async def _consume(request: web.Request, cap: int, idle_timeout: float, *, keep: bool) -> bytes:
    if request.content_length is not None and request.content_length > cap:
        raise LimitExceeded(f"body over {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            # an inactivity bound, not a total one: a large record on a slow link may take
            # long, a stalled body (or framing the parser gave up on) may not
            async with asyncio.timeout(idle_timeout):
                chunk = await request.content.readany()
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                raise LimitExceeded(f"body over {cap} bytes")
            if keep:
                chunks.append(chunk)
    except TimeoutError:
        raise _ClientGone(f"no body bytes for {idle_timeout:g} s") from None
    except (ConnectionError, RequestPayloadError, asyncio.IncompleteReadError) as exc:
        raise _ClientGone(str(exc) or type(exc).__name__) from None
    return b"".join(chunks)


def add_peer_routes(
    app: web.Application,
    handler: PeerHandler,
    *,
    instrument: Callable[[str, PeerRoute], PeerRoute] | None = None,
    limiter: PeerRateLimiter | None = None,
    body_idle_timeout: float = limits.BODY_IDLE_SECONDS,
    on_refused: Callable[[str], None] | None = None,
    evidence: EvidenceHandler | None = None,
) -> PeerRateLimiter:
    """Register /peer/v1 routes on ``app``; ``instrument(path, handler)``, when given, wraps
    each handler (the node counts their requests in its metrics). Returns the rate limiter
    (``limiter``, or a default one). ``on_refused(client key)`` is told of every request
    refused for its rate (the node's HTTP ingress penalizes a flooding address)."""
    peers = limiter if limiter is not None else PeerRateLimiter()

    def fail(
        kind: wire.ErrorKind, status: int, detail: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        handler.count_peer_error(kind.value)
        return _problem(status, kind, detail, headers)

    def admit(request: web.Request) -> web.Response | None:
        announced = request.headers.get(wire.HEADER_NODE, "")
        wait = peers.check(request.remote, announced, time.monotonic())
        if wait > 0:
            if on_refused is not None:  # a flooding address loses its connections
                on_refused(client_key(request.remote))
            retry = str(max(1, math.ceil(wait)))
            return fail(
                wire.ErrorKind.RATE_LIMITED,
                429,
                "peer request rate exceeded",
                {"Retry-After": retry},
            )
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
        except _ClientGone as exc:
            gone = fail(wire.ErrorKind.CLIENT_DISCONNECTED, 400, f"request body not read: {exc}")
            # the framing is lost: answer if the client still listens, then close (no
            # lingering over a body that will never end)
            gone.force_close()
            with contextlib.suppress(ConnectionError):
                await gone.prepare(request)
                await gone.write_eof()
            if request.transport is not None:
                request.transport.close()
            return gone
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
        await discard_body(request, limits.MAX_UNUSED_BODY_BYTES, idle_timeout=body_idle_timeout)
        data = await handler.peer_get(d, int_param(request, "at", None))
        if data is None:
            return _problem(404, wire.ErrorKind.NOT_FOUND, "no record")
        return web.Response(body=data, content_type=wire.COSE_TYPE)

    async def put_record(request: web.Request) -> web.StreamResponse:
        d = dispensary(request)
        body = await read_body(request, limits.MAX_RECORD_BYTES, idle_timeout=body_idle_timeout)
        sender = Sender.from_header(request.headers.get(wire.HEADER_NODE), request.remote)
        created = await handler.peer_put(d, body, sender)
        return web.Response(status=201 if created else 200)

    async def fill(request: web.Request) -> web.StreamResponse:
        d = dispensary(request)
        await discard_body(request, limits.MAX_UNUSED_BODY_BYTES, idle_timeout=body_idle_timeout)
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
        hedge_from = _asker(request) if request.query.get("hedge") == "1" else None
        async with asyncio.timeout(budget):
            answer = await handler.peer_fill(
                d,
                max_age,
                budget,
                attempt=attempt,
                requested_at_ms=requested_at,
                hedge_from=hedge_from,
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
        await discard_body(request, limits.MAX_UNUSED_BODY_BYTES, idle_timeout=body_idle_timeout)
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
    if evidence is not None:  # whnode.peer.evidence
        for method, path, work in evidence_routes(
            evidence,
            read_body=lambda r, cap: read_body(r, cap, idle_timeout=body_idle_timeout),
            discard_body=lambda r, cap: discard_body(r, cap, idle_timeout=body_idle_timeout),
            dispensary=dispensary,
            parse_dispensary=parse_dispensary_id,
        ):
            app.router.add_route(method, *route(path, work))
    return peers


def _asker(request: web.Request) -> bytes:
    """The node id a request announces (X-Whnode-Node), or b"" when it announces none."""
    announced = request.headers.get(wire.HEADER_NODE, "")
    if len(announced) != 40:
        return b""
    try:
        return bytes.fromhex(announced)
    except ValueError:
        return b""


class _Work(Protocol):
    async def __call__(self, request: web.Request) -> web.StreamResponse: ...
