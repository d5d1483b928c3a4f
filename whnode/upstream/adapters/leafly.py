"""Leafly: the consumer menu API.

``GET {base}/api/dispensaries/v1/{slug}/menu_items?take=50&skip=N`` (``take`` above 50 is an
HTTP 400), ``{data: [...], metadata: {totalCount}}``; a newer version of the envelope says
``menuItems`` instead of ``data``.

Each item has one price (``price`` in dollars, a number or a string such as ``"$1,200.00"``;
``priceInCents`` in the newer envelope) for one size (``quantity`` + ``unit``, where 0 and
9999999 mean unknown): the sizes of one product are separate items, merged here into one
product with several price options (same name, brand, category and lineage). Potency is
``thcContent`` with ``thcUnit`` (``%``, ``mg``, ``mg/g``); ``stockQuantity`` may be null.
"""

from __future__ import annotations

from typing import Any, Final

from whnode.record.model import Vendor
from whnode.upstream.adapters.base import dig
from whnode.upstream.adapters.walk import (
    ItemReader,
    Page,
    PageCall,
    Request,
    VendorRules,
    adapter,
    read_price,
)
from whnode.upstream.normalize import (
    AdapterParseError,
    Candidate,
    clean_description,
    clean_text,
    http_url,
    parse_category,
    parse_lineage,
    parse_potency,
    parse_stock,
    parse_timestamp_ms,
)
from whnode.upstream.sizes import read_size, size_for

__all__ = ["ADAPTER", "RULES", "parse_item"]

PATH: Final = "/api/dispensaries/v1/{slug}/menu_items"


def read_page(document: Any, number: int, dispensary_id: str) -> Page:
    """``data`` (or ``menuItems``) and ``metadata.totalCount`` (or ``meta.totalCount``)."""
    if not isinstance(document, dict):
        raise AdapterParseError(f"leafly page {number} is not a JSON object")
    items = document.get("data")
    if not isinstance(items, list):
        items = document.get("menuItems")
    if not isinstance(items, list):
        raise AdapterParseError(f"leafly page {number} has neither data nor menuItems")
    total = dig(document, "metadata", "totalCount")
    if total is None:
        total = dig(document, "meta", "totalCount")
    return Page(items, total_items=total)


def request(call: PageCall) -> Request:
    """One ``take``/``skip`` page."""
    return Request(
        "GET",
        call.source.url(PATH.format(slug=call.store)),
        params={"take": str(call.size), "skip": str(call.number * call.size)},
        headers={"Accept": "application/json"},
    )


def parse_item(raw: object, reader: ItemReader) -> Candidate | None:
    """One menu item (one size of one product)."""
    item = reader.as_item(raw)
    identity = None if item is None else reader.identity(item.get("id"), item.get("name"))
    if item is None or identity is None:
        return None
    identifier, name = identity
    if "priceInCents" in item:
        price = read_price(item.get("priceInCents"), cents=True)
    else:
        price = read_price(item.get("price"))
    size = read_size(
        {"value": item.get("quantity"), "unit": item.get("unit")}, item.get("displayQuantity")
    )
    stock = parse_stock(item.get("stockQuantity"))
    option = reader.option(
        size_for(size, name), price, None, stock, label=item.get("displayQuantity")
    )
    updated = parse_timestamp_ms(item.get("lastModifiedAt")) or parse_timestamp_ms(
        item.get("updatedAt")
    )
    return reader.product(
        updated,
        source_id=identifier,
        name=name,
        category=parse_category(item.get("productCategory"), item.get("category")),
        price_options=reader.options([option]),
        brand=clean_text(item.get("brandName")) or clean_text(dig(item, "brand", "name")),
        lineage=parse_lineage(item.get("strainType")),
        thc=parse_potency(item.get("thcContent"), item.get("thcUnit")),
        cbd=parse_potency(item.get("cbdContent"), item.get("cbdUnit")),
        image_url=http_url(item.get("imageUrl")),
        description=clean_description(item.get("description")),
    )


RULES: Final = VendorRules(
    Vendor.LEAFLY, request, read_page, parse_item, first_page=0, merge_sizes=True
)
ADAPTER: Final = adapter(RULES)
