"""One upstream menu fetch: resolve the source, fetch every page within a deadline, parse.

``Fetcher.fetch`` is what the service calls to fill a dispensary from upstream. The pages are
fetched by the vendor's adapter (``whnode.upstream.adapters.ADAPTERS[vendor].fetch_pages``)
through the shared ``UpstreamHttp`` client, inside a ``deadline_scope`` so that every request
the adapter makes, in whatever task, ends by the menu deadline. The raw pages then go to the
``ParsePool``; the event loop never parses.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, cast

from whnode import limits
from whnode.errors import WhnodeError
from whnode.record.model import ParseReport, Vendor
from whnode.upstream.adapters import ADAPTERS
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamParseError,
    UpstreamTimeout,
)
from whnode.upstream.http import UpstreamHttp
from whnode.upstream.pool import ParsedMenu, ParsePool, describe_drops

__all__ = [
    "DROP_WARNING_SHARE",
    "Fetcher",
    "FetcherStatistics",
    "PageSource",
    "SourceDirectory",
    "warn_of_drops",
]

LOG = logging.getLogger(__name__)

DROP_WARNING_SHARE: Final = 0.02
"""A fill whose parse lost more than this share of the items it saw logs one WARNING."""
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
    items_seen_by_vendor: dict[str, int] = field(default_factory=dict)
    """Items in the pages of the menus parsed, per vendor."""
    items_dropped_by_vendor: dict[str, dict[str, int]] = field(default_factory=dict)
    """Items the parses left out, per vendor and reason (``DropReason``)."""
    options_dropped_by_vendor: dict[str, dict[str, int]] = field(default_factory=dict)
    """Price options the parses left out, per vendor and reason."""


class _Drops:
    __slots__ = ("items", "options", "seen")

    def __init__(self) -> None:
        self.seen = 0
        self.items: Counter[str] = Counter()
        self.options: Counter[str] = Counter()

    def add(self, report: ParseReport) -> None:
        self.seen += report.items_seen
        for drop in report.items_dropped:
            self.items[str(drop.reason)] += drop.count
        for drop in report.options_dropped:
            self.options[str(drop.reason)] += drop.count


def warn_of_drops(report: ParseReport, dispensary_id: str) -> bool:
    """Log one WARNING when the parse lost more than ``DROP_WARNING_SHARE`` of the items it
    saw (items and options dropped for reasons that lose data); True when it did."""
    lost = report.items_lost + report.options_lost
    if lost <= DROP_WARNING_SHARE * report.items_seen:
        return False
    LOG.warning(
        "%s: the parse left out %d of %d items and %d options; items: %s; options: %s",
        dispensary_id,
        report.items_lost,
        report.items_seen,
        report.options_lost,
        describe_drops(d for d in report.items_dropped if d.reason.loses_data),
        describe_drops(d for d in report.options_dropped if d.reason.loses_data),
    )
    return True


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
        self._drops: dict[str, _Drops] = {}

    def carry_over(self, previous: Fetcher) -> None:
        """Continue ``previous``'s counters (the node replaces its fetcher when the sources
        are reloaded)."""
        self._fetches += previous._fetches
        self._failures += previous._failures
        self._pages += previous._pages
        self._products += previous._products
        for vendor, drops in previous._drops.items():
            self._drops[vendor] = drops

    def statistics(self) -> FetcherStatistics:
        return FetcherStatistics(
            fetches=self._fetches,
            failures=self._failures,
            pages=self._pages,
            products=self._products,
            items_seen_by_vendor={k: v.seen for k, v in self._drops.items()},
            items_dropped_by_vendor={k: dict(v.items) for k, v in self._drops.items()},
            options_dropped_by_vendor={k: dict(v.options) for k, v in self._drops.items()},
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
        except (ValueError, LookupError, TypeError, AttributeError) as exc:
            # The adapter could not read the paging fields of an answer (not JSON, or of an
            # unexpected shape): its own AdapterParseError (the one UpstreamError that is a
            # ValueError, knowing neither source nor dispensary) or any other.
            raise UpstreamParseError(
                f"cannot read a page while paging: {type(exc).__name__}: {exc}"[:300],
                source=name,
                dispensary_id=dispensary_id,
            ) from exc
        except UpstreamError:
            raise
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
        parsed = await self._pool.parse(vendor, dispensary_id, pages, now_ms)
        report = parsed.statistics.parse_report
        if report is not None:
            self._drops.setdefault(name, _Drops()).add(report)
            warn_of_drops(report, dispensary_id)
        return parsed
