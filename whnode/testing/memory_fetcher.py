"""``ScriptedFetcher``: upstream's in-memory twin (whnode.abc.MenuFetcher).

It answers with menus made by ``whnode.testing.factories.make_menu`` and packaged as the
process pool does (``package_menu``), fetched at the ``now_ms`` the service passes, and
counts every call. A test scripts it: fail the next calls with given errors, change the
menu's content, or hold calls at a gate to see what waits on them (single flight).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque

from whnode.testing.factories import make_menu
from whnode.upstream.exceptions import UpstreamError
from whnode.upstream.pool import ParsedMenu, package_menu

__all__ = ["ScriptedFetcher"]


class ScriptedFetcher:
    """Menus of ``products`` products; ``version`` (per dispensary) picks their content."""

    def __init__(self, *, products: int = 5) -> None:
        self.products = products
        self.calls: Counter[str] = Counter()
        """Calls made, per dispensary (failed ones included)."""
        self.version: Counter[str] = Counter()
        """Content version per dispensary: bump it to make the next menu differ."""
        self.failures: deque[UpstreamError] = deque()
        """Errors raised by the next calls, one per call, first in first out."""
        self.gate: asyncio.Event | None = None
        """When set to an Event, calls wait for it before answering."""
        self.waiting = 0
        """Calls waiting at the gate now."""

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def fail_next(self, *errors: UpstreamError) -> None:
        """Raise ``errors`` from the next calls, in order."""
        self.failures.extend(errors)

    def hold(self) -> asyncio.Event:
        """Hold every call until the returned event is set."""
        self.gate = asyncio.Event()
        return self.gate

    async def fetch(self, dispensary_id: str, now_ms: int) -> ParsedMenu:
        self.calls[dispensary_id] += 1
        if self.gate is not None:
            self.waiting += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
        if self.failures:
            raise self.failures.popleft()
        menu = make_menu(
            dispensary_id,
            n_products=self.products,
            seed=self.version[dispensary_id] + 1,
            fetched_at_ms=now_ms,
        )
        return package_menu(menu)
