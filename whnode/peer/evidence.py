"""The evidence endpoints of the node-to-node protocol, server and client side.

- ``GET  /peer/v1/evidence[?dispensary=ID]``: the evidence this node holds (all of it, or
  of one dispensary), a CBOR array of at most 64 ``[accused record, other record]`` pairs
  (``application/cbor``; an empty array when none). Each pair is verifiable by anyone from
  its two records alone (``whnode.service.evidence.verify_evidence``).
- ``POST /peer/v1/evidence/{dispensary}``: a requester reports the record (the body,
  ``application/cose``) that an owner answered and that conflicts with this node's records;
  this node resolves the conflict (whnode.service.crosscheck) and answers its evidence for the
  dispensary, as GET does.

Both go through the peer routes' rate limits and error mapping (registered by
``whnode.peer.routes.add_peer_routes``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import quote

from aiohttp import web

from whnode import limits
from whnode.peer import wire
from whnode.peer.client import PeerAddress, PeerClient
from whnode.peer.exceptions import PeerUnreachable

__all__ = ["EvidenceHandler", "evidence_routes", "fetch_evidence", "report_conflict"]

MAX_DOCUMENT_ANSWER: int = 2 * 64 * limits.MAX_RECORD_BYTES


class EvidenceHandler(Protocol):
    """What the evidence endpoints need from the service."""

    def evidence_document(self, dispensary_id: str | None) -> bytes: ...
    async def resolve_conflict(self, dispensary_id: str, data: bytes) -> bytes: ...


class Work(Protocol):
    """A route handler."""

    async def __call__(self, request: web.Request) -> web.StreamResponse: ...


def evidence_routes(
    handler: EvidenceHandler,
    *,
    read_body: Callable[[web.Request, int], Awaitable[bytes]],
    discard_body: Callable[[web.Request, int], Awaitable[None]],
    dispensary: Callable[[web.Request], str],
    parse_dispensary: Callable[[str], str],
) -> list[tuple[str, str, Work]]:
    """(method, path, handler) of the evidence routes, for add_peer_routes to register."""

    async def get_evidence(request: web.Request) -> web.StreamResponse:
        await discard_body(request, limits.MAX_UNUSED_BODY_BYTES)
        raw = request.query.get("dispensary")
        wanted = None if raw is None else parse_dispensary(raw)
        return web.Response(body=handler.evidence_document(wanted), content_type=wire.CBOR_TYPE)

    async def report(request: web.Request) -> web.StreamResponse:
        d = dispensary(request)
        body = await read_body(request, limits.MAX_RECORD_BYTES)
        document = await handler.resolve_conflict(d, body)
        return web.Response(body=document, content_type=wire.CBOR_TYPE)

    return [
        ("GET", wire.PREFIX + "/evidence", get_evidence),
        ("POST", wire.PREFIX + "/evidence/{dispensary}", report),
    ]


def _client(peers: object, peer: PeerAddress) -> PeerClient:
    """The HTTP client behind ``peers`` (a transport without one, e.g. an in-memory twin,
    has no evidence endpoints: the peer counts as unreachable)."""
    if not isinstance(peers, PeerClient):
        raise PeerUnreachable("this transport has no evidence endpoints", peer=str(peer))
    return peers


async def fetch_evidence(
    peers: object, peer: PeerAddress, dispensary_id: str | None = None
) -> bytes:
    """A peer's evidence document (not yet verified)."""
    client = _client(peers, peer)
    params = None if dispensary_id is None else {"dispensary": dispensary_id}
    status, _, body = await client._request("GET", peer, "/evidence", params=params)
    if status != 200:
        raise client._refusal(peer, status, body)
    return body


async def report_conflict(
    peers: object, peer: PeerAddress, dispensary_id: str, data: bytes
) -> bytes:
    """Report a conflicting record to an owner; its evidence document (not yet verified)."""
    client = _client(peers, peer)
    status, _, body = await client._request(
        "POST", peer, f"/evidence/{quote(dispensary_id, safe=':')}", data=data
    )
    if status != 200:
        raise client._refusal(peer, status, body)
    return body
