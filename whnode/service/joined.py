"""Upstream calls only once the node has joined the network.

A node that has seeds but no contact yet (it is starting, or its seeds do not answer) cannot
know which nodes own a dispensary: it would take itself for the owner of everything and call
the real vendor APIs for menus the network already holds. :class:`JoinedOnly` wraps the
node's fetcher and refuses every fill with ``UpstreamUnavailable`` (a 503 with Retry-After;
stale records are still served) while ``/readyz`` says not ready. A node with no seeds at all
is a network of one and is ready at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from whnode.service.core import UpstreamFetcher
from whnode.upstream.exceptions import UpstreamUnavailable
from whnode.upstream.pool import ParsedMenu

__all__ = ["RETRY_AFTER_SECONDS", "JoinedOnly"]

RETRY_AFTER_SECONDS: Final = 5.0
"""Retry-After of a fill refused before the node joined (bootstrap retries within seconds)."""


class JoinedOnly:
    """An ``UpstreamFetcher`` that fetches only while ``joined()`` is true."""

    def __init__(self, fetcher: UpstreamFetcher, joined: Callable[[], bool]) -> None:
        self.fetcher = fetcher
        self._joined = joined
        self.refused = 0
        """Fills refused because the node had not joined."""

    async def fetch(self, dispensary_id: str, now_ms: int) -> ParsedMenu:
        if not self._joined():
            self.refused += 1
            raise UpstreamUnavailable(
                "this node has not joined the network yet (no seed has answered): it calls no "
                "upstream API until it has",
                source="node",
                dispensary_id=dispensary_id,
                retry_after=RETRY_AFTER_SECONDS,
            )
        return await self.fetcher.fetch(dispensary_id, now_ms)
