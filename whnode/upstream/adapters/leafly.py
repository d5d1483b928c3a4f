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
from whnode.upstream import normalize
from whnode.upstream.adapters import walk
from whnode.upstream.adapters.base import dig
from whnode.upstream.sizes import read_size, size_for

__all__ = ["ADAPTER", "RULES", "parse_item"]

PATH: Final = "/api/dispensaries/v1/{slug}/menu_items"


def read_page(document: Any, number: int, dispensary_id: str) -> walk.Page:
    """``data`` (or ``menuItems``) and ``metadata.totalCount`` (or ``meta.totalCount``)."""
    if not isinstance(document, dict):
        raise normalize.AdapterParseError(f"leafly page {number} is not a JSON object")
    items = document.get("data")
    if not isinstance(items, list):
        items = document.get("menuItems")
    if not isinstance(items, list):
        raise normalize.AdapterParseError(f"leafly page {number} has neither data nor menuItems")
    total = dig(document, "metadata", "totalCount")
    if total is None:
        total = dig(document, "meta", "totalCount")
    return walk.Page(items, total_items=total)


def request(call: walk.PageCall) -> walk.Request:
    """One ``take``/``skip`` page."""
    return walk.Request(
        "GET",
        call.source.url(PATH.format(slug=call.store)),
        params={"take": str(call.size), "skip": str(call.number * call.size)},
        headers={"Accept": "application/json"},
    )


def parse_item(raw: object, reader: walk.ItemReader) -> normalize.Candidate | None:
    """One menu item (one size of one product)."""
    item = reader.as_item(raw)
    identity = None if item is None else reader.identity(item.get("id"), item.get("name"))
    if item is None or identity is None:
        return None
    identifier, name = identity
    if "priceInCents" in item:
        price = walk.read_price(item.get("priceInCents"), cents=True)
    else:
        price = walk.read_price(item.get("price"))
    size = read_size(
        {"value": item.get("quantity"), "unit": item.get("unit")}, item.get("displayQuantity")
    )
    stock = normalize.parse_stock(item.get("stockQuantity"))
    option = reader.option(
        size_for(size, name), price, None, stock, label=item.get("displayQuantity")
    )
    updated = normalize.parse_timestamp_ms(
        item.get("lastModifiedAt")
    ) or normalize.parse_timestamp_ms(item.get("updatedAt"))
    return reader.product(
        updated,
        source_id=identifier,
        name=name,
        category=normalize.parse_category(item.get("productCategory"), item.get("category")),
        price_options=reader.options([option]),
        brand=normalize.clean_text(item.get("brandName"))
        or normalize.clean_text(dig(item, "brand", "name")),
        lineage=normalize.parse_lineage(item.get("strainType")),
        thc=normalize.parse_potency(item.get("thcContent"), item.get("thcUnit")),
        cbd=normalize.parse_potency(item.get("cbdContent"), item.get("cbdUnit")),
        image_url=normalize.http_url(item.get("imageUrl")),
        description=normalize.clean_description(item.get("description")),
    )


RULES: Final = walk.VendorRules(
    Vendor.LEAFLY, request, read_page, parse_item, first_page=0, merge_sizes=True
)
ADAPTER: Final = walk.adapter(RULES)
