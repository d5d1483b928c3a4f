"""``GET /v1/menus/{dispensary}/products``: the products of one menu that match a query.

The menu comes through the service exactly as ``GET /v1/menus/{id}`` gets it (hot cache,
store, owners, one upstream fill for the network; ``max_age`` and ``at`` as there), verified;
the filters and order are ``whnode.record.query``'s. The answer names the record it came from
(publisher, content hash, fetch time), so a light client can fetch that record and check.

Parameters (each at most once; anything else is a 400 problem document):
``category``, ``lineage``, ``brand`` (comma-separated lists: any of them), ``q`` (words),
``min_thc``/``max_thc`` (percent), ``max_price``/``max_price_per_gram`` (dollars: the menu's
currency units, up to 2 decimals), ``on_special`` (true/false), ``size`` (``3.5g``, ``1/8oz``,
``100mg``, ``2pk``: the normalizer's size parser), ``sort`` (``price``, ``price_per_gram``,
``thc``, ``name``; ``-`` before it for descending), ``limit`` (1-500, default 50), ``cursor``
(from ``next_cursor``), ``max_age``, ``at``.

A cursor is opaque to clients: it holds the snapshot (fetch time and content hash), the
position and a digest of the query. The next page is read from that same snapshot (through
``at``), so pages never mix two snapshots; a cursor used with other filters, or whose
snapshot this node can no longer find, is refused (400, ``cursor``). Answers are not
compressed: each is made per request, and compression is kept for bodies made once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from whnode.api.context import ApiContext, service_of
from whnode.api.cursors import MAX_OFFSET, pack_cursor, unpack_cursor
from whnode.api.exceptions import InvalidParameter
from whnode.api.menus import JSON, answer_headers, not_modified
from whnode.api.opened import OpenedMenus
from whnode.api.params import negotiate, parse_at, parse_max_age, single_values
from whnode.api.render import dumps, iso_time, product_document, record_document
from whnode.record.model import Category, Lineage, parse_dispensary_id
from whnode.record.query import (
    ProductMatch,
    ProductQuery,
    SortKey,
    fold,
    select,
    words_of,
)
from whnode.service.exceptions import MenuNotFound
from whnode.upstream.sizes import parse_quantity

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "PRODUCT_FILTERS",
    "ProductHandlers",
    "parse_limit_of",
    "parse_product_query",
    "product_query_of",
]

PRODUCT_FILTERS: Final = (
    "category",
    "lineage",
    "brand",
    "q",
    "min_thc",
    "max_thc",
    "max_price",
    "max_price_per_gram",
    "on_special",
    "size",
    "sort",
)
PARAMETERS: Final = (*PRODUCT_FILTERS, "limit", "cursor", "max_age", "at")
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
MAX_LIST_ITEMS: Final = 32
"""Most values in one comma-separated list (categories, lineages, brands)."""
MAX_WORDS: Final = 16
MAX_TEXT_CHARS: Final = 200
PREPARED_MENUS: Final = 16
"""Opened menus (with their folded texts) kept for queries, most recently used last."""
INLINE_PRODUCTS: Final = 1000
"""Menus with more products are opened and queried in a worker thread."""

_DOLLARS = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,2})?")
_PERCENT = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3})?")
_INTEGER = re.compile(r"[0-9]{1,4}")
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}


def _items(name: str, text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or len(items) > MAX_LIST_ITEMS or len(text) > MAX_TEXT_CHARS * 4:
        raise InvalidParameter(name, f"expected 1 to {MAX_LIST_ITEMS} comma-separated values")
    return items


def _choices(name: str, text: str, kind: type[Category] | type[Lineage]) -> frozenset[Any]:
    values = set()
    for item in _items(name, text):
        try:
            values.add(kind(item.lower()))
        except ValueError:
            expected = ", ".join(member.value for member in kind)
            raise InvalidParameter(
                name, f"unknown value {item[:40]!r} (expected: {expected})"
            ) from None
    return frozenset(values)


def _dollars_as_cents(name: str, text: str) -> int:
    if _DOLLARS.fullmatch(text) is None:
        raise InvalidParameter(name, "expected an amount in dollars, e.g. 25 or 9.99")
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


def _percent(name: str, text: str) -> float:
    if _PERCENT.fullmatch(text) is None or float(text) > 100:
        raise InvalidParameter(name, "expected a percentage between 0 and 100")
    return float(text)


def _sort(text: str) -> tuple[SortKey, bool]:
    descending = text.startswith("-")
    try:
        return SortKey(text.removeprefix("-")), descending
    except ValueError:
        expected = ", ".join(key.value for key in SortKey)
        raise InvalidParameter("sort", f"expected one of {expected} (- for descending)") from None


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A checked product query: filters and order, page, snapshot selection."""

    query: ProductQuery
    limit: int
    offset: int
    max_age: float | None
    at_ms: int | None
    cursor_snapshot: tuple[int, str] | None
    """(fetched_at_ms, content hash hex prefix) a cursor pins, else None."""
    digest: str
    """Digest of the filters and order (a cursor is valid only with the same ones)."""


def _query_digest(values: dict[str, str]) -> str:
    shown = {name: values[name] for name in sorted(values) if name not in ("cursor", "limit")}
    shown.pop("max_age", None)
    shown.pop("at", None)
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()[:16]


def encode_cursor(fetched_at_ms: int, content_hash: bytes, offset: int, digest: str) -> str:
    return pack_cursor(fetched_at_ms, content_hash.hex()[:24], offset, digest)


def _decode_cursor(text: str, digest: str) -> tuple[int, str, int]:
    fetched_at_ms, hash_prefix, offset, _ = unpack_cursor(
        text, (int, str, int, str), digest, "query"
    )
    if offset > MAX_OFFSET:
        raise InvalidParameter("cursor", "not a cursor of this query (start again without it)")
    return fetched_at_ms, hash_prefix, offset


def product_query_of(values: dict[str, str]) -> ProductQuery:
    """The filters and order among checked single ``values`` (``single_values``)."""
    options: dict[str, Any] = {}
    if "category" in values:
        options["categories"] = _choices("category", values["category"], Category)
    if "lineage" in values:
        options["lineages"] = _choices("lineage", values["lineage"], Lineage)
    if "brand" in values:
        options["brands"] = frozenset(fold(item) for item in _items("brand", values["brand"]))
    if "q" in values:
        text = values["q"]
        words = tuple(words_of(text))
        if len(text) > MAX_TEXT_CHARS or len(words) > MAX_WORDS:
            raise InvalidParameter("q", f"at most {MAX_WORDS} words, {MAX_TEXT_CHARS} characters")
        options["words"] = words
    for name in ("min_thc", "max_thc"):
        if name in values:
            options[name] = _percent(name, values[name])
    if "max_price" in values:
        options["max_price_cents"] = _dollars_as_cents("max_price", values["max_price"])
    if "max_price_per_gram" in values:
        cents = _dollars_as_cents("max_price_per_gram", values["max_price_per_gram"])
        options["max_price_per_gram_cents"] = float(cents)
    if "on_special" in values:
        flag = _BOOLEANS.get(values["on_special"].lower())
        if flag is None:
            raise InvalidParameter("on_special", "expected true or false")
        options["on_special"] = flag
    if "size" in values:
        size = parse_quantity(values["size"][:MAX_TEXT_CHARS])
        if size is None:
            raise InvalidParameter("size", "expected a size such as 3.5g, 1/8oz, 100mg or 2pk")
        options["size"] = size
    if "sort" in values:
        options["sort"], options["descending"] = _sort(values["sort"])
    return ProductQuery(**options)


def parse_limit_of(values: dict[str, str]) -> int:
    """``limit`` of a product query or search: 1 to ``MAX_LIMIT``, default ``DEFAULT_LIMIT``."""
    text = values.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if _INTEGER.fullmatch(text) is None or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidParameter("limit", f"expected an integer between 1 and {MAX_LIMIT}")
    return int(text)


def parse_product_query(request_query: Any) -> ParsedRequest:
    """The checked parameters of a product query. Raises InvalidParameter."""
    values = single_values(request_query, PARAMETERS)
    digest = _query_digest(values)
    query = product_query_of(values)
    limit = parse_limit_of(values)
    max_age = parse_max_age(values["max_age"]) if "max_age" in values else None
    at_ms = parse_at(values["at"]) if "at" in values else None
    if max_age is not None and at_ms is not None:
        raise InvalidParameter("at", "cannot be combined with max_age")
    offset, pinned = 0, None
    if "cursor" in values:
        fetched_at_ms, hash_prefix, offset = _decode_cursor(values["cursor"], digest)
        pinned, at_ms, max_age = (fetched_at_ms, hash_prefix), fetched_at_ms, None
    return ParsedRequest(query, limit, offset, max_age, at_ms, pinned, digest)


class ProductHandlers:
    """The product-query endpoint over one ApiContext."""

    def __init__(self, context: ApiContext, opened: OpenedMenus) -> None:
        self._context = context
        self._opened = opened
        self.queries = 0

    async def products(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/menus/{dispensary}/products"""
        dispensary_id = parse_dispensary_id(request.match_info["dispensary"])
        parsed = parse_product_query(request.query)
        negotiate(request.headers.get("Accept"), (JSON,))
        try:
            answer = await service_of(self._context).get_menu(
                dispensary_id, max_age=parsed.max_age, at_ms=parsed.at_ms
            )
        except MenuNotFound:
            if parsed.cursor_snapshot is None:
                raise
            raise InvalidParameter(
                "cursor", "its snapshot is no longer held: start again"
            ) from None
        record = answer.record
        if parsed.cursor_snapshot is not None and (
            record.fetched_at_ms != parsed.cursor_snapshot[0]
            or bytes(record.content_hash).hex()[:24] != parsed.cursor_snapshot[1]
        ):
            raise InvalidParameter("cursor", "its snapshot is no longer held: start again")
        headers = answer_headers(answer, f"products-{parsed.digest}-{parsed.offset}-{parsed.limit}")
        if not_modified(request, headers["ETag"], record.fetched_at_ms):
            return web.Response(status=304, headers=headers)
        prepared = await self._opened.get(record)
        if len(prepared.menu.products) > INLINE_PRODUCTS:
            matches = await asyncio.to_thread(select, prepared.menu, parsed.query, prepared.texts)
        else:
            matches = select(prepared.menu, parsed.query, prepared.texts)
        self.queries += 1
        page = matches[parsed.offset : parsed.offset + parsed.limit]
        end = parsed.offset + len(page)
        next_cursor = (
            encode_cursor(record.fetched_at_ms, bytes(record.content_hash), end, parsed.digest)
            if end < len(matches)
            else None
        )
        document = {
            "dispensary_id": dispensary_id,
            "fetched_at_ms": record.fetched_at_ms,
            "fetched_at": iso_time(record.fetched_at_ms),
            "record": record_document(record),
            "total": len(matches),
            "count": len(page),
            "products": [match_document(match) for match in page],
            "next_cursor": next_cursor,
        }
        headers["Content-Type"] = JSON.content_type
        return web.Response(body=dumps(document), headers=headers)


def match_document(match: ProductMatch) -> dict[str, Any]:
    document = product_document(match.product)
    if len(match.options) != len(match.product.price_options):
        kept = set(map(id, match.options))
        document["price_options"] = [
            option
            for option, source in zip(
                document["price_options"], match.product.price_options, strict=True
            )
            if id(source) in kept
        ]
    return document
