"""Simulated Weedmaps: the discovery API and the JSON:API v1 menu of every listing.

- ``GET /discovery/v1/listings/dispensaries/{slug}/menu_items?page=N&page_size=M``: 1-based
  pages, ``page_size`` at most 100 (above: HTTP 422), ``{data: {menu_items}, meta:
  {total_menu_items}}``; an unknown slug is HTTP 404.
- ``GET /v1/listings/dispensaries/{slug}/menu_items?page=N&per_page=M``: the JSON:API shape
  ``{meta: {page, per_page, total}, data: [{id, type, attributes, links, relationships}],
  included: [the dispensary]}``.
"""

from __future__ import annotations

import enum
import math
from typing import Any, Final

from aiohttp import web

from whnode.record.model import Category, Lineage, PotencyUnit, Vendor
from whnode.sandbox.catalog import SIZE_GRAMS, DispensarySpec, Item, Option, SizeClass, SizeKind
from whnode.sandbox.faults import FaultKind
from whnode.sandbox.state import STATE
from whnode.sandbox.vendors.base import (
    html_description,
    iso,
    json_response,
    money,
    paged,
    quirk_rng,
    untidy_brand,
    untidy_name,
    with_duplicates,
)

__all__ = [
    "QUIRKY_ITEMS",
    "QUIRKY_JSONAPI",
    "PricesShape",
    "discovery_prices",
    "jsonapi_has_variants",
    "prices_shape",
    "render_discovery_item",
    "render_jsonapi_item",
    "routes",
    "weedmaps_id",
]

MAX_PAGE_SIZE: Final = 100
TYPE_NAMES: Final[dict[Category, str]] = {
    Category.FLOWER: "Flower",
    Category.PRE_ROLL: "Pre-Roll",
    Category.VAPE: "Cartridges",
    Category.CONCENTRATE: "Concentrates",
    Category.EDIBLE: "Edibles",
    Category.BEVERAGE: "Drinks",
    Category.TINCTURE: "Tinctures",
    Category.TOPICAL: "Topicals",
    Category.CAPSULE: "Capsules",
    Category.SEED_CLONE: "Seeds",
    Category.ACCESSORY: "Gear",
    Category.OTHER: "Other",
}
FLOWER_CATEGORY: Final[dict[Lineage, str]] = {
    Lineage.INDICA: "Indica",
    Lineage.SATIVA: "Sativa",
    Lineage.HYBRID: "Hybrid",
    Lineage.INDICA_HYBRID: "Indica",
    Lineage.SATIVA_HYBRID: "Sativa",
}
"""Discovery puts the lineage where a flower's category goes (three words only)."""
GENETICS: Final[dict[Lineage, str | None]] = {
    Lineage.INDICA: "indica",
    Lineage.SATIVA: "sativa",
    Lineage.HYBRID: "hybrid",
    Lineage.INDICA_HYBRID: "Indica Dominant Hybrid",
    Lineage.SATIVA_HYBRID: "Sativa Dominant Hybrid",
    Lineage.HIGH_CBD: "High CBD",
    Lineage.BALANCED: "1:1",
    Lineage.UNKNOWN: None,
}
SHAPE_B_KEYS: Final[dict[SizeKind, str]] = {
    SizeKind.HALF_GRAM: "half_gram",
    SizeKind.GRAM: "gram",
    SizeKind.TWO_GRAM: "two_grams",
    SizeKind.EIGHTH: "eighth",
    SizeKind.QUARTER: "quarter",
    SizeKind.HALF_OUNCE: "half_ounce",
    SizeKind.OUNCE: "ounce",
    SizeKind.EACH: "unit",
}
TIERS: Final[dict[SizeKind, tuple[str, str]]] = {
    SizeKind.HALF_GRAM: ("gram", "0.5"),
    SizeKind.GRAM: ("gram", "1"),
    SizeKind.TWO_GRAM: ("gram", "2"),
    SizeKind.EIGHTH: ("ounce", "1/8"),
    SizeKind.QUARTER: ("ounce", "1/4"),
    SizeKind.HALF_OUNCE: ("ounce", "1/2"),
    SizeKind.OUNCE: ("ounce", "1"),
    SizeKind.EACH: ("unit", "1"),
}
LABELS: Final[dict[SizeKind, tuple[str, str, float, str]]] = {
    SizeKind.HALF_GRAM: ("1/2 gram", "1/2 g", 0.5, "g"),
    SizeKind.GRAM: ("1 gram", "1 g", 1, "g"),
    SizeKind.TWO_GRAM: ("2 grams", "2 g", 2, "g"),
    SizeKind.EIGHTH: ("1/8 ounce", "1/8 oz", 0.125, "oz"),
    SizeKind.QUARTER: ("1/4 ounce", "1/4 oz", 0.25, "oz"),
    SizeKind.HALF_OUNCE: ("1/2 ounce", "1/2 oz", 0.5, "oz"),
    SizeKind.OUNCE: ("1 ounce", "1 oz", 1, "oz"),
    SizeKind.EACH: ("each", "1 each", 1, "each"),
}
"""JSON:API variant (name, label, weight value, weight unit)."""
JSONAPI_PRICE_KEYS: Final = (
    "price_unit", "price_half_gram", "price_gram", "price_two_grams", "price_eighth",
    "price_quarter", "price_half_ounce", "price_ounce",
)  # fmt: skip


def weedmaps_id(item: Item) -> int:
    """The menu item id of a generated item."""
    return int(item.key[8:16], 16) % 90_000_000 + 10_000_000


def _name_and_brand(item: Item, rng: Any, *, share: float) -> tuple[str, dict[str, Any] | None]:
    name = untidy_name(item.name, rng)
    brand = untidy_brand(item.brand, rng)
    if brand is None:
        return name, None
    if rng.random() < share:
        return f"{brand} | {name}", None
    return name, {
        "brand_name": brand,
        "brand_id": int(item.key[16:20], 16),
        "brand_slug": brand.lower().replace(" ", "-"),
    }


def _sale(option: Option, rng: Any) -> dict[str, Any]:
    if option.special_price_cents is None:
        return {"price": money(option.price_cents, rng, strings=0.2), "on_sale": False}
    return {
        "price": money(option.special_price_cents, rng, strings=0.2),
        "on_sale": True,
        "original_price": money(option.price_cents, rng, strings=0.2),
    }


def _metrics(item: Item, rng: Any) -> dict[str, Any]:
    cannabinoids = []
    for code, potency in (("thc", item.thc), ("cbd", item.cbd)):
        if potency is None:
            continue
        unit = "%" if potency.unit is PotencyUnit.PERCENT else "mg"
        if potency.unit is PotencyUnit.MILLIGRAMS_PER_GRAM:
            continue
        value: Any = potency.low if not potency.is_range else f"{potency.low}-{potency.high}"
        cannabinoids.append(
            {"code": code.upper() if rng.random() < 0.2 else code, "value": value, "unit": unit}
        )
    return {"cannabinoids": cannabinoids, "terpenes": []}


class PricesShape(enum.Enum):
    """The ways discovery items state their prices (each served in turn, by item number)."""

    TIERS_FRACTION = "tiers, units a bare fraction of the key's unit"
    TIERS_UNIT_WORDS = "tiers, units and label with unit words (1 g, 1/8 oz)"
    TIERS_LABEL_ONLY = "tiers, only a label (1/4 oz)"
    OBJECT_PER_SIZE = "one object per size key (gram, eighth)"
    OBJECT_PER_SIZE_LABELLED = "one object per size key, with units and label strings"
    OBJECT_PER_LABEL = "one object per unit, keyed by its label"


def prices_shape(item: Item) -> PricesShape:
    """How ``item``'s discovery prices are served."""
    shapes = list(PricesShape)
    return shapes[(item.number // 2) % len(shapes)]


def _tier_words(size: SizeKind) -> str:
    unit, units = TIERS[size]
    if unit == "unit":
        return "1 each"
    return f"{units} {'g' if unit == 'gram' else 'oz'}"


def discovery_prices(item: Item, rng: Any) -> dict[str, Any]:
    """The ``prices`` object of a discovery item in the shape ``prices_shape`` picks."""
    shape = prices_shape(item)
    prices: dict[str, Any] = {}
    for option in item.options:
        unit, units = TIERS[option.size]
        words = _tier_words(option.size)
        sale = _sale(option, rng)
        if shape is PricesShape.TIERS_FRACTION:
            prices.setdefault(unit, []).append({"units": units, **sale})
        elif shape is PricesShape.TIERS_UNIT_WORDS:
            prices.setdefault(unit, []).append({"units": words, "label": words, **sale})
        elif shape is PricesShape.TIERS_LABEL_ONLY:
            prices.setdefault(unit, []).append({"label": words, **sale})
        elif shape is PricesShape.OBJECT_PER_SIZE:
            prices[SHAPE_B_KEYS[option.size]] = sale
        elif shape is PricesShape.OBJECT_PER_SIZE_LABELLED:
            prices[SHAPE_B_KEYS[option.size]] = {"units": words, "label": words, **sale}
        else:
            prices[words] = {"label": words, "units": words, **sale}
    prices["grams_per_eighth"] = 3.5
    return prices


def render_discovery_item(item: Item) -> dict[str, Any]:
    """One generated item as a discovery ``menu_items[]`` entry."""
    rng = quirk_rng(item, "weedmaps")
    name, endorsement = _name_and_brand(item, rng, share=0.5)
    type_name = TYPE_NAMES[item.category]
    category = type_name
    if item.category is Category.FLOWER:
        category = FLOWER_CATEGORY.get(item.lineage, "Flower")
    prices = discovery_prices(item, rng)
    first = item.options[0]
    document = {
        "id": weedmaps_id(item),
        "name": name,
        "slug": item.name.lower().replace(" ", "-"),
        "category": {"id": list(TYPE_NAMES).index(item.category) + 1, "name": category},
        "edge_category": {
            "id": 100 + list(TYPE_NAMES).index(item.category),
            "name": type_name,
            "slug": type_name.lower(),
        },
        "brand_endorsement": endorsement,
        "price": {
            **_sale(first, rng),
            "unit": LABELS[first.size][1],
            "quantity": 1,
        },
        "prices": prices,
        "metrics": _metrics(item, rng),
        "body": html_description(item.description, rng),
        "avatar_image": None
        if item.image_url is None
        else {"original_url": item.image_url, "small_url": item.image_url},
        "online_orderable": True,
        "created_at": iso(item.created_ms, fraction=False),
        "updated_at": iso(item.updated_ms, fraction=False),
    }
    if item.number % 2 == 1:  # the top-level price is often missing
        del document["price"]
    return document


def jsonapi_has_variants(item: Item) -> bool:
    """Whether a JSON:API item lists ``variants`` (else only its ``prices`` table)."""
    return item.number % 4 != 3


def render_jsonapi_item(item: Item, spec: DispensarySpec) -> dict[str, Any]:
    """One generated item as a JSON:API ``menu_item`` resource."""
    rng = quirk_rng(item, "weedmaps-v1")
    name, endorsement = _name_and_brand(item, rng, share=0.1)
    type_name = TYPE_NAMES[item.category]
    prices: dict[str, Any] = dict.fromkeys(JSONAPI_PRICE_KEYS, 0)
    prices["prices_other"] = {}
    variants = []
    for option in item.options:
        label = LABELS[option.size]
        key = "price_" + SHAPE_B_KEYS[option.size]
        prices[key] = money(option.price_cents, rng)
        variants.append(
            {
                "name": label[0],
                "label": label[1],
                "price": {"amount": f"{option.price_cents / 100:.2f}", "currency": "USD"},
                "weight": {"value": label[2], "unit": label[3]},
                "sku": None,
                "compliance_net_mg": int(SIZE_GRAMS[option.size] * 1000)
                if option.size in SIZE_GRAMS
                else None,
                "inventory_quantity": option.stock,
            }
        )
    if not jsonapi_has_variants(item):
        variants = []  # the prices table alone: sizes and prices, no stock
    cannabinoids: dict[str, str] = {}
    measurements = []
    for code, potency in (("thc", item.thc), ("cbd", item.cbd)):
        if potency is None or potency.unit is PotencyUnit.MILLIGRAMS_PER_GRAM:
            continue
        text = f"{potency.low}" if not potency.is_range else f"{potency.low}-{potency.high}"
        cannabinoids[code] = text
        if potency.unit is PotencyUnit.MILLIGRAMS and item.category not in (
            Category.EDIBLE, Category.BEVERAGE, Category.CAPSULE, Category.TINCTURE
        ):  # fmt: skip
            measurements.append({"name": code.upper(), "unit": "mg", "value": text})
    category = {
        "id": list(TYPE_NAMES).index(item.category) + 1,
        "name": type_name,
        "slug": type_name.lower(),
    }
    return {
        "id": weedmaps_id(item),
        "type": "menu_item",
        "attributes": {
            "name": name,
            "slug": item.name.lower().replace(" ", "-"),
            "category_name": type_name,
            "body": html_description(item.description, rng),
            "is_published": True,
            "license_type": "recreational",
            "online_orderable": True,
            "picture_url": item.image_url,
            "avatar_image_url": item.image_url,
            "brand_name": None if endorsement is None else endorsement["brand_name"],
            "cannabinoids": cannabinoids,
            "genetics": GENETICS[item.lineage],
            "prices": prices,
            "grams_per_eighth": "3.5 grams",
            "created_at": iso(item.created_ms, fraction=False),
            "updated_at": iso(item.updated_ms, fraction=False),
            "parent_category": category,
            "sub_category": category,
            "measurements": measurements,
            "variants": variants,
            "sale": None,
            "inventory_quantity": None,
        },
        "links": {"self": f"/dispensaries/{spec.store}/menu/{item.name.lower().replace(' ', '-')}"},
        "relationships": {
            "listing": {"data": {"id": int(item.key[20:26], 16), "type": "dispensary"}}
        },
    }


# --------------------------------------------------------------------------- quirky menu
QUIRKY_ITEMS: Final[tuple[dict[str, Any], ...]] = (
    {
        "id": 70000001,
        "name": "Ridgeline | Blue  Dream",
        "category": {"id": 3, "name": "Hybrid"},
        "edge_category": {"id": 1, "name": "Flower"},
        "brand_endorsement": None,
        "price": {"price": 35, "on_sale": False, "unit": "1/8 oz", "quantity": 1},
        "prices": {
            "gram": [{"units": "1", "price": "12.00"}, {"units": "2", "price": 22}],
            "ounce": [
                {"units": "1/8", "price": 30, "on_sale": True, "original_price": "35.00"},
                {"units": "1", "price": 0},
            ],
            "grams_per_eighth": 3.5,
        },
        "metrics": {
            "cannabinoids": [
                {"code": "thc", "value": 21.4, "unit": "%"},
                {"code": "CBD", "value": "0.3", "unit": "%"},
            ]
        },
        "body": "<p>Sweet berry aroma.</p><p>Balanced &amp; uplifting.</p>",
        "avatar_image": {"original_url": "https://images.sandbox.whnode.test/q/wm-1.jpg"},
        "updated_at": "2026-05-01T10:00:00Z",
    },
    {
        "id": 70000002,
        "name": "Watermelon Gummies 100mg",
        "category": {"id": 5, "name": "Edibles"},
        "edge_category": {"id": 5, "name": "Edibles"},
        "brand_endorsement": {"brand_name": "RIDGELINE"},
        "price": {"price": 20, "on_sale": False, "unit": "each", "quantity": 1},
        "prices": {
            "unit": {"price": 20, "on_sale": False},
            "gram": None,
            "grams_per_eighth": 3.5,
        },
        "metrics": {"cannabinoids": [{"code": "thc", "value": 100, "unit": "mg"}]},
        "body": None,
        "updated_at": "1746093600",
    },
    {
        "id": 70000003,
        "name": "Ridgeline | Lemon Haze Pre-Roll 2pk",
        "category": {"id": 2, "name": "Pre-Roll"},
        "edge_category": {"id": 2, "name": "Pre-Rolls"},
        "brand_endorsement": None,
        "price": {"price": "$18.00", "on_sale": False, "unit": "each", "quantity": 1},
        "prices": {},
        "metrics": {"cannabinoids": []},
        "updated_at": 1746093600000,
    },
    # page 2 with page_size 3 -------------------------------------------------------
    {
        "id": 70000004,
        "name": "Tangie Live Resin",
        "category": {"id": 4, "name": "Concentrates"},
        "edge_category": {"id": 4, "name": "Concentrates"},
        "brand_endorsement": {"brand_name": "Ridgeline"},
        "prices": {
            "half_gram": {"price": 28, "on_sale": False},
            "gram": {"price": "50.00", "on_sale": True, "original_price": 55},
            "two_grams": None,
            "grams_per_eighth": 3.5,
        },
        "metrics": {"cannabinoids": [{"code": "thc", "value": "72-78", "unit": "%"}]},
    },
    {
        "id": 70000001,
        "name": "Ridgeline | Blue  Dream",
        "category": {"id": 3, "name": "Hybrid"},
        "edge_category": {"id": 1, "name": "Flower"},
        "brand_endorsement": None,
        "prices": {"gram": [{"units": "1", "price": 99}]},
        "updated_at": "2026-04-01T10:00:00Z",
    },
    {
        "id": 70000006,
        "name": "Glass Spoon Pipe",
        "category": {"id": 11, "name": "Gear"},
        "edge_category": {"id": 11, "name": "Gear"},
        "brand_endorsement": None,
        "prices": {"unit": [{"units": "1", "price": 15}]},
        "metrics": {"cannabinoids": []},
    },
    # page 3 with page_size 3: items a parse must leave out, and say so ---------------
    {"id": 70000007, "name": "  ", "prices": {"gram": [{"units": "1", "price": 10}]}},
    {"id": 70000008, "name": "Mystery Jar", "prices": {"bundle": {"price": 40}}},
)
"""The quirky discovery menu, served in this order; its envelope says ``meta.total``. The
last two items have no name and no size (the parse report counts them)."""


QUIRKY_JSONAPI: Final[tuple[dict[str, Any], ...]] = (
    {
        "id": 80000001,
        "type": "menu_item",
        "attributes": {
            "name": "Purple Punch",
            "category_name": "Flower",
            "brand_name": "Ultra Test Brand",
            "body": "House grown flower",
            "cannabinoids": {"thc": "20.2"},
            "genetics": None,
            "measurements": [],
            "prices": {
                "price_unit": 0,
                "price_half_gram": 0,
                "price_gram": 8.99,
                "price_two_grams": 17.98,
                "price_eighth": 31.46,
                "price_quarter": 0,
                "price_half_ounce": 0,
                "price_ounce": 0,
                "prices_other": {},
            },
            "grams_per_eighth": "3.5 grams",
            "variants": [
                {
                    "name": "1 gram",
                    "label": "1 g",
                    "price": {"amount": "8.99", "currency": "USD"},
                    "weight": {"value": 1, "unit": "g"},
                    "inventory_quantity": None,
                },
                {
                    "name": "2 grams",
                    "label": "2 g",
                    "price": {"amount": "17.98", "currency": "USD"},
                    "weight": {"value": 2, "unit": "g"},
                    "inventory_quantity": None,
                },
                {
                    "name": "1/8 ounce",
                    "label": "1/8 oz",
                    "price": {"amount": "31.46", "currency": "USD"},
                    "weight": {"value": 0.125, "unit": "oz"},
                    "inventory_quantity": None,
                },
            ],
            "updated_at": "2023-11-28T21:41:59Z",
        },
    },
    {
        "id": 80000002,
        "type": "menu_item",
        "attributes": {
            "name": "Wax-Purple Kush .5g",
            "category_name": "Concentrates",
            "brand_name": "Ultra Test Brand",
            "cannabinoids": {},
            "genetics": "Indica",
            "prices": {
                "price_unit": 0,
                "price_half_gram": 20,
                "price_gram": 0,
                "price_two_grams": 0,
                "price_eighth": 0,
                "price_quarter": 0,
                "price_half_ounce": 0,
                "price_ounce": 0,
                "prices_other": {},
            },
            "variants": [],
        },
    },
    {
        "id": 80000003,
        "type": "menu_item",
        "attributes": {
            "name": "Canyon Craft | Fruit Chews 100mg",
            "category_name": "Edibles",
            "brand_name": None,
            "cannabinoids": {"thc": "100", "cbd": "0.5"},
            "measurements": [{"name": "CBD", "unit": "%", "value": "0.5"}],
            "genetics": "1:1",
            "prices": {"price_unit": "22.00"},
            "variants": [
                {
                    "name": "each",
                    "label": "1 each",
                    "price": {"amount": "22.00", "currency": "USD"},
                    "weight": {"value": 1, "unit": "each"},
                    "inventory_quantity": 7,
                }
            ],
        },
    },
)
"""The quirky JSON:API menu (the same listing's v1 path)."""


# --------------------------------------------------------------------------- the API
def _not_found() -> web.Response:
    return json_response({"errors": [{"status": "404", "title": "Not Found"}]}, status=404)


def _bad_page(detail: str) -> web.Response:
    return json_response(
        {"errors": [{"status": "422", "title": "Unprocessable Entity", "detail": detail}]},
        status=422,
    )


def _page_args(request: web.Request, size_name: str) -> tuple[int, int] | None:
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get(size_name, "25"))
    except ValueError:
        return None
    if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        return None
    return page, size


async def discovery(request: web.Request) -> web.StreamResponse:
    """The discovery menu of one listing, one page."""
    state = request.app[STATE]
    dispensary_id = f"weedmaps:{request.match_info['slug']}"
    args = _page_args(request, "page_size")
    first = request.query.get("page", "1") == "1"
    outcome = await state.gate(request, Vendor.WEEDMAPS, dispensary_id, first_page=first)
    if isinstance(outcome, web.StreamResponse):
        return outcome
    spec = state.spec(dispensary_id)
    if spec is None or spec.vendor is not Vendor.WEEDMAPS:
        return _not_found()
    if args is None:
        return _bad_page(f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}")
    page, size = args
    quirky = spec.size_class is SizeClass.QUIRKY
    served = (
        list(QUIRKY_ITEMS)
        if quirky
        else state.rendered(
            spec,
            "weedmaps-discovery",
            lambda items: with_duplicates([render_discovery_item(i) for i in items]),
        )
    )
    items = [] if outcome is FaultKind.EMPTY_PAGE else paged(served, (page - 1) * size, size)
    meta_key = "total" if quirky else "total_menu_items"
    document = {"data": {"menu_items": items}, "meta": {meta_key: len(served)}}
    return await state.respond(request, document, outcome)


async def jsonapi(request: web.Request) -> web.StreamResponse:
    """The JSON:API menu of one listing, one page."""
    state = request.app[STATE]
    dispensary_id = f"weedmaps:{request.match_info['slug']}"
    args = _page_args(request, "per_page")
    first = request.query.get("page", "1") == "1"
    outcome = await state.gate(request, Vendor.WEEDMAPS, dispensary_id, first_page=first)
    if isinstance(outcome, web.StreamResponse):
        return outcome
    spec = state.spec(dispensary_id)
    if spec is None or spec.vendor is not Vendor.WEEDMAPS:
        return _not_found()
    if args is None:
        return _bad_page(f"page must be >= 1 and per_page between 1 and {MAX_PAGE_SIZE}")
    page, size = args
    served = (
        list(QUIRKY_JSONAPI)
        if spec.size_class is SizeClass.QUIRKY
        else state.rendered(
            spec,
            "weedmaps-v1",
            lambda items: with_duplicates([render_jsonapi_item(i, spec) for i in items]),
        )
    )
    data = [] if outcome is FaultKind.EMPTY_PAGE else paged(served, (page - 1) * size, size)
    document = {
        "meta": {"page": page, "per_page": size, "total": len(served)},
        "data": data,
        "included": [
            {
                "id": int(spec.dispensary_id.encode().hex()[:6], 16),
                "type": "dispensary",
                "attributes": {"name": spec.name, "slug": spec.store},
            }
        ],
        "links": {"self": request.path_qs},
    }
    if math.ceil(len(served) / size) > page:
        document["links"] = {
            "self": request.path_qs,
            "next": f"{request.path}?page={page + 1}&per_page={size}",
        }
    return await state.respond(request, document, outcome)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/discovery/v1/listings/dispensaries/{slug}/menu_items", discovery),
        web.get("/v1/listings/dispensaries/{slug}/menu_items", jsonapi),
    ]
