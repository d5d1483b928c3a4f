"""A real aiohttp server carrying only the node-to-node routes, over an in-memory handler.

The handler stands in for the service (``whnode.service``): these tests are about the HTTP
edge (limits, body caps, disconnects, logs), not about what the service does with a record.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web

from whnode.api.server import ConnectionLimits, GuardedSite, http_runner, ingress_of
from whnode.peer.ratelimit import PeerRateLimiter
from whnode.peer.routes import FillResult, Sender, add_peer_routes


class PeerHandlerDouble:
    """Keeps records in a dict; counts the errors the routes report."""

    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}
        self.errors: Counter[str] = Counter()
        self.fills = 0

    async def peer_get(self, dispensary_id: str, at_ms: int | None) -> bytes | None:
        return self.records.get(dispensary_id)

    async def peer_put(self, dispensary_id: str, data: bytes, sender: Sender | None = None) -> bool:
        created = dispensary_id not in self.records
        self.records[dispensary_id] = data
        return created

    async def peer_fill(
        self,
        dispensary_id: str,
        max_age: float | None,
        budget: float,
        *,
        attempt: int = 0,
        requested_at_ms: int | None = None,
        hedge_from: bytes | None = None,
    ) -> FillResult:
        self.fills += 1
        return FillResult(b"record", 0, False, "store")

    async def peer_history(self, dispensary_id: str, limit: int) -> list[bytes]:
        record = self.records.get(dispensary_id)
        return [] if record is None else [record]

    def count_peer_error(self, kind: str) -> None:
        self.errors[kind] += 1


class PeerServer:
    """The /peer/v1 routes on a real server (127.0.0.1, port 0)."""

    def __init__(
        self,
        limiter: PeerRateLimiter | None = None,
        limits: ConnectionLimits | None = None,
        body_idle_timeout: float = 10.0,
    ) -> None:
        self.handler = PeerHandlerDouble()
        self.app = web.Application()
        self.limiter = add_peer_routes(
            self.app, self.handler, limiter=limiter, body_idle_timeout=body_idle_timeout
        )
        self.ingress = ingress_of(self.app)
        self.limits = limits if limits is not None else ConnectionLimits()
        self.runner = http_runner(self.app, self.limits, shutdown_timeout=5)
        self.site: GuardedSite | None = None
        self.port = 0
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        await self.runner.setup()
        self.site = GuardedSite(
            self.runner, "127.0.0.1", 0, limits=self.limits, ingress=self.ingress
        )
        await self.site.start()
        self.port = self.site.port
        self.session = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{self.port}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.session is not None:
            await self.session.close()
        await asyncio.wait_for(self.runner.cleanup(), 60)

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.session is not None
        return self.session
