"""One walk for every vendor: pagination, page checks, item reading, deduplication and the
parse report. A vendor is a ``VendorRules`` of its own (``whnode.upstream.adapters.<vendor>``):
how to ask for a page, where a page keeps its items and its page count, how one item maps to a
product. Everything else is here, the same for all:

- ``fetch_pages``: the vendor's optional ``prepare`` step (a token; asked again once, for all
  pages, when a page is refused with a 401: the token expired), then the first page alone;
  when it states how many pages (or items) there are, the others with bounded concurrency, else
  one after another until a short page (``whnode.upstream.adapters.base.paginate``).
- ``parse``: every page checked by the vendor's ``read_page``, every item handed to its
  ``parse_item`` with an ``ItemReader`` that records why anything is left out; then one product
  per id (the newest wins), sizes merged where the vendor lists one item per size, brands
  spelled one way, and a ``ParseReport``: items seen, products and options kept, items and
  options dropped by reason with a few example ids. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from whnode import limits
from whnode.record.exceptions import ModelError
from whnode.record.model import (
    DropCount,
    DropReason,
    Menu,
    ParseReport,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
    Vendor,
)
from whnode.upstream.adapters.base import (
    Adapter,
    HttpRequester,
    PageInfo,
    ParseResult,
    load_page,
    pages_for,
    paginate,
)
from whnode.upstream.exceptions import UpstreamRefused
from whnode.upstream.normalize import (
    WEIGHT_SENTINEL,
    Candidate,
    build_menu,
    clean_text,
    parse_decimal,
    parse_price_cents,
    source_id,
)
from whnode.upstream.sources import SourceConfig, store_of

_T = TypeVar("_T")
LOG = logging.getLogger(__name__)

__all__ = [
    "TOKENS",
    "ItemReader",
    "Page",
    "PageCall",
    "Request",
    "TokenKeeper",
    "VendorRules",
    "adapter",
    "fetch_pages",
    "parse",
    "read_price",
]


@dataclass(frozen=True, slots=True)
class Request:
    """One page request as a vendor shapes it."""

    method: str
    url: str
    params: Mapping[str, str] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """What a vendor's ``read_page`` finds in one page."""

    items: list[Any]
    total_pages: int | None = None
    """Pages of the whole menu when the page says."""
    total_items: object = None
    """Items of the whole menu when the page says (pages follow from the page size)."""
    menu_name: object = None
    """The dispensary's name when the page carries it."""


@dataclass(frozen=True, slots=True)
class PageCall:
    """Which page to ask for: its number (from ``VendorRules.first_page``) and size."""

    source: SourceConfig
    dispensary_id: str
    number: int
    size: int
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers the vendor's ``prepare`` step gave (a token)."""

    @property
    def store(self) -> str:
        return store_of(self.dispensary_id)


Prepare = Callable[[HttpRequester, SourceConfig, str, bool], Awaitable[Mapping[str, str]]]
"""``async prepare(http, source, dispensary_id, renew) -> headers`` before the first page
(``renew``: the last headers were refused with a 401, get new ones)."""


@dataclass(frozen=True, slots=True)
class VendorRules:
    """Everything that makes one vendor's API different from another's."""

    vendor: Vendor
    request: Callable[[PageCall], Request]
    """The request of one page."""
    read_page: Callable[[Any, int, str], Page]
    """``read_page(document, number, dispensary_id)``: the page's items and totals; raises
    ``AdapterParseError`` for a page of the wrong shape (or a refusal it carries)."""
    parse_item: Callable[[Any, ItemReader], Candidate | None]
    """One item to a product; returns ``reader.drop(reason)`` when it leaves the item out."""
    first_page: int = 0
    """Number of the first page (0 or 1)."""
    merge_sizes: bool = False
    """The vendor lists each size of a product as an item of its own: merge them."""
    prepare: Prepare | None = None
    """Run once before the first page (Treez: get a token); its headers go on every page."""

    @property
    def source(self) -> str:
        return str(self.vendor)


# --------------------------------------------------------------------------- fetching
class TokenKeeper:
    """Access tokens of keyed APIs, one per (token URL, client id), kept until
    ``TOKEN_MARGIN_SECONDS`` before the expiry their API stated (process memory only)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def held(self, url: str, client_id: str) -> str | None:
        """The token kept for the client, if it is still good."""
        found = self._tokens.get((url, client_id))
        return found[0] if found is not None and found[1] > self._clock() else None

    def keep(self, url: str, client_id: str, token: str, lifetime: float) -> None:
        """Keep a new token that its API says lives ``lifetime`` seconds."""
        expiry = self._clock() + max(0.0, lifetime - TOKEN_MARGIN_SECONDS)
        self._tokens[(url, client_id)] = (token, expiry)
        LOG.debug("new access token from %s for client %s (%.0f s)", url, client_id, lifetime)


TOKEN_MARGIN_SECONDS: Final = 60.0
"""A token is renewed this long before the expiry its API stated."""
TOKENS: Final = TokenKeeper()
"""The tokens of this process (the walk runs in the node's event loop)."""


async def fetch_pages(
    rules: VendorRules, http: HttpRequester, source: SourceConfig, dispensary_id: str
) -> list[bytes]:
    """Every raw page of the dispensary's menu (see the module docstring)."""
    prepare = rules.prepare
    headers: Mapping[str, str] = {}
    if prepare is not None:
        headers = await prepare(http, source, dispensary_id, False)
    renewing = asyncio.Lock()
    size = source.effective_page_size

    async def send(number: int, extra: Mapping[str, str]) -> bytes:
        request = rules.request(PageCall(source, dispensary_id, number, size, extra))
        return await http.request(
            request.method,
            request.url,
            source=rules.source,
            dispensary_id=dispensary_id,
            params=request.params,
            json=request.json,
            headers={**(request.headers or {}), **extra},
        )

    async def fetch(number: int) -> bytes:
        nonlocal headers
        sent = headers
        try:
            return await send(number, sent)
        except UpstreamRefused as exc:
            if prepare is None or exc.status != 401:
                raise
        async with renewing:  # one renewal however many pages were refused at once
            if headers is sent:
                headers = await prepare(http, source, dispensary_id, True)
        return await send(number, headers)

    def info(body: bytes, number: int) -> PageInfo:
        page = _read(rules, body, number, dispensary_id)
        total = page.total_pages
        if total is None:
            total = pages_for(page.total_items, size)
        return PageInfo(items=len(page.items), total_pages=total)

    return await paginate(
        fetch,
        info,
        first=rules.first_page,
        page_size=size,
        concurrency=source.page_concurrency,
        source=rules.source,
        dispensary_id=dispensary_id,
    )


def _read(rules: VendorRules, body: bytes, number: int, dispensary_id: str) -> Page:
    return rules.read_page(load_page(body, f"{rules.source} page {number}"), number, dispensary_id)


# --------------------------------------------------------------------------- prices
def read_price(value: object, *, cents: bool = False) -> int | DropReason:
    """A price in cents, or why there is none: ``SENTINEL`` for 0 and 9999999 (the size is
    not offered), ``NO_PRICE`` for a missing or unreadable one."""
    found = parse_price_cents(value, cents=cents)
    if found is not None:
        return found
    amount = parse_decimal(value)
    if amount is not None and (amount == 0 or amount >= WEIGHT_SENTINEL):
        return DropReason.SENTINEL
    return DropReason.NO_PRICE


# --------------------------------------------------------------------------- the report
_ORDER: Final = {reason: index for index, reason in enumerate(DropReason)}


class _Tally:
    """Drops by reason, with examples."""

    def __init__(self) -> None:
        self.counts: Counter[DropReason] = Counter()
        self.examples: dict[DropReason, list[str]] = {}

    def add(self, reason: DropReason, example: str) -> None:
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        example = example[: limits.MAX_DROP_EXAMPLE_CHARS]
        if len(kept) < limits.MAX_DROP_EXAMPLES and example not in kept:
            kept.append(example)

    def drops(self) -> tuple[DropCount, ...]:
        return tuple(
            DropCount(reason, count, tuple(self.examples[reason]))
            for reason, count in sorted(self.counts.items(), key=lambda kv: _ORDER[kv[0]])
        )


class ItemReader:
    """What a vendor's ``parse_item`` reports through: options kept or dropped, the product,
    or the item dropped with its reason."""

    __slots__ = ("_items", "_option_reasons", "_options", "position", "source_id", "store")

    def __init__(self, items: _Tally, options: _Tally, position: str, store: str = "") -> None:
        self._items = items
        self._options = options
        self._option_reasons: list[DropReason] = []
        self.store = store
        """The store part of the dispensary id being parsed."""
        self.position = position
        """``page N #M``: the item's place, its example when it has no id."""
        self.source_id: str | None = None
        """Set by ``identify``: examples name the item by it."""

    def identify(self, value: object) -> str | None:
        """The item's id (a string or an integer), remembered for the report."""
        self.source_id = source_id(value)
        return self.source_id

    @property
    def _example(self) -> str:
        return self.source_id or self.position

    @classmethod
    def alone(cls, store: str = "") -> ItemReader:
        """A reader outside any parse (to read one item in a test or a tool)."""
        return cls(_Tally(), _Tally(), "item", store)

    def as_item(self, item: object) -> dict[str, Any] | None:
        """``item`` when it is a JSON object, else None (dropped: not an item)."""
        if isinstance(item, dict):
            return item
        return self.drop(DropReason.NOT_AN_ITEM)

    def identity(self, identifier: object, name: object) -> tuple[str, str] | None:
        """The item's (id, clean name), or None (dropped: no id, or no name)."""
        found = self.identify(identifier)
        if found is None:
            return self.drop(DropReason.NO_ID)
        text = clean_text(name)
        if text is None:
            return self.drop(DropReason.NO_NAME)
        return found, text

    def drop(self, reason: DropReason) -> _T | None:
        """Leave the item out for ``reason``; None (typed to fit any caller's
        ``return reader.drop(...)``)."""
        self._items.add(reason, self._example)
        return None

    def option(
        self,
        size: Quantity | None,
        price: int | DropReason,
        special: int | None = None,
        stock: int | None = None,
        *,
        label: object = None,
    ) -> PriceOption | None:
        """A price option, or None with the reason recorded: no size, or the price's reason
        (``read_price``). A special price not below the price is no special."""
        reason = DropReason.NO_SIZE if size is None else price
        if isinstance(reason, DropReason):
            self._option_reasons.append(reason)
            text = clean_text(label, max_chars=24)
            self._options.add(reason, f"{self._example} {text}" if text else self._example)
            return None
        assert size is not None
        assert isinstance(price, int)
        if special is not None and special >= price:
            special = None
        return PriceOption(size, price, special, stock)

    def options(self, found: Iterable[PriceOption | None]) -> tuple[PriceOption, ...]:
        """The options kept, smallest size first: a size repeated is a duplicate (the first
        kept), options past ``limits.MAX_PRICE_OPTIONS`` are invalid."""
        seen: dict[Quantity, PriceOption] = {}
        for option in found:
            if option is None:
                continue
            if option.quantity in seen:
                self._options.add(DropReason.DUPLICATE, self._example)
            else:
                seen[option.quantity] = option
        ordered = sorted(seen.values(), key=_option_order)
        for _ in ordered[limits.MAX_PRICE_OPTIONS :]:
            self._options.add(DropReason.INVALID, self._example)
        return tuple(ordered[: limits.MAX_PRICE_OPTIONS])

    def product(self, updated_ms: int | None = None, **fields: Any) -> Candidate | None:
        """The item's product (``Product`` fields by name), or None with the reason recorded:
        no option left (the options' own reason), or values the model refuses."""
        if not fields.get("price_options"):
            return self.drop(self._no_options_reason())
        try:
            product = Product(**fields)
        except ModelError:
            return self.drop(DropReason.INVALID)
        return Candidate(product, updated_ms)

    def _no_options_reason(self) -> DropReason:
        lossy = [r for r in self._option_reasons if r.loses_data]
        if lossy:
            return Counter(lossy).most_common(1)[0][0]
        return DropReason.SENTINEL if self._option_reasons else DropReason.NO_PRICE


def _option_order(option: PriceOption) -> tuple[int, float, int]:
    units = (QuantityUnit.GRAMS, QuantityUnit.MILLIGRAMS, QuantityUnit.UNITS)
    return (units.index(option.quantity.unit), option.quantity.amount, option.price_cents)


# --------------------------------------------------------------------------- parsing
def parse(
    rules: VendorRules, dispensary_id: str, pages: list[bytes], fetched_at_ms: int
) -> ParseResult:
    """The menu in the raw pages and what was left out (pure; runs in a parse worker)."""
    items = _Tally()
    options = _Tally()
    candidates: list[Candidate] = []
    seen = 0
    name: object = None
    store = store_of(dispensary_id)
    for number, body in enumerate(pages, start=rules.first_page):
        page = _read(rules, body, number, dispensary_id)
        name = name or page.menu_name
        for index, item in enumerate(page.items):
            seen += 1
            reader = ItemReader(items, options, f"page {number} #{index}", store)
            candidate = rules.parse_item(item, reader)
            if candidate is not None:
                candidates.append(candidate)
    kept = _dedupe(candidates, items)
    menu = build_menu(
        dispensary_id=dispensary_id,
        vendor=rules.vendor,
        name=name,
        fetched_at_ms=fetched_at_ms,
        candidates=kept,
        merge_sizes=rules.merge_sizes,
    )
    report = ParseReport(
        items_seen=seen,
        products_kept=len(menu.products),
        options_kept=sum(len(p.price_options) for p in menu.products),
        items_dropped=items.drops(),
        options_dropped=options.drops(),
    )
    return ParseResult(menu, report)


def _dedupe(candidates: list[Candidate], items: _Tally) -> list[Candidate]:
    """One candidate per source id, the newest ``updated_ms`` winning (then the first seen);
    every other one counted as a duplicate."""
    chosen: dict[str, Candidate] = {}
    for candidate in candidates:
        key = candidate.product.source_id
        held = chosen.get(key)
        if held is not None:
            items.add(DropReason.DUPLICATE, key)
        if held is None or (candidate.updated_ms or 0) > (held.updated_ms or 0):
            chosen[key] = candidate
    return list(chosen.values())


def adapter(rules: VendorRules) -> Adapter:
    """The ``Adapter`` of a vendor's rules: the shared walk bound to them."""

    async def fetch(http: HttpRequester, source: SourceConfig, dispensary_id: str) -> list[bytes]:
        return await fetch_pages(rules, http, source, dispensary_id)

    def parse_with_report(
        dispensary_id: str, pages: list[bytes], fetched_at_ms: int
    ) -> ParseResult:
        return parse(rules, dispensary_id, pages, fetched_at_ms)

    def parse_pages(dispensary_id: str, pages: list[bytes], fetched_at_ms: int) -> Menu:
        return parse(rules, dispensary_id, pages, fetched_at_ms).menu

    return Adapter(rules.vendor, fetch, parse_pages, parse_with_report)
