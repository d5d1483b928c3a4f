"""Flowhub: a dispensary's own POS inventory (keyed: ``client_id`` and ``api_key``).

``GET {base}/v0/locations/{location}/inventory?page=N&pageSize=M`` (1-based) with the
``clientId`` and ``key`` headers answers ``{data: [...], total}``. Each entry is one size of
one product, its size written in ``productName`` (``"Blue Dream 3.5g"``, ``"Blue Dream -
1/8 oz"``): a weight at the end of the name is the size and leaves the name, and the sizes of
one product then merge as Leafly's do; a name that ends otherwise (``"Gummies 100mg"``,
``"Minis 0.5g x 5"``) keeps its words and states its size as any name does. Prices are integer
cents (``preTaxPriceInPennies``); stock is ``quantity``; potency is
``cannabinoidInformation[] {name, lowerRange, upperRange, unitOfMeasure}``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from whnode.record.model import Quantity, QuantityUnit, Vendor
from whnode.upstream import normalize
from whnode.upstream.adapters import walk
from whnode.upstream.adapters.base import as_dict, as_list
from whnode.upstream.exceptions import UpstreamRefused
from whnode.upstream.sizes import read_size, size_for

__all__ = ["ADAPTER", "RULES", "parse_entry", "split_size"]

PATH: Final = "/v0/locations/{location}/inventory"
_TRAILING_WEIGHT: Final = re.compile(
    r"^(?P<name>.*?\S)\s*(?:-\s*)?(?P<size>(?:\d+/\d+|\d*\.?\d+)\s*"
    r"(?:g|grams?|oz|ounces?))$",
    re.IGNORECASE,
)

_PACK_OF: Final = re.compile(r"\d\s*[x×*]$", re.IGNORECASE)
"""A name ending in "5 x" before a weight states a pack ("Minis 5 x 0.5g"), not a size."""


def split_size(product_name: str) -> tuple[str, Quantity | None]:
    """``"Blue Dream 3.5g"`` → ("Blue Dream", 3.5 g); a name that does not end in a weight
    (grams or ounces) comes back whole, without a size."""
    match = _TRAILING_WEIGHT.match(product_name)
    if match is None or _PACK_OF.search(match["name"]):
        return product_name, None
    size = read_size(match["size"])
    if size is None or size.unit is not QuantityUnit.GRAMS:
        return product_name, None
    return match["name"], size


def request(call: walk.PageCall) -> walk.Request:
    """One page of the location's inventory, with the API client's headers."""
    headers = {"Accept": "application/json"}
    if call.source.client_id is not None:
        headers["clientId"] = call.source.client_id
    if call.source.api_key is not None:
        headers["key"] = call.source.api_key.reveal()
    return walk.Request(
        "GET",
        call.source.url(PATH.format(location=call.store)),
        params={"page": str(call.number), "pageSize": str(call.size)},
        headers=headers,
    )


def read_page(document: Any, number: int, dispensary_id: str) -> walk.Page:
    """``data`` and ``total``; an answer without ``data`` but with an error is a refusal."""
    if not isinstance(document, dict):
        raise normalize.AdapterParseError(f"flowhub page {number} is not a JSON object")
    items = document.get("data")
    if not isinstance(items, list):
        if document.get("error") or document.get("message"):
            message = normalize.clean_text(document.get("error") or document.get("message")) or "?"
            raise UpstreamRefused(
                f"flowhub refused the request: {message[:200]}",
                source=str(Vendor.FLOWHUB),
                dispensary_id=dispensary_id,
            )
        raise normalize.AdapterParseError(f"flowhub page {number} has no data list")
    return walk.Page(items, total_items=document.get("total"))


def _potency(entry: dict[str, Any], code: str) -> Any:
    for found in as_list(entry.get("cannabinoidInformation")):
        found = as_dict(found)
        if str(found.get("name", "")).upper() == code:
            values = [found.get("lowerRange"), found.get("upperRange")]
            return normalize.parse_potency(values, found.get("unitOfMeasure"))
    return None


def parse_entry(raw: object, reader: walk.ItemReader) -> normalize.Candidate | None:
    """One inventory entry (one size of one product)."""
    entry = reader.as_item(raw)
    identity = (
        None if entry is None else reader.identity(entry.get("productId"), entry.get("productName"))
    )
    if entry is None or identity is None:
        return None
    identifier, full_name = identity
    name, size = split_size(full_name)
    option = reader.option(
        size_for(size, name),
        walk.read_price(entry.get("preTaxPriceInPennies"), cents=True),
        None,
        normalize.parse_stock(entry.get("quantity")),
        label=full_name,
    )
    return reader.product(
        normalize.parse_timestamp_ms(entry.get("updatedAt")),
        source_id=identifier,
        name=name,
        category=normalize.parse_category(entry.get("category"), entry.get("type")),
        price_options=reader.options([option]),
        brand=normalize.clean_text(entry.get("brand")),
        lineage=normalize.parse_lineage(entry.get("speciesName")),
        thc=_potency(entry, "THC"),
        cbd=_potency(entry, "CBD"),
        image_url=normalize.http_url(entry.get("productPictureURL")),
        description=normalize.clean_description(entry.get("productDescription")),
    )


RULES: Final = walk.VendorRules(
    Vendor.FLOWHUB, request, read_page, parse_entry, first_page=1, merge_sizes=True
)
ADAPTER: Final = walk.adapter(RULES)
