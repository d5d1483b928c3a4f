"""The client side of the node-to-node HTTP protocol (see whnode.peer.wire)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import aiohttp
import cbor2

from whnode import limits
from whnode.peer import wire
from whnode.peer.exceptions import PeerBadAnswer, PeerRefused, PeerUnreachable
from whnode.peer.prefetch import HistoryPrefetch

__all__ = ["FillAnswer", "PeerAddress", "PeerClient"]


class PeerAddress(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FillAnswer:
    data: bytes
    """The signed record, not yet validated: the caller must accept_record() it."""
    fresh_until_ms: int
    stale: bool
    path: str


def _base(peer: PeerAddress) -> str:
    host = f"[{peer.host}]" if ":" in peer.host else peer.host
    return f"http://{host}:{peer.port}{wire.PREFIX}"


def _name(peer: PeerAddress) -> str:
    return f"{peer.host}:{peer.port}"


class PeerClient:
    """Calls other nodes' /peer/v1 endpoints over a shared aiohttp session.

    Every answer body is read with a cap before it is parsed; every failure becomes a
    PeerError subclass.
    """

    def __init__(self, session: aiohttp.ClientSession, *, node_id_hex: str, timeout: float) -> None:
        self._session = session
        self._headers = {wire.HEADER_NODE: node_id_hex}
        self._timeout = timeout
        self.prefetch = HistoryPrefetch(self._history)
        """History requests sent ahead of the owner cross-check (whnode.peer.prefetch)."""

    async def _request(
        self,
        method: str,
        peer: PeerAddress,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        url = _base(peer) + path
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = wire.COSE_TYPE
        client_timeout = aiohttp.ClientTimeout(total=timeout or self._timeout)
        try:
            async with self._session.request(
                method, url, params=params, data=data, headers=headers, timeout=client_timeout
            ) as response:
                declared = response.content_length
                if declared is not None and declared > limits.MAX_HTTP_BODY_BYTES:
                    raise PeerBadAnswer("answer too large", peer=_name(peer))
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > limits.MAX_HTTP_BODY_BYTES:
                        raise PeerBadAnswer("answer too large", peer=_name(peer))
                    chunks.append(chunk)
                return response.status, dict(response.headers), b"".join(chunks)
        except TimeoutError as exc:
            raise PeerUnreachable("timed out", peer=_name(peer)) from exc
        except aiohttp.ClientError as exc:
            raise PeerUnreachable(f"{type(exc).__name__}: {exc}", peer=_name(peer)) from exc
        except OSError as exc:
            raise PeerUnreachable(str(exc), peer=_name(peer)) from exc

    @staticmethod
    def _refusal(peer: PeerAddress, status: int, body: bytes) -> PeerRefused:
        kind = wire.ErrorKind.INTERNAL.value
        detail = f"HTTP {status}"
        try:
            problem = json.loads(body)
            if isinstance(problem, dict):
                kind = str(problem.get("kind", kind))
                detail = str(problem.get("detail", detail))[:300]
        except ValueError:
            pass
        return PeerRefused(detail, peer=_name(peer), status=status, kind=kind)

    async def get_record(
        self, peer: PeerAddress, dispensary_id: str, *, at_ms: int | None = None
    ) -> bytes | None:
        """The peer's newest record (or the one current at ``at_ms``); None if it has none."""
        params = {"at": str(at_ms)} if at_ms is not None else None
        status, _, body = await self._request(
            "GET", peer, f"/records/{quote(dispensary_id, safe=':')}", params=params
        )
        if status == 404:
            return None
        if status != 200:
            raise self._refusal(peer, status, body)
        return body

    async def put_record(self, peer: PeerAddress, dispensary_id: str, data: bytes) -> bool:
        """Store a record at the peer; True if it was new there, False if it had it."""
        status, _, body = await self._request(
            "PUT", peer, f"/records/{quote(dispensary_id, safe=':')}", data=data
        )
        if status == 201:
            return True
        if status == 200:
            return False
        raise self._refusal(peer, status, body)

    async def fill(
        self,
        peer: PeerAddress,
        dispensary_id: str,
        *,
        max_age: float | None,
        budget: float,
        attempt: int = 0,
        requested_at_ms: int | None = None,
        hedge: bool = False,
    ) -> FillAnswer:
        """Ask an owner for a record fresh enough, filling from upstream if it must.

        The request carries the hop limit implicitly (a fill is never forwarded) and the
        remaining time budget; the HTTP timeout is the same budget. ``attempt`` is the
        owner's rank in the requester's list (0: the closest; more after failover);
        ``requested_at_ms`` is when the request arrived at the requester (epoch ms): the
        owner answers with a record that was fresh then. A ``hedge`` never makes the owner
        call upstream: it answers from what it holds or is filling, else refuses with
        ``not_held`` (whnode.service.hedging).
        """
        params = {"budget_ms": str(max(1, int(budget * 1000)))}
        if max_age is not None:
            params["max_age"] = repr(float(max_age))
        if attempt:
            params["attempt"] = str(attempt)
        if requested_at_ms is not None:
            params["requested_at"] = str(requested_at_ms)
        if hedge:
            params["hedge"] = "1"
        status, headers, body = await self._request(
            "POST",
            peer,
            f"/fill/{quote(dispensary_id, safe=':')}",
            params=params,
            timeout=budget,
        )
        if status != 200:
            raise self._refusal(peer, status, body)
        try:
            fresh_until = int(headers.get(wire.HEADER_FRESH_UNTIL, "0"))
        except ValueError as exc:
            raise PeerBadAnswer("bad fresh-until header", peer=_name(peer)) from exc
        return FillAnswer(
            data=body,
            fresh_until_ms=fresh_until,
            stale=headers.get(wire.HEADER_STALE) == "1",
            path=headers.get(wire.HEADER_PATH, "owner"),
        )

    def prefetch_history(
        self, peers: Sequence[PeerAddress], dispensary_id: str, limit: int
    ) -> None:
        """Ask ``peers`` for their history now, for ``history`` calls to come
        (whnode.peer.prefetch)."""
        self.prefetch.start(peers, dispensary_id, limit)

    async def history(self, peer: PeerAddress, dispensary_id: str, limit: int) -> list[bytes]:
        """Recent records of the dispensary held by the peer, newest first (unvalidated):
        the answer asked ahead by ``prefetch_history`` when there is one."""
        items = await self.prefetch.take(peer, dispensary_id, limit)
        if items is not None:
            return items
        return await self._history(peer, dispensary_id, limit)

    async def _history(self, peer: PeerAddress, dispensary_id: str, limit: int) -> list[bytes]:
        status, _, body = await self._request(
            "GET",
            peer,
            f"/history/{quote(dispensary_id, safe=':')}",
            params={"limit": str(limit)},
        )
        if status == 404:
            return []
        if status != 200:
            raise self._refusal(peer, status, body)
        try:
            items = cbor2.loads(body)
        except Exception as exc:  # cbor2 raises several types on garbage
            raise PeerBadAnswer("history is not CBOR", peer=_name(peer)) from exc
        if not isinstance(items, list) or not all(isinstance(item, bytes) for item in items):
            raise PeerBadAnswer("history is not an array of records", peer=_name(peer))
        return items[:limit]
