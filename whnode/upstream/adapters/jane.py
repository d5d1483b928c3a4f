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

from whnode.record.exceptions import ModelError
from whnode.record.model import Category, Menu, PotencyUnit, PriceOption, Product, Vendor
from whnode.upstream.adapters.base import (
    Adapter,
    HttpRequester,
    PageInfo,
    as_dict,
    as_list,
    load_page,
    paginate,
)
from whnode.upstream.normalize import (
    AdapterParseError,
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
    parse_timestamp_ms,
    sorted_options,
    source_id,
)
from whnode.upstream.sizes import size_for
from whnode.upstream.sources import SourceConfig, store_of

__all__ = ["ADAPTER", "fetch_pages", "parse_hit", "parse_pages", "request_body"]

SOURCE: Final = str(Vendor.JANE)
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


def _hits(body: bytes, number: int) -> tuple[list[Any], int | None]:
    document = load_page(body, f"jane page {number}")
    if not isinstance(document, dict) or not isinstance(document.get("hits"), list):
        raise AdapterParseError(f"jane page {number} has no hits list")
    pages = document.get("nbPages")
    total_pages = pages if isinstance(pages, int) and not isinstance(pages, bool) else None
    return document["hits"], total_pages


async def fetch_pages(http: HttpRequester, source: SourceConfig, dispensary_id: str) -> list[bytes]:
    """Every page of the store's products in the Algolia index."""
    store = store_of(dispensary_id)
    url = source.url(f"/1/indexes/{source.jane_index}/query")
    headers = {"Accept": "application/json"}
    if source.jane_algolia_app_id:
        headers["x-algolia-application-id"] = source.jane_algolia_app_id
    if source.jane_algolia_api_key is not None:
        headers["x-algolia-api-key"] = source.jane_algolia_api_key.reveal()
    size = source.effective_page_size

    async def fetch(page: int) -> bytes:
        return await http.request(
            "POST",
            url,
            source=SOURCE,
            dispensary_id=dispensary_id,
            json=request_body(store, page, size),
            headers=headers,
        )

    def info(body: bytes, number: int) -> PageInfo:
        hits, total_pages = _hits(body, number)
        return PageInfo(items=len(hits), total_pages=total_pages)

    return await paginate(
        fetch,
        info,
        first=0,
        page_size=size,
        concurrency=source.page_concurrency,
        source=SOURCE,
        dispensary_id=dispensary_id,
    )


def _special(hit: dict[str, Any], key: str) -> int | None:
    special = hit.get(f"special_price_{key}")
    if isinstance(special, dict):
        for field in SPECIAL_PRICE_KEYS:
            found = parse_price_cents(special.get(field))
            if found is not None:
                return found
    return parse_price_cents(hit.get(f"discounted_price_{key}"))


def _options(hit: dict[str, Any], name: str) -> tuple[PriceOption, ...]:
    weights = [w for w in as_list(hit.get("available_weights")) if isinstance(w, str)]
    if not weights and hit.get("price_each") is not None:
        weights = ["each"]
    found: list[PriceOption | None] = []
    for weight in weights:
        key = "_".join(weight.strip().lower().replace("_", " ").split())
        found.append(
            make_option(
                size_for(weight, name),
                parse_price_cents(hit.get(f"price_{key}")),
                _special(hit, key),
            )
        )
    return sorted_options(found)


def parse_hit(hit: object, store: str) -> Candidate | None:
    """One Algolia hit (flat, or an ad wrapped in ``search_attributes``); None when it has no
    id or name or belongs to another store."""
    if not isinstance(hit, dict):
        return None
    if isinstance(hit.get("search_attributes"), dict):
        hit = {**hit, **hit["search_attributes"]}
    store_id = hit.get("store_id")
    if store_id is not None and str(store_id).strip() != store:
        return None
    identifier = source_id(hit.get("product_id"))
    name = clean_text(hit.get("name"))
    if identifier is None or name is None:
        return None
    category = parse_category(hit.get("kind"))
    refined = parse_category(hit.get("kind_subtype"))
    if refined in REFINING_CATEGORIES and refined is not category:
        category = refined
    images = [http_url(url) for url in as_list(hit.get("image_urls"))]
    try:
        product = Product(
            source_id=identifier,
            name=name,
            category=category,
            price_options=_options(hit, name),
            brand=clean_text(hit.get("brand")),
            lineage=parse_lineage(hit.get("category")),
            thc=parse_potency(hit.get("percent_thc"), default_unit=PotencyUnit.PERCENT),
            cbd=parse_potency(hit.get("percent_cbd"), default_unit=PotencyUnit.PERCENT),
            image_url=next((url for url in images if url), None),
            description=clean_description(hit.get("description")),
        )
    except ModelError:
        return None
    return Candidate(product, parse_timestamp_ms(hit.get("updated_at")))


def parse_pages(dispensary_id: str, pages: list[bytes], fetched_at_ms: int) -> Menu:
    """The menu in the Algolia pages (pure)."""
    store = store_of(dispensary_id)
    candidates: list[Candidate] = []
    for number, body in enumerate(pages):
        hits, _ = _hits(body, number)
        for hit in hits:
            candidate = parse_hit(as_dict(hit) or hit, store)
            if candidate is not None:
                candidates.append(candidate)
    return build_menu(
        dispensary_id=dispensary_id,
        vendor=Vendor.JANE,
        name=None,
        fetched_at_ms=fetched_at_ms,
        candidates=candidates,
    )


ADAPTER: Final = Adapter(vendor=Vendor.JANE, fetch_pages=fetch_pages, parse_pages=parse_pages)
