"""Dutchie: the consumer GraphQL API, ``FilteredProducts`` as an Apollo persisted query.

``GET {base}/graphql?operationName=FilteredProducts&variables=<json>&extensions=<json>``;
``variables.page`` is 0-based and ``data.filteredProducts.queryInfo.totalPages`` says when to
stop. Errors come back as HTTP 200 with an ``errors`` array: an unknown persisted query (the
hash rotates upstream: it is configuration) or a rejected filter is a refusal
(``AdapterRefusal``), an unknown dispensary is ``UnknownDispensary``.

Products: prices are parallel arrays aligned by index with ``Options`` (``recPrices``, else
``Prices``); specials (``recSpecialPrices``) count only when
``special`` is true; stock comes from ``POSMetaData.children``, matched by option string (the
list can be shorter and in another order); potency is ``THCContent {unit, range}``; pages
overlap, so products are deduplicated by id (the newest ``updatedAt`` wins); inactive
products are left out. The walk is the shared one (``whnode.upstream.adapters.walk``).
"""

from __future__ import annotations

import json
from typing import Any, Final

from whnode.record.model import Category, DropReason, Potency, PriceOption, Vendor
from whnode.upstream import normalize
from whnode.upstream.adapters import walk
from whnode.upstream.adapters.base import as_dict, as_list, dig
from whnode.upstream.exceptions import UnknownDispensary
from whnode.upstream.sizes import read_size, size_for
from whnode.upstream.sources import SourceConfig

__all__ = ["ADAPTER", "RULES", "endpoint", "parse_product", "request_params"]

OPERATION: Final = "FilteredProducts"
SOURCE: Final = str(Vendor.DUTCHIE)
REFINING_CATEGORIES: Final = frozenset(
    {Category.BEVERAGE, Category.CAPSULE, Category.TINCTURE, Category.TOPICAL}
)
"""Subcategories that say more than Dutchie's ``type`` (an "Edible" that is a drink)."""


def endpoint(source: SourceConfig) -> str:
    """The GraphQL URL: the base URL when it already ends in ``graphql``, else ``/graphql``
    under it."""
    base = source.base_url.rstrip("/")
    return base if base.endswith("graphql") else base + "/graphql"


def request_params(source: SourceConfig, store: str, page: int) -> dict[str, str]:
    """Query parameters of the FilteredProducts request for one page."""
    variables = {
        "includeEnterpriseSpecials": False,
        "productsFilter": {
            "dispensaryId": store,
            "pricingType": source.dutchie_pricing_type,
            "strainTypes": [],
            "subcategories": [],
            "Status": "Active",
            "types": [],
            "useCache": False,
            "isDefaultSort": True,
            "sortBy": "popularSortIdx",
            "sortDirection": 1,
            "bypassOnlineThresholds": False,
            "isKioskMenu": False,
            "removeProductsBelowOptionThresholds": True,
        },
        "page": page,
        "perPage": source.effective_page_size,
    }
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": source.dutchie_query_hash}}
    return {
        "operationName": OPERATION,
        "variables": json.dumps(variables, separators=(",", ":")),
        "extensions": json.dumps(extensions, separators=(",", ":")),
    }


def check_errors(document: dict[str, Any], dispensary_id: str) -> None:
    """Raise for GraphQL errors delivered in an HTTP 200 without usable data."""
    errors = as_list(document.get("errors"))
    if not errors or isinstance(dig(document, "data", "filteredProducts"), dict):
        return
    first = as_dict(errors[0])
    code = str(dig(first, "extensions", "code") or "")
    message = (normalize.clean_text(first.get("message")) or "an error without a message")[:200]
    if code == "NOT_FOUND":
        raise UnknownDispensary(
            f"the upstream does not know this dispensary ({message})",
            source=SOURCE,
            dispensary_id=dispensary_id,
        )
    if code == "PERSISTED_QUERY_NOT_FOUND" or message == "PersistedQueryNotFound":
        message = "the persisted query hash is not known upstream (set persisted_query_hash)"
    raise normalize.AdapterRefusal(
        f"GraphQL error in an HTTP 200: {message}" + (f" [{code}]" if code else ""),
        source=SOURCE,
        dispensary_id=dispensary_id,
    )


def read_page(document: Any, number: int, dispensary_id: str) -> walk.Page:
    """``data.filteredProducts.products`` and ``queryInfo.totalPages``; errors in a 200 raise."""
    if not isinstance(document, dict):
        raise normalize.AdapterParseError(f"dutchie page {number} is not a JSON object")
    check_errors(document, dispensary_id)
    found = dig(document, "data", "filteredProducts")
    products = dig(found, "products")
    if not isinstance(products, list):
        raise normalize.AdapterParseError(
            f"dutchie page {number} has no data.filteredProducts.products"
        )
    total = dig(found, "queryInfo", "totalPages")
    total_pages = total if isinstance(total, int) and not isinstance(total, bool) else None
    return walk.Page(products, total_pages=total_pages)


def request(call: walk.PageCall) -> walk.Request:
    """The FilteredProducts request of one page."""
    return walk.Request(
        "GET",
        endpoint(call.source),
        params=request_params(call.source, call.store, call.number),
        headers={"Accept": "application/json", "apollo-require-preflight": "true"},
    )


def _potency(content: object, legacy: object) -> Potency | None:
    if isinstance(content, dict):
        found = normalize.parse_potency(content.get("range"), content.get("unit"))
        if found is not None:
            return found
    return normalize.parse_potency(legacy) if isinstance(legacy, str) else None


def _option_key(value: object) -> str:
    return (normalize.clean_text(value) or "").casefold().replace(" ", "")


def _options(raw: dict[str, Any], name: str, reader: walk.ItemReader) -> tuple[PriceOption, ...]:
    options = as_list(raw.get("Options"))
    raw_options = as_list(raw.get("rawOptions"))
    prices = as_list(raw.get("recPrices")) or as_list(raw.get("Prices"))
    specials = as_list(raw.get("recSpecialPrices")) if raw.get("special") is True else []
    stock: dict[str, int | None] = {}
    for child in as_list(dig(raw, "POSMetaData", "children")):
        child = as_dict(child)
        stock.setdefault(
            _option_key(child.get("option")), normalize.parse_stock(child.get("quantityAvailable"))
        )
    found: list[PriceOption | None] = []
    for index, option in enumerate(options):
        price = walk.read_price(prices[index] if index < len(prices) else None)
        special = normalize.parse_price_cents(specials[index]) if index < len(specials) else None
        raw_option = raw_options[index] if index < len(raw_options) else None
        size = size_for(read_size(option, raw_option), name)
        found.append(
            reader.option(size, price, special, stock.get(_option_key(option)), label=option)
        )
    return reader.options(found)


def parse_product(raw: object, reader: walk.ItemReader) -> normalize.Candidate | None:
    """One product of ``data.filteredProducts.products``."""
    item = reader.as_item(raw)
    identity = None
    if item is not None:
        identity = reader.identity(
            item.get("_id") or item.get("id"), item.get("Name") or item.get("name")
        )
    if item is None or identity is None:
        return None
    identifier, name = identity
    if item.get("Status") == "Inactive":
        return reader.drop(DropReason.INACTIVE)
    category = normalize.parse_category(item.get("type"))
    refined = normalize.parse_category(item.get("subcategory"))
    if refined in REFINING_CATEGORIES and refined is not category:
        category = refined
    images = [
        normalize.http_url(as_dict(image).get("url")) for image in as_list(item.get("images"))
    ]
    updated = normalize.parse_timestamp_ms(item.get("updatedAt")) or normalize.parse_timestamp_ms(
        item.get("createdAt")
    )
    return reader.product(
        updated,
        source_id=identifier,
        name=name,
        category=category,
        price_options=_options(item, name, reader),
        brand=normalize.clean_text(item.get("brandName"))
        or normalize.clean_text(dig(item, "brand", "name")),
        lineage=normalize.parse_lineage(item.get("strainType")),
        thc=_potency(item.get("THCContent"), item.get("THC")),
        cbd=_potency(item.get("CBDContent"), item.get("CBD")),
        image_url=normalize.http_url(item.get("Image"))
        or next((url for url in images if url), None),
        description=normalize.clean_description(item.get("description")),
    )


RULES: Final = walk.VendorRules(Vendor.DUTCHIE, request, read_page, parse_product, first_page=0)
ADAPTER: Final = walk.adapter(RULES)
