"""What every adapter shares: the HTTP interface it uses, the Adapter record, pagination.

Pagination (``paginate``): the first page is fetched alone; when it states how many pages
there are (Dutchie ``totalPages``, Jane ``nbPages``, Weedmaps and Leafly totals), the others
are fetched with bounded concurrency; when it does not (envelope drift), pages are fetched
one after another until a short page. An empty page where items were due is asked for once
more (an empty page is not a closed store: it is a race or a hiccup); an empty first page with
no stated total ends the menu.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from whnode import limits
from whnode.record.model import Menu, ParseReport, Vendor
from whnode.upstream.exceptions import UpstreamBadResponse
from whnode.upstream.normalize import AdapterParseError
from whnode.upstream.sources import SourceConfig

if TYPE_CHECKING:
    from whnode.upstream.http import UpstreamHttp

__all__ = [
    "EMPTY_PAGE_RETRIES",
    "Adapter",
    "FetchPages",
    "HttpRequester",
    "PageInfo",
    "Parse",
    "ParsePages",
    "ParseResult",
    "gather_bounded",
    "load_page",
    "paginate",
]

EMPTY_PAGE_RETRIES: Final = 1
"""Times an empty page that should hold items is asked for again."""


class HttpRequester(Protocol):
    """The upstream HTTP client as adapters use it (``whnode.upstream.http.UpstreamHttp``):
    one request, the raw body back; errors are the client's ``UpstreamError`` subclasses."""

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
    ) -> bytes: ...


if TYPE_CHECKING:

    def _upstream_http_is_a_requester(http: UpstreamHttp) -> HttpRequester:
        return http  # mypy checks that the real client fits the protocol


FetchPages = Callable[[HttpRequester, SourceConfig, str], Awaitable[list[bytes]]]
"""``async fetch_pages(http, source, dispensary_id) -> list[bytes]``: every raw page."""
ParsePages = Callable[[str, list[bytes], int], Menu]
"""``parse_pages(dispensary_id, pages, fetched_at_ms) -> Menu``: pure."""


@dataclass(frozen=True, slots=True)
class ParseResult:
    """A parse's menu and its report (None from a parser that keeps none)."""

    menu: Menu
    report: ParseReport | None = None


Parse = Callable[[str, list[bytes], int], ParseResult]
"""``parse(dispensary_id, pages, fetched_at_ms) -> ParseResult``: pure."""


@dataclass(frozen=True, slots=True)
class Adapter:
    """One vendor's fetching and parsing halves."""

    vendor: Vendor
    fetch_pages: FetchPages
    """Fetch every page of a menu through the HTTP client (bounded concurrency)."""
    parse_pages: ParsePages
    """Turn the raw pages into a Menu (pure; runs in a parse worker)."""
    parse: Parse | None = None
    """The same with the parse report (what was kept and left out, by reason)."""

    def parse_with_report(
        self, dispensary_id: str, pages: list[bytes], fetched_at_ms: int
    ) -> ParseResult:
        """``parse`` when the adapter has it, else ``parse_pages`` without a report."""
        if self.parse is not None:
            return self.parse(dispensary_id, pages, fetched_at_ms)
        return ParseResult(self.parse_pages(dispensary_id, pages, fetched_at_ms))


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What pagination needs to know about one page."""

    items: int
    """Items on the page (duplicates included)."""
    total_pages: int | None
    """Pages of the whole menu when the page says, else None."""


def load_page(page: bytes, what: str) -> Any:
    """The JSON document of one page; ``AdapterParseError`` when it is not JSON."""
    try:
        return json.loads(page)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AdapterParseError(f"{what} is not valid JSON: {exc}"[:300]) from exc


def pages_for(total_items: object, page_size: int) -> int | None:
    """Pages needed for ``total_items`` (None when the total is not a count)."""
    if isinstance(total_items, bool) or not isinstance(total_items, int | float):
        return None
    if not math.isfinite(total_items) or total_items < 0:
        return None
    return math.ceil(int(total_items) / page_size)


async def gather_bounded(
    numbers: list[int], fetch: Callable[[int], Awaitable[bytes]], concurrency: int
) -> list[bytes]:
    """``fetch`` every number, at most ``concurrency`` at once, results in order; the first
    failure cancels the others and propagates."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(number: int) -> bytes:
        async with semaphore:
            return await fetch(number)

    tasks = [asyncio.ensure_future(one(number)) for number in numbers]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def paginate(
    fetch: Callable[[int], Awaitable[bytes]],
    info: Callable[[bytes, int], PageInfo],
    *,
    first: int,
    page_size: int,
    concurrency: int,
    source: str,
    dispensary_id: str,
) -> list[bytes]:
    """Every page of a menu (see the module docstring). ``fetch(n)`` gets page ``n`` (pages
    are numbered from ``first``); ``info(body, n)`` reads a page's item count and stated page
    count, raising ``AdapterParseError`` (or a refusal) on a page of the wrong shape."""

    async def checked(number: int, expected_items: bool) -> tuple[bytes, PageInfo]:
        body = await fetch(number)
        page = info(body, number)
        retries = 0
        while expected_items and page.items == 0 and retries < EMPTY_PAGE_RETRIES:
            retries += 1
            body = await fetch(number)
            page = info(body, number)
        return body, page

    body = await fetch(first)
    page = info(body, first)
    if page.items == 0 and (page.total_pages or 0) > 0:
        body, page = await checked(first, expected_items=False)
    if page.total_pages is not None:
        total = page.total_pages
        if total > limits.MAX_UPSTREAM_PAGES:
            raise AdapterParseError(
                f"the menu has {total} pages, more than the {limits.MAX_UPSTREAM_PAGES} allowed"
            )
        last = first + total - 1

        async def rest(number: int) -> bytes:
            rest_body, rest_page = await checked(number, expected_items=True)
            if rest_page.items == 0 and number != last:
                raise UpstreamBadResponse(
                    f"page {number} of {total} stayed empty though the menu has more items",
                    source=source,
                    dispensary_id=dispensary_id,
                )
            return rest_body

        others = await gather_bounded(list(range(first + 1, last + 1)), rest, concurrency)
        return [body, *others]
    pages = [body]
    number = first
    while page.items >= page_size:
        if len(pages) >= limits.MAX_UPSTREAM_PAGES:
            raise AdapterParseError(
                f"the menu runs past {limits.MAX_UPSTREAM_PAGES} pages without a stated total"
            )
        number += 1
        body, page = await checked(number, expected_items=False)
        pages.append(body)
    return pages


def as_list(value: object) -> list[Any]:
    """``value`` when it is a list, else an empty list."""
    return value if isinstance(value, list) else []


def as_dict(value: object) -> dict[str, Any]:
    """``value`` when it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def dig(document: object, *path: str) -> Any:
    """``document[path[0]][path[1]]...``, or None where an object is missing."""
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document
