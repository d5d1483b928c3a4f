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

from whnode.record.exceptions import ModelError
from whnode.record.model import Menu, PriceOption, Product, Vendor
from whnode.upstream.adapters.base import (
    Adapter,
    HttpRequester,
    PageInfo,
    as_dict,
    dig,
    load_page,
    pages_for,
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
    parse_stock,
    parse_timestamp_ms,
    source_id,
)
from whnode.upstream.sizes import read_size, size_for
from whnode.upstream.sources import SourceConfig, store_of

__all__ = ["ADAPTER", "fetch_pages", "parse_item", "parse_pages"]

SOURCE: Final = str(Vendor.LEAFLY)
PATH: Final = "/api/dispensaries/v1/{slug}/menu_items"


def _page(body: bytes, number: int) -> tuple[list[Any], object]:
    document = load_page(body, f"leafly page {number}")
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
    return items, total


async def fetch_pages(http: HttpRequester, source: SourceConfig, dispensary_id: str) -> list[bytes]:
    """Every page (``take``/``skip``) of the dispensary's menu."""
    url = source.url(PATH.format(slug=store_of(dispensary_id)))
    take = source.effective_page_size

    async def fetch(page: int) -> bytes:
        return await http.request(
            "GET",
            url,
            source=SOURCE,
            dispensary_id=dispensary_id,
            params={"take": str(take), "skip": str(page * take)},
            headers={"Accept": "application/json"},
        )

    def info(body: bytes, number: int) -> PageInfo:
        items, total = _page(body, number)
        return PageInfo(items=len(items), total_pages=pages_for(total, take))

    return await paginate(
        fetch,
        info,
        first=0,
        page_size=take,
        concurrency=source.page_concurrency,
        source=SOURCE,
        dispensary_id=dispensary_id,
    )


def _option(item: dict[str, Any], name: str) -> PriceOption | None:
    if "priceInCents" in item:
        price = parse_price_cents(item.get("priceInCents"), cents=True)
    else:
        price = parse_price_cents(item.get("price"))
    size = read_size(
        {"value": item.get("quantity"), "unit": item.get("unit")}, item.get("displayQuantity")
    )
    return make_option(size_for(size, name), price, None, parse_stock(item.get("stockQuantity")))


def parse_item(item: object) -> Candidate | None:
    """One menu item (one size of one product); None without id or name."""
    if not isinstance(item, dict):
        return None
    identifier = source_id(item.get("id"))
    name = clean_text(item.get("name"))
    if identifier is None or name is None:
        return None
    option = _option(item, name)
    brand = clean_text(item.get("brandName")) or clean_text(dig(item, "brand", "name"))
    try:
        product = Product(
            source_id=identifier,
            name=name,
            category=parse_category(item.get("productCategory"), item.get("category")),
            price_options=() if option is None else (option,),
            brand=brand,
            lineage=parse_lineage(item.get("strainType")),
            thc=parse_potency(item.get("thcContent"), item.get("thcUnit")),
            cbd=parse_potency(item.get("cbdContent"), item.get("cbdUnit")),
            image_url=http_url(item.get("imageUrl")),
            description=clean_description(item.get("description")),
        )
    except ModelError:
        return None
    updated = parse_timestamp_ms(item.get("lastModifiedAt")) or parse_timestamp_ms(
        item.get("updatedAt")
    )
    return Candidate(product, updated)


def parse_pages(dispensary_id: str, pages: list[bytes], fetched_at_ms: int) -> Menu:
    """The menu in the ``take``/``skip`` pages, sizes merged per product (pure)."""
    candidates: list[Candidate] = []
    for number, body in enumerate(pages):
        items, _ = _page(body, number)
        for item in items:
            candidate = parse_item(as_dict(item) or item)
            if candidate is not None:
                candidates.append(candidate)
    return build_menu(
        dispensary_id=dispensary_id,
        vendor=Vendor.LEAFLY,
        name=None,
        fetched_at_ms=fetched_at_ms,
        candidates=candidates,
        merge_sizes=True,
    )


ADAPTER: Final = Adapter(vendor=Vendor.LEAFLY, fetch_pages=fetch_pages, parse_pages=parse_pages)
