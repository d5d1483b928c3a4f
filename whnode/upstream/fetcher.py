"""One upstream menu fetch: resolve the source, fetch every page within a deadline, parse.

``Fetcher.fetch`` is what the service calls to fill a dispensary from upstream. The pages are
fetched by the vendor's adapter (``whnode.upstream.adapters.ADAPTERS[vendor].fetch_pages``)
through the shared ``UpstreamHttp`` client, inside a ``deadline_scope`` so that every request
the adapter makes, in whatever task, ends by the menu deadline. The raw pages then go to the
``ParsePool``; the event loop never parses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

from whnode import limits
from whnode.errors import WhnodeError
from whnode.record.model import Vendor
from whnode.upstream.adapters import ADAPTERS
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamParseError,
    UpstreamTimeout,
)
from whnode.upstream.http import UpstreamHttp
from whnode.upstream.pool import ParsedMenu, ParsePool

__all__ = ["Fetcher", "FetcherStatistics", "PageSource", "SourceDirectory"]

DEADLINE_GRACE_SECONDS: Final = 0.5
"""Time past the menu deadline after which the adapter itself is cancelled (its requests end
by the deadline on their own and report it better)."""


class _Source(Protocol):
    @property
    def vendor(self) -> str: ...


class SourceDirectory(Protocol):
    """Where a dispensary's source is found (``whnode.upstream.sources``)."""

    def resolve(self, dispensary_id: str) -> Any:
        """The source configuration serving ``dispensary_id`` (with a ``vendor``); raises
        UnknownDispensary (or LookupError) or returns None when there is none."""
        ...


class PageSource(Protocol):
    """The fetching half of an adapter (``whnode.upstream.adapters.Adapter``)."""

    @property
    def fetch_pages(self) -> Callable[[Any, Any, str], Awaitable[list[bytes]]]:
        """``async fetch_pages(http, source, dispensary_id) -> list[bytes]``."""
        ...


@dataclass(frozen=True, slots=True)
class FetcherStatistics:
    fetches: int
    """Menus fetched and parsed."""
    failures: int
    """Fetches that raised."""
    pages: int
    """Pages fetched (whether or not they then parsed)."""
    products: int
    """Products in the menus fetched."""


class Fetcher:
    """Fetch and parse whole menus; see the module docstring."""

    def __init__(
        self,
        sources: SourceDirectory,
        http: UpstreamHttp,
        pool: ParsePool,
        *,
        menu_deadline: float = 60.0,
        adapters: Mapping[Vendor, PageSource] | None = None,
    ) -> None:
        self._sources = sources
        self._http = http
        self._pool = pool
        self.menu_deadline = menu_deadline
        self._adapters = adapters
        self._fetches = 0
        self._failures = 0
        self._pages = 0
        self._products = 0

    def statistics(self) -> FetcherStatistics:
        return FetcherStatistics(
            fetches=self._fetches,
            failures=self._failures,
            pages=self._pages,
            products=self._products,
        )

    async def fetch(self, dispensary_id: str, now_ms: int) -> ParsedMenu:
        """Fetch every page of the dispensary's menu and parse it; ``now_ms`` becomes the
        snapshot's fetch time. Raises an ``UpstreamError`` naming source and dispensary."""
        try:
            parsed = await self._fetch(dispensary_id, now_ms)
        except Exception:
            self._failures += 1
            raise
        self._fetches += 1
        self._products += parsed.product_count
        return parsed

    def _resolve(self, dispensary_id: str) -> tuple[Any, Vendor, PageSource]:
        vendor_name = dispensary_id.partition(":")[0] or "unknown"
        try:
            source = self._sources.resolve(dispensary_id)
        except WhnodeError:
            raise
        except LookupError as exc:
            raise UnknownDispensary(
                "no source is configured for this dispensary",
                source=vendor_name,
                dispensary_id=dispensary_id,
            ) from exc
        if source is None:
            raise UnknownDispensary(
                "no source is configured for this dispensary",
                source=vendor_name,
                dispensary_id=dispensary_id,
            )
        try:
            vendor = Vendor(str(cast(_Source, source).vendor))
        except ValueError:
            raise UnknownDispensary(
                "the source's vendor is not supported",
                source=vendor_name,
                dispensary_id=dispensary_id,
            ) from None
        adapters = self._adapters if self._adapters is not None else ADAPTERS
        adapter = adapters.get(vendor)
        if adapter is None:
            raise UnknownDispensary(
                f"no adapter fetches {vendor} menus",
                source=str(vendor),
                dispensary_id=dispensary_id,
            )
        return source, vendor, adapter

    async def _fetch(self, dispensary_id: str, now_ms: int) -> ParsedMenu:
        source, vendor, adapter = self._resolve(dispensary_id)
        name = str(vendor)
        deadline = asyncio.get_running_loop().time() + self.menu_deadline
        try:
            with self._http.deadline_scope(deadline):
                async with asyncio.timeout_at(deadline + DEADLINE_GRACE_SECONDS):
                    pages = await adapter.fetch_pages(self._http, source, dispensary_id)
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"the menu was not fetched within {self.menu_deadline:g} s",
                source=name,
                dispensary_id=dispensary_id,
            ) from exc
        except UpstreamBadResponse as exc:
            if exc.status == 404:
                raise UnknownDispensary(
                    "the upstream does not know this dispensary (HTTP 404)",
                    source=exc.source,
                    dispensary_id=dispensary_id,
                    host=exc.host,
                    status=404,
                ) from exc
            raise
        except UpstreamError:
            raise
        except (ValueError, LookupError, TypeError, AttributeError) as exc:
            # The adapter could not read the paging fields of an answer (not JSON, or of an
            # unexpected shape); adapters' own AdapterParseError is a ValueError too.
            raise UpstreamParseError(
                f"cannot read a page while paging: {type(exc).__name__}: {exc}"[:300],
                source=name,
                dispensary_id=dispensary_id,
            ) from exc
        if not pages:
            raise UpstreamBadResponse(
                "the upstream gave no pages", source=name, dispensary_id=dispensary_id
            )
        if len(pages) > limits.MAX_UPSTREAM_PAGES:
            raise UpstreamBadResponse(
                f"{len(pages)} pages, more than the {limits.MAX_UPSTREAM_PAGES} allowed",
                source=name,
                dispensary_id=dispensary_id,
            )
        self._pages += len(pages)
        return await self._pool.parse(vendor, dispensary_id, pages, now_ms)
