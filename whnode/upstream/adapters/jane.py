"""iHeartJane: the Algolia index behind Jane menus.

``POST {base}/1/indexes/menu-products-production/query`` with the embedding site's
``x-algolia-application-id`` and ``x-algolia-api-key`` headers (configuration) and the body
``{"query": "", "filters": "store_id : 1547", "page": 0, "hitsPerPage": 1000}``; pages are
0-based and ``nbPages`` says when to stop.

Hits are flat or, for ad records, wrapped in ``search_attributes``; hits of another store are
skipped. ``kind`` is the product type (any case), ``category`` the lineage. Each weight in
``available_weights`` (``"eighth ounce"`` or ``"eighth_ounce"``) has ``price_<weight>``, maybe
``discounted_price_<weight>`` and a ``special_price_<weight>`` object whose prices are strings.
There is no stock count.
"""

from __future__ import annotations

from typing import Any, Final

from whnode.record.model import Category, DropReason, PotencyUnit, PriceOption, Vendor
from whnode.upstream import normalize
from whnode.upstream.adapters import walk
from whnode.upstream.adapters.base import as_list
from whnode.upstream.sizes import read_size, size_for

__all__ = ["ADAPTER", "RULES", "parse_hit", "request_body"]

REFINING_CATEGORIES: Final = frozenset(
    {Category.BEVERAGE, Category.CAPSULE, Category.TINCTURE, Category.TOPICAL}
)
SPECIAL_PRICE_KEYS: Final = ("discount_price", "price", "amount")
"""Where a ``special_price_<weight>`` object keeps its (string) price."""


def request_body(store: str, page: int, hits_per_page: int) -> dict[str, Any]:
    """The Algolia query of one page."""
    return {
        "query": "",
        "filters": f"store_id : {store}",
        "page": page,
        "hitsPerPage": hits_per_page,
    }


def read_page(document: Any, number: int, dispensary_id: str) -> walk.Page:
    """Algolia's ``hits`` and ``nbPages``."""
    if not isinstance(document, dict) or not isinstance(document.get("hits"), list):
        raise normalize.AdapterParseError(f"jane page {number} has no hits list")
    pages = document.get("nbPages")
    total_pages = pages if isinstance(pages, int) and not isinstance(pages, bool) else None
    return walk.Page(document["hits"], total_pages=total_pages)


def request(call: walk.PageCall) -> walk.Request:
    """The Algolia query of one page, with the embedding site's keys when configured."""
    source = call.source
    headers = {"Accept": "application/json"}
    if source.jane_algolia_app_id:
        headers["x-algolia-application-id"] = source.jane_algolia_app_id
    if source.jane_algolia_api_key is not None:
        headers["x-algolia-api-key"] = source.jane_algolia_api_key.reveal()
    return walk.Request(
        "POST",
        source.url(f"/1/indexes/{source.jane_index}/query"),
        json=request_body(call.store, call.number, call.size),
        headers=headers,
    )


def _special(hit: dict[str, Any], key: str) -> int | None:
    special = hit.get(f"special_price_{key}")
    if isinstance(special, dict):
        for field in SPECIAL_PRICE_KEYS:
            found = normalize.parse_price_cents(special.get(field))
            if found is not None:
                return found
    return normalize.parse_price_cents(hit.get(f"discounted_price_{key}"))


def _options(hit: dict[str, Any], name: str, reader: walk.ItemReader) -> tuple[PriceOption, ...]:
    weights = [w for w in as_list(hit.get("available_weights")) if isinstance(w, str)]
    if not weights and hit.get("price_each") is not None:
        weights = ["each"]
    found: list[PriceOption | None] = []
    for weight in weights:
        key = "_".join(weight.strip().lower().replace("_", " ").split())
        price = walk.read_price(hit.get(f"price_{key}"))
        size = size_for(read_size(weight), name)
        found.append(reader.option(size, price, _special(hit, key), label=weight))
    return reader.options(found)


def parse_hit(hit: object, reader: walk.ItemReader) -> normalize.Candidate | None:
    """One Algolia hit (flat, or an ad wrapped in ``search_attributes``); a hit of another
    store is left out."""
    item = reader.as_item(hit)
    if item is None:
        return None
    if isinstance(item.get("search_attributes"), dict):
        item = {**item, **item["search_attributes"]}
    identity = reader.identity(item.get("product_id"), item.get("name"))
    if identity is None:
        return None
    identifier, name = identity
    store_id = item.get("store_id")
    if store_id is not None and str(store_id).strip() != reader.store:
        return reader.drop(DropReason.OTHER_STORE)
    category = normalize.parse_category(item.get("kind"))
    refined = normalize.parse_category(item.get("kind_subtype"))
    if refined in REFINING_CATEGORIES and refined is not category:
        category = refined
    images = [normalize.http_url(url) for url in as_list(item.get("image_urls"))]
    return reader.product(
        normalize.parse_timestamp_ms(item.get("updated_at")),
        source_id=identifier,
        name=name,
        category=category,
        price_options=_options(item, name, reader),
        brand=normalize.clean_text(item.get("brand")),
        lineage=normalize.parse_lineage(item.get("category")),
        thc=normalize.parse_potency(item.get("percent_thc"), default_unit=PotencyUnit.PERCENT),
        cbd=normalize.parse_potency(item.get("percent_cbd"), default_unit=PotencyUnit.PERCENT),
        image_url=next((url for url in images if url), None),
        description=normalize.clean_description(item.get("description")),
    )


RULES: Final = walk.VendorRules(Vendor.JANE, request, read_page, parse_hit, first_page=0)
ADAPTER: Final = walk.adapter(RULES)
