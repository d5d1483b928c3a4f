"""Shared by the sandbox and adapter tests: a plain HTTP requester and a generated-menu check.

``PlainHttp`` is the smallest real implementation of the adapters' ``HttpRequester``: one
aiohttp request, the body back, ``UpstreamRefused`` on a 401 (as the node's client), else
``HttpStatusError`` on anything but 2xx.

``check_generated`` compares a parsed generated menu with the sandbox's items (the truth behind
its pages) field by field, within what each vendor's API can say.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from whnode.record.model import Menu
from whnode.sandbox import Item, SandboxConfig, SandboxServer, run_sandbox
from whnode.sandbox.fidelity import compare
from whnode.upstream.adapters import ADAPTERS
from whnode.upstream.exceptions import UpstreamRefused
from whnode.upstream.sources import SourceConfig, SourcesConfig


class HttpStatusError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class PlainHttp:
    """A real ``HttpRequester`` over one aiohttp session (no retries, no pacing)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.requests: list[tuple[str, str, Mapping[str, str] | None, Any]] = []

    async def request(
        self,
        method: str,
        url: str,
        *,
        source: str,
        dispensary_id: str,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        self.requests.append((method, url, params, json))
        async with self.session.request(
            method, url, params=params, json=json, headers=headers
        ) as response:
            body = await response.read()
            if response.status == 401:  # as UpstreamHttp does: the walk renews tokens on it
                raise UpstreamRefused(
                    "HTTP 401", source=source, dispensary_id=dispensary_id, status=401
                )
            if not 200 <= response.status < 300:
                raise HttpStatusError(response.status, body)
            return body


@dataclass
class Upstream:
    sandbox: SandboxServer
    http: PlainHttp
    sources: SourcesConfig

    async def menu(
        self, dispensary_id: str, source: SourceConfig | None = None, fetched_at_ms: int = 1
    ) -> tuple[Menu, list[bytes]]:
        """Fetch a menu over HTTP and parse it: (menu, raw pages)."""
        source = source or self.sources.resolve(dispensary_id)
        adapter = ADAPTERS[source.vendor]
        pages = await adapter.fetch_pages(self.http, source, dispensary_id)
        return adapter.parse_pages(dispensary_id, pages, fetched_at_ms), pages


@asynccontextmanager
async def upstream(
    config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[Upstream]:
    """The sandbox and a plain HTTP client to it; ``clock`` is the sandbox's (token expiry,
    rate limits, menu changes)."""
    async with (
        run_sandbox(config or SandboxConfig(), clock=clock) as sandbox,
        aiohttp.ClientSession() as session,
    ):
        sources = SourcesConfig.pointing_at(sandbox.base_url, sandbox.credentials())
        yield Upstream(sandbox, PlainHttp(session), sources)


# --------------------------------------------------------------------------- expectations
def check_generated(menu: Menu, items: tuple[Item, ...], shape: str) -> None:
    """Compare a parsed generated menu with its items (``whnode.sandbox.fidelity.compare``,
    the comparison ``whnode bench fidelity`` makes): ``shape`` is dutchie, jane, weedmaps
    (discovery), weedmaps-v1 or leafly."""
    report = compare(menu, items, shape)
    assert report.exact, "\n".join([report.line(), *report.details()])
