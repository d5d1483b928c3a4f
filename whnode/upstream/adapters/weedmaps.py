"""Weedmaps: the discovery API and the JSON:API v1 menu.

Discovery (the default): ``GET {base}/discovery/v1/listings/dispensaries/{slug}/menu_items
?page=N&page_size=100`` (1-based pages, at most 100 items), ``{data: {menu_items: [...]},
meta: {total_menu_items}}``. ``category.name`` is the lineage for flower (``"Indica"``), the
type lives in ``edge_category``; ``brand_endorsement`` is often null and the brand then sits in
the name (``"Brand | Name"``); ``prices`` comes in two shapes (a list of tiers per unit, or one
object per size) beside ``grams_per_eighth``, a number that is not a price;
``metrics.cannabinoids[]`` carry their unit; ``body`` may be HTML.

JSON:API (``weedmaps_api = v1``): ``GET {base}/v1/listings/dispensaries/{slug}/menu_items
?page=N&per_page=100``, ``{meta: {page, per_page, total}, data: [{id, type: "menu_item",
attributes}]}``; ``variants[]`` hold string prices with their weights, ``prices.price_<size>``
where 0 means not offered, ``cannabinoids`` are strings without a unit (``measurements[]``
give it when present; otherwise mg for edibles, drinks, capsules and tinctures, % else).

``parse_pages`` reads either shape, page by page (envelopes drift between versions).
"""

from __future__ import annotations

from typing import Any, Final

from whnode.record.exceptions import ModelError
from whnode.record.model import (
    Category,
    Menu,
    Potency,
    PotencyUnit,
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
    as_dict,
    as_list,
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
    sorted_options,
    source_id,
    split_brand_from_name,
)
from whnode.upstream.sizes import quantity_of, read_size, size_for
from whnode.upstream.sources import SourceConfig, WeedmapsApi, store_of

__all__ = ["ADAPTER", "fetch_pages", "parse_discovery_item", "parse_jsonapi_item", "parse_pages"]

SOURCE: Final = str(Vendor.WEEDMAPS)
DISCOVERY_PATH: Final = "/discovery/v1/listings/dispensaries/{slug}/menu_items"
JSONAPI_PATH: Final = "/v1/listings/dispensaries/{slug}/menu_items"
SIZE_KEYS: Final[dict[str, Quantity | None]] = {
    "half_gram": Quantity(0.5, QuantityUnit.GRAMS),
    "gram": Quantity(1.0, QuantityUnit.GRAMS),
    "two_grams": Quantity(2.0, QuantityUnit.GRAMS),
    "two_gram": Quantity(2.0, QuantityUnit.GRAMS),
    "eighth": Quantity(3.5, QuantityUnit.GRAMS),
    "quarter": Quantity(7.0, QuantityUnit.GRAMS),
    "half_ounce": Quantity(14.0, QuantityUnit.GRAMS),
    "ounce": Quantity(28.0, QuantityUnit.GRAMS),
    "unit": None,
    "each": None,
}
"""Per-size price keys (``price_<key>`` in JSON:API, ``<key>`` in discovery); None = one
item, sized by the name when it says."""
UNIT_KEYS: Final[dict[str, str]] = {
    "gram": "g",
    "grams": "g",
    "ounce": "oz",
    "ounces": "oz",
    "milligram": "mg",
    "milligrams": "mg",
    "unit": "each",
    "units": "each",
    "each": "each",
}
"""Discovery price keys that name a unit: a tier's bare ``units`` ("1/8") counts in it."""
MILLIGRAM_CATEGORIES: Final = frozenset(
    {Category.EDIBLE, Category.BEVERAGE, Category.CAPSULE, Category.TINCTURE}
)


def _discovery_items(document: dict[str, Any]) -> list[Any] | None:
    items = dig(document, "data", "menu_items")
    if isinstance(items, list):
        return items
    items = document.get("menu_items")
    return items if isinstance(items, list) else None


def _is_jsonapi(document: dict[str, Any]) -> bool:
    return isinstance(document.get("data"), list)


def _page(body: bytes, number: int) -> dict[str, Any]:
    document = load_page(body, f"weedmaps page {number}")
    if not isinstance(document, dict):
        raise AdapterParseError(f"weedmaps page {number} is not a JSON object")
    if not _is_jsonapi(document) and _discovery_items(document) is None:
        raise AdapterParseError(
            f"weedmaps page {number} has neither data.menu_items nor a JSON:API data list"
        )
    return document


def _items(document: dict[str, Any]) -> list[Any]:
    if _is_jsonapi(document):
        return list(document["data"])
    return _discovery_items(document) or []


def _total_items(document: dict[str, Any]) -> object:
    meta = as_dict(document.get("meta"))
    for key in ("total_menu_items", "total", "total_count"):
        if key in meta:
            return meta[key]
    return None


async def fetch_pages(http: HttpRequester, source: SourceConfig, dispensary_id: str) -> list[bytes]:
    """Every page of the listing's menu (discovery or JSON:API, as the source says)."""
    slug = store_of(dispensary_id)
    size = source.effective_page_size
    if source.weedmaps_api is WeedmapsApi.V1:
        url = source.url(JSONAPI_PATH.format(slug=slug))
        size_param = "per_page"
    else:
        url = source.url(DISCOVERY_PATH.format(slug=slug))
        size_param = "page_size"

    async def fetch(page: int) -> bytes:
        return await http.request(
            "GET",
            url,
            source=SOURCE,
            dispensary_id=dispensary_id,
            params={"page": str(page), size_param: str(size)},
            headers={"Accept": "application/json"},
        )

    def info(body: bytes, number: int) -> PageInfo:
        document = _page(body, number)
        return PageInfo(
            items=len(_items(document)), total_pages=pages_for(_total_items(document), size)
        )

    return await paginate(
        fetch,
        info,
        first=1,
        page_size=size,
        concurrency=source.page_concurrency,
        source=SOURCE,
        dispensary_id=dispensary_id,
    )


# --------------------------------------------------------------------------- discovery
def _sale(entry: dict[str, Any]) -> tuple[int | None, int | None]:
    """(regular price, special price) of one price entry with ``on_sale``/``original_price``."""
    price = parse_price_cents(entry.get("price"))
    original = parse_price_cents(entry.get("original_price"))
    on_sale = entry.get("on_sale") is True
    if on_sale and original is not None and price is not None and original > price:
        return original, price
    return price, None


def _entry_size(key: str, entry: dict[str, Any], name: str) -> Quantity | None:
    """The size of one discovery price entry: its ``units`` (a bare count of the key's unit,
    or words: "1/8 oz"), its ``label``, its ``unit``, else what the key itself names."""
    key = key.strip().lower()
    unit = UNIT_KEYS.get(key)
    size = read_size(entry.get("units"), entry.get("label"), entry.get("unit"), unit=unit)
    if size is None:
        if key in SIZE_KEYS:
            size = SIZE_KEYS[key] or read_size("each")
        elif unit is not None:
            size = quantity_of(1, unit)
        else:
            size = read_size(key)  # a key that is itself a label: "1/8 oz"
    return None if size is None else size_for(size, name)


def _discovery_options(item: dict[str, Any], name: str) -> tuple[PriceOption, ...]:
    found: list[PriceOption | None] = []
    for key, value in as_dict(item.get("prices")).items():
        # tiers per unit ({"ounce": [{"units": "1/8", "price"}]}) or one object per size;
        # anything else (grams_per_eighth: 3.5, nulls) is not a price
        entries = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        for entry in entries:
            entry = as_dict(entry)
            price, special = _sale(entry)
            found.append(make_option(_entry_size(str(key), entry, name), price, special))
    if not any(found):
        single = as_dict(item.get("price"))
        price, special = _sale(single)
        size = read_size(single.get("unit"), single.get("label"))
        found.append(make_option(size_for(size, name), price, special))
    return sorted_options(found)


def _discovery_potency(item: dict[str, Any], code: str) -> Potency | None:
    for entry in as_list(dig(item, "metrics", "cannabinoids")):
        entry = as_dict(entry)
        if str(entry.get("code", "")).strip().lower() == code:
            return parse_potency(entry.get("value"), entry.get("unit"))
    return None


def parse_discovery_item(item: object) -> Candidate | None:
    """One discovery ``menu_items[]`` entry; None without id or name."""
    if not isinstance(item, dict):
        return None
    identifier = source_id(item.get("id"))
    raw_name = clean_text(item.get("name"))
    if identifier is None or raw_name is None:
        return None
    brand = clean_text(dig(item, "brand_endorsement", "brand_name"))
    name = raw_name
    if brand is None:
        brand, name = split_brand_from_name(raw_name)
    category_name = dig(item, "category", "name")
    category = parse_category(dig(item, "edge_category", "name"), category_name)
    image = http_url(dig(item, "avatar_image", "original_url")) or http_url(item.get("picture_url"))
    try:
        product = Product(
            source_id=identifier,
            name=name,
            category=category,
            price_options=_discovery_options(item, name),
            brand=brand,
            lineage=parse_lineage(category_name),
            thc=_discovery_potency(item, "thc"),
            cbd=_discovery_potency(item, "cbd"),
            image_url=image,
            description=clean_description(item.get("body")),
        )
    except ModelError:
        return None
    return Candidate(product, parse_timestamp_ms(item.get("updated_at")))


# --------------------------------------------------------------------------- JSON:API
def _jsonapi_options(attributes: dict[str, Any], name: str) -> tuple[PriceOption, ...]:
    found: list[PriceOption | None] = []
    for variant in as_list(attributes.get("variants")):
        variant = as_dict(variant)
        size = read_size(as_dict(variant.get("weight")), variant.get("label"), variant.get("name"))
        found.append(
            make_option(
                size_for(size, name),
                parse_price_cents(dig(variant, "price", "amount")),
                None,
                parse_stock(variant.get("inventory_quantity")),
            )
        )
    if not any(found):
        prices = as_dict(attributes.get("prices"))
        for key, size in SIZE_KEYS.items():
            price = parse_price_cents(prices.get(f"price_{key}"))  # 0: not offered
            found.append(make_option(size or size_for("each", name), price))
    return sorted_options(found)


def _jsonapi_potency(attributes: dict[str, Any], code: str, category: Category) -> Potency | None:
    for entry in as_list(attributes.get("measurements")):
        entry = as_dict(entry)
        if str(entry.get("name", "")).strip().lower() == code:
            found = parse_potency(entry.get("value"), entry.get("unit"))
            if found is not None:
                return found
    value = as_dict(attributes.get("cannabinoids")).get(code)
    if value is None:
        return None
    default = PotencyUnit.MILLIGRAMS if category in MILLIGRAM_CATEGORIES else PotencyUnit.PERCENT
    return parse_potency(value, default_unit=default)


def parse_jsonapi_item(item: object) -> Candidate | None:
    """One JSON:API ``data[]`` resource of type ``menu_item``; None without id or name."""
    if not isinstance(item, dict) or item.get("type", "menu_item") != "menu_item":
        return None
    attributes = as_dict(item.get("attributes"))
    identifier = source_id(item.get("id"))
    raw_name = clean_text(attributes.get("name"))
    if identifier is None or raw_name is None:
        return None
    brand = clean_text(attributes.get("brand_name"))
    name = raw_name
    if brand is None:
        brand, name = split_brand_from_name(raw_name)
    category = parse_category(
        attributes.get("category_name"),
        dig(attributes, "parent_category", "name"),
        dig(attributes, "sub_category", "name"),
    )
    image = http_url(attributes.get("picture_url")) or http_url(attributes.get("avatar_image_url"))
    try:
        product = Product(
            source_id=identifier,
            name=name,
            category=category,
            price_options=_jsonapi_options(attributes, name),
            brand=brand,
            lineage=parse_lineage(attributes.get("genetics")),
            thc=_jsonapi_potency(attributes, "thc", category),
            cbd=_jsonapi_potency(attributes, "cbd", category),
            image_url=image,
            description=clean_description(attributes.get("body")),
        )
    except ModelError:
        return None
    return Candidate(product, parse_timestamp_ms(attributes.get("updated_at")))


def _listing_name(document: dict[str, Any]) -> str | None:
    for resource in as_list(document.get("included")):
        resource = as_dict(resource)
        if resource.get("type") in ("dispensary", "listing"):
            name = clean_text(dig(resource, "attributes", "name"))
            if name:
                return name
    return None


def parse_pages(dispensary_id: str, pages: list[bytes], fetched_at_ms: int) -> Menu:
    """The menu in discovery or JSON:API pages (pure)."""
    candidates: list[Candidate] = []
    name: str | None = None
    for number, body in enumerate(pages, start=1):
        document = _page(body, number)
        jsonapi = _is_jsonapi(document)
        name = name or (_listing_name(document) if jsonapi else None)
        parse = parse_jsonapi_item if jsonapi else parse_discovery_item
        for item in _items(document):
            candidate = parse(item)
            if candidate is not None:
                candidates.append(candidate)
    return build_menu(
        dispensary_id=dispensary_id,
        vendor=Vendor.WEEDMAPS,
        name=name,
        fetched_at_ms=fetched_at_ms,
        candidates=candidates,
    )


ADAPTER: Final = Adapter(vendor=Vendor.WEEDMAPS, fetch_pages=fetch_pages, parse_pages=parse_pages)
