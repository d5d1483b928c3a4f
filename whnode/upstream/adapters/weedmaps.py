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

Either shape is read page by page (envelopes drift between versions), over the shared walk
(``whnode.upstream.adapters.walk``).
"""

from __future__ import annotations

from typing import Any, Final

from whnode.record.model import (
    Category,
    DropReason,
    Potency,
    PotencyUnit,
    PriceOption,
    Quantity,
    QuantityUnit,
    Vendor,
)
from whnode.upstream import normalize
from whnode.upstream.adapters import walk
from whnode.upstream.adapters.base import as_dict, as_list, dig
from whnode.upstream.sizes import quantity_of, read_size, size_for
from whnode.upstream.sources import WeedmapsApi

__all__ = ["ADAPTER", "RULES", "parse_discovery_item", "parse_jsonapi_item"]

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


def request(call: walk.PageCall) -> walk.Request:
    """One page of the listing's menu, discovery or JSON:API as the source says."""
    jsonapi = call.source.weedmaps_api is WeedmapsApi.V1
    path = (JSONAPI_PATH if jsonapi else DISCOVERY_PATH).format(slug=call.store)
    size_param = "per_page" if jsonapi else "page_size"
    return walk.Request(
        "GET",
        call.source.url(path),
        params={"page": str(call.number), size_param: str(call.size)},
        headers={"Accept": "application/json"},
    )


def _listing_name(document: dict[str, Any]) -> str | None:
    for resource in as_list(document.get("included")):
        resource = as_dict(resource)
        if resource.get("type") in ("dispensary", "listing"):
            name = normalize.clean_text(dig(resource, "attributes", "name"))
            if name:
                return name
    return None


def read_page(document: Any, number: int, dispensary_id: str) -> walk.Page:
    """A discovery page (``data.menu_items``, or ``menu_items``) or a JSON:API one."""
    if not isinstance(document, dict):
        raise normalize.AdapterParseError(f"weedmaps page {number} is not a JSON object")
    meta = as_dict(document.get("meta"))
    total = next((meta[k] for k in ("total_menu_items", "total", "total_count") if k in meta), None)
    if isinstance(document.get("data"), list):
        return walk.Page(document["data"], total_items=total, menu_name=_listing_name(document))
    items = dig(document, "data", "menu_items")
    if not isinstance(items, list):
        items = document.get("menu_items")
    if not isinstance(items, list):
        raise normalize.AdapterParseError(
            f"weedmaps page {number} has neither data.menu_items nor a JSON:API data list"
        )
    return walk.Page(items, total_items=total)


# --------------------------------------------------------------------------- discovery
def _sale(entry: dict[str, Any]) -> tuple[int | DropReason, int | None]:
    """(regular price, special price) of one price entry with ``on_sale``/``original_price``."""
    price = walk.read_price(entry.get("price"))
    original = normalize.parse_price_cents(entry.get("original_price"))
    on_sale = entry.get("on_sale") is True
    if on_sale and original is not None and isinstance(price, int) and original > price:
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


def _discovery_options(
    item: dict[str, Any], name: str, reader: walk.ItemReader
) -> tuple[PriceOption, ...]:
    found: list[PriceOption | None] = []
    for key, value in as_dict(item.get("prices")).items():
        # tiers per unit ({"ounce": [{"units": "1/8", "price"}]}) or one object per size;
        # anything else (grams_per_eighth: 3.5, nulls) is not a price
        entries = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        for entry in entries:
            entry = as_dict(entry)
            price, special = _sale(entry)
            size = _entry_size(str(key), entry, name)
            found.append(reader.option(size, price, special, label=entry.get("label") or key))
    if not any(found) and isinstance(item.get("price"), dict):
        single = item["price"]
        price, special = _sale(single)
        size = size_for(read_size(single.get("unit"), single.get("label")), name)
        found.append(reader.option(size, price, special, label=single.get("unit")))
    return reader.options(found)


def _discovery_potency(item: dict[str, Any], code: str) -> Potency | None:
    for entry in as_list(dig(item, "metrics", "cannabinoids")):
        entry = as_dict(entry)
        if str(entry.get("code", "")).strip().lower() == code:
            return normalize.parse_potency(entry.get("value"), entry.get("unit"))
    return None


def parse_discovery_item(item: object, reader: walk.ItemReader) -> normalize.Candidate | None:
    """One discovery ``menu_items[]`` entry."""
    entry = reader.as_item(item)
    identity = None if entry is None else reader.identity(entry.get("id"), entry.get("name"))
    if entry is None or identity is None:
        return None
    identifier, name = identity
    brand = normalize.clean_text(dig(entry, "brand_endorsement", "brand_name"))
    if brand is None:
        brand, name = normalize.split_brand_from_name(name)
    category_name = dig(entry, "category", "name")
    return reader.product(
        normalize.parse_timestamp_ms(entry.get("updated_at")),
        source_id=identifier,
        name=name,
        category=normalize.parse_category(dig(entry, "edge_category", "name"), category_name),
        price_options=_discovery_options(entry, name, reader),
        brand=brand,
        lineage=normalize.parse_lineage(category_name),
        thc=_discovery_potency(entry, "thc"),
        cbd=_discovery_potency(entry, "cbd"),
        image_url=normalize.http_url(dig(entry, "avatar_image", "original_url"))
        or normalize.http_url(entry.get("picture_url")),
        description=normalize.clean_description(entry.get("body")),
    )


# --------------------------------------------------------------------------- JSON:API
def _jsonapi_options(
    attributes: dict[str, Any], name: str, reader: walk.ItemReader
) -> tuple[PriceOption, ...]:
    found: list[PriceOption | None] = []
    for variant in as_list(attributes.get("variants")):
        variant = as_dict(variant)
        size = read_size(as_dict(variant.get("weight")), variant.get("label"), variant.get("name"))
        price = walk.read_price(dig(variant, "price", "amount"))
        stock = normalize.parse_stock(variant.get("inventory_quantity"))
        label = variant.get("label")
        found.append(reader.option(size_for(size, name), price, None, stock, label=label))
    if not any(found):
        prices = as_dict(attributes.get("prices"))
        for key, size in SIZE_KEYS.items():
            if f"price_{key}" in prices:  # 0: not offered
                price = walk.read_price(prices[f"price_{key}"])
                found.append(reader.option(size or size_for("each", name), price, label=key))
    return reader.options(found)


def _jsonapi_potency(attributes: dict[str, Any], code: str, category: Category) -> Potency | None:
    for entry in as_list(attributes.get("measurements")):
        entry = as_dict(entry)
        if str(entry.get("name", "")).strip().lower() == code:
            found = normalize.parse_potency(entry.get("value"), entry.get("unit"))
            if found is not None:
                return found
    value = as_dict(attributes.get("cannabinoids")).get(code)
    if value is None:
        return None
    default = PotencyUnit.MILLIGRAMS if category in MILLIGRAM_CATEGORIES else PotencyUnit.PERCENT
    return normalize.parse_potency(value, default_unit=default)


def parse_jsonapi_item(item: object, reader: walk.ItemReader) -> normalize.Candidate | None:
    """One JSON:API ``data[]`` resource of type ``menu_item``."""
    entry = reader.as_item(item)
    if entry is None:
        return None
    if entry.get("type", "menu_item") != "menu_item":
        return reader.drop(DropReason.NOT_AN_ITEM)
    attributes = as_dict(entry.get("attributes"))
    identity = reader.identity(entry.get("id"), attributes.get("name"))
    if identity is None:
        return None
    identifier, name = identity
    brand = normalize.clean_text(attributes.get("brand_name"))
    if brand is None:
        brand, name = normalize.split_brand_from_name(name)
    category = normalize.parse_category(
        attributes.get("category_name"),
        dig(attributes, "parent_category", "name"),
        dig(attributes, "sub_category", "name"),
    )
    return reader.product(
        normalize.parse_timestamp_ms(attributes.get("updated_at")),
        source_id=identifier,
        name=name,
        category=category,
        price_options=_jsonapi_options(attributes, name, reader),
        brand=brand,
        lineage=normalize.parse_lineage(attributes.get("genetics")),
        thc=_jsonapi_potency(attributes, "thc", category),
        cbd=_jsonapi_potency(attributes, "cbd", category),
        image_url=normalize.http_url(attributes.get("picture_url"))
        or normalize.http_url(attributes.get("avatar_image_url")),
        description=normalize.clean_description(attributes.get("body")),
    )


def parse_item(item: object, reader: walk.ItemReader) -> normalize.Candidate | None:
    """A JSON:API resource (it has ``attributes``) or a discovery item."""
    if isinstance(item, dict) and "attributes" in item:
        return parse_jsonapi_item(item, reader)
    return parse_discovery_item(item, reader)


RULES: Final = walk.VendorRules(Vendor.WEEDMAPS, request, read_page, parse_item, first_page=1)
ADAPTER: Final = walk.adapter(RULES)
