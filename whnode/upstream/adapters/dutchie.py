"""Dutchie: the consumer GraphQL API, ``FilteredProducts`` as an Apollo persisted query.

``GET {base}/graphql?operationName=FilteredProducts&variables=<json>&extensions=<json>``;
``variables.page`` is 0-based and ``data.filteredProducts.queryInfo.totalPages`` says when to
stop. Errors come back as HTTP 200 with an ``errors`` array: an unknown persisted query (the
hash rotates upstream: it is configuration) or a rejected filter is a refusal
(``AdapterRefusal``), an unknown dispensary is ``UnknownDispensary``.

Products: prices are parallel arrays aligned by index with ``Options`` (``recPrices`` or
``medicalPrices``, then ``Prices``); specials (``recSpecialPrices``...) count only when
``special`` is true; stock comes from ``POSMetaData.children``, matched by option string (the
list can be shorter and in another order); potency is ``THCContent {unit, range}``; pages
overlap, so products are deduplicated by id (the newest ``updatedAt`` wins).
"""

from __future__ import annotations

import json
from typing import Any, Final

from whnode.record.exceptions import ModelError
from whnode.record.model import Category, Menu, Potency, PriceOption, Product, Vendor
from whnode.upstream.adapters.base import (
    Adapter,
    HttpRequester,
    PageInfo,
    as_dict,
    as_list,
    dig,
    load_page,
    paginate,
)
from whnode.upstream.exceptions import UnknownDispensary
from whnode.upstream.normalize import (
    AdapterParseError,
    AdapterRefusal,
    Candidate,
    build_menu,
    clean_description,
    clean_text,
    http_url,
    make_option,
    parse_category,
    parse_lineage,
    parse_potency,
    parse_price_cents,
    parse_stock,
    parse_timestamp_ms,
    sorted_options,
    source_id,
)
from whnode.upstream.sizes import read_size, size_for
from whnode.upstream.sources import SourceConfig, store_of

__all__ = ["ADAPTER", "endpoint", "fetch_pages", "parse_pages", "request_params"]

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
    message = (clean_text(first.get("message")) or "an error without a message")[:200]
    if code == "NOT_FOUND":
        raise UnknownDispensary(
            f"the upstream does not know this dispensary ({message})",
            source=SOURCE,
            dispensary_id=dispensary_id,
        )
    if code == "PERSISTED_QUERY_NOT_FOUND" or message == "PersistedQueryNotFound":
        message = "the persisted query hash is not known upstream (set persisted_query_hash)"
    raise AdapterRefusal(
        f"GraphQL error in an HTTP 200: {message}" + (f" [{code}]" if code else ""),
        source=SOURCE,
        dispensary_id=dispensary_id,
    )


def _products(body: bytes, number: int, dispensary_id: str) -> tuple[list[Any], int | None]:
    document = load_page(body, f"dutchie page {number}")
    if not isinstance(document, dict):
        raise AdapterParseError(f"dutchie page {number} is not a JSON object")
    check_errors(document, dispensary_id)
    found = dig(document, "data", "filteredProducts")
    products = dig(found, "products")
    if not isinstance(products, list):
        raise AdapterParseError(f"dutchie page {number} has no data.filteredProducts.products")
    total = dig(found, "queryInfo", "totalPages")
    total_pages = total if isinstance(total, int) and not isinstance(total, bool) else None
    return products, total_pages


async def fetch_pages(http: HttpRequester, source: SourceConfig, dispensary_id: str) -> list[bytes]:
    """Every FilteredProducts page of the dispensary's menu."""
    store = store_of(dispensary_id)
    url = endpoint(source)
    headers = {"Accept": "application/json", "apollo-require-preflight": "true"}

    async def fetch(page: int) -> bytes:
        return await http.request(
            "GET",
            url,
            source=SOURCE,
            dispensary_id=dispensary_id,
            params=request_params(source, store, page),
            headers=headers,
        )

    def info(body: bytes, number: int) -> PageInfo:
        products, total_pages = _products(body, number, dispensary_id)
        return PageInfo(items=len(products), total_pages=total_pages)

    return await paginate(
        fetch,
        info,
        first=0,
        page_size=source.effective_page_size,
        concurrency=source.page_concurrency,
        source=SOURCE,
        dispensary_id=dispensary_id,
    )


def _potency(content: object, legacy: object) -> Potency | None:
    if isinstance(content, dict):
        found = parse_potency(content.get("range"), content.get("unit"))
        if found is not None:
            return found
    return parse_potency(legacy) if isinstance(legacy, str) else None


def _option_key(value: object) -> str:
    return (clean_text(value) or "").casefold().replace(" ", "")


def _options(raw: dict[str, Any], name: str, pricing: str) -> tuple[PriceOption, ...]:
    options = as_list(raw.get("Options"))
    raw_options = as_list(raw.get("rawOptions"))
    if pricing == "med":
        prices = as_list(raw.get("medicalPrices")) or as_list(raw.get("Prices"))
        specials = as_list(raw.get("medicalSpecialPrices"))
    else:
        prices = as_list(raw.get("recPrices")) or as_list(raw.get("Prices"))
        specials = as_list(raw.get("recSpecialPrices"))
    on_special = raw.get("special") is True
    stock: dict[str, int | None] = {}
    for child in as_list(dig(raw, "POSMetaData", "children")):
        child = as_dict(child)
        stock.setdefault(
            _option_key(child.get("option")), parse_stock(child.get("quantityAvailable"))
        )
    found: list[PriceOption | None] = []
    for index, option in enumerate(options):
        price = parse_price_cents(prices[index]) if index < len(prices) else None
        special = None
        if on_special and index < len(specials):
            special = parse_price_cents(specials[index])
        raw_option = raw_options[index] if index < len(raw_options) else None
        size = size_for(read_size(option, raw_option), name)
        found.append(make_option(size, price, special, stock.get(_option_key(option))))
    return sorted_options(found)


def parse_product(raw: object, pricing: str = "rec") -> Candidate | None:
    """One product of ``data.filteredProducts.products``; None when it has no id or name."""
    if not isinstance(raw, dict):
        return None
    identifier = source_id(raw.get("_id")) or source_id(raw.get("id"))
    name = clean_text(raw.get("Name")) or clean_text(raw.get("name"))
    if identifier is None or name is None or raw.get("Status") == "Inactive":
        return None
    category = parse_category(raw.get("type"))
    refined = parse_category(raw.get("subcategory"))
    if refined in REFINING_CATEGORIES and refined is not category:
        category = refined
    images = [http_url(as_dict(image).get("url")) for image in as_list(raw.get("images"))]
    try:
        product = Product(
            source_id=identifier,
            name=name,
            category=category,
            price_options=_options(raw, name, pricing),
            brand=clean_text(raw.get("brandName")) or clean_text(dig(raw, "brand", "name")),
            lineage=parse_lineage(raw.get("strainType")),
            thc=_potency(raw.get("THCContent"), raw.get("THC")),
            cbd=_potency(raw.get("CBDContent"), raw.get("CBD")),
            image_url=http_url(raw.get("Image")) or next((url for url in images if url), None),
            description=clean_description(raw.get("description")),
        )
    except ModelError:
        return None
    updated = parse_timestamp_ms(raw.get("updatedAt")) or parse_timestamp_ms(raw.get("createdAt"))
    return Candidate(product, updated)


def parse_pages(dispensary_id: str, pages: list[bytes], fetched_at_ms: int) -> Menu:
    """The menu in the FilteredProducts pages (pure)."""
    candidates: list[Candidate] = []
    for number, body in enumerate(pages):
        products, _ = _products(body, number, dispensary_id)
        for raw in products:
            candidate = parse_product(raw)
            if candidate is not None:
                candidates.append(candidate)
    return build_menu(
        dispensary_id=dispensary_id,
        vendor=Vendor.DUTCHIE,
        name=None,
        fetched_at_ms=fetched_at_ms,
        candidates=candidates,
    )


ADAPTER: Final = Adapter(vendor=Vendor.DUTCHIE, fetch_pages=fetch_pages, parse_pages=parse_pages)
