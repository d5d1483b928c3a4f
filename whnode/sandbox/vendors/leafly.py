"""Simulated Leafly consumer API: ``GET /api/dispensaries/v1/{slug}/menu_items?take&skip``.

``take`` above 50 (or below 1) is HTTP 400; an unknown slug is HTTP 404. One item per size of
a product, ``{data: [...], metadata: {totalCount}}``; the quirky menu's odd pages come in the
newer envelope (``menuItems``).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from whnode.record.model import Category, Lineage, PotencyUnit, Vendor
from whnode.sandbox.catalog import Item, Option, SizeClass, SizeKind
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

__all__ = ["QUIRKY_ITEMS", "leafly_ids", "render_items", "render_menu", "routes"]

MAX_TAKE: Final = 50
CATEGORIES: Final[dict[Category, str]] = {
    Category.FLOWER: "Flower",
    Category.PRE_ROLL: "Pre-roll",
    Category.VAPE: "Vaporizers",
    Category.CONCENTRATE: "Concentrate",
    Category.EDIBLE: "Edible",
    Category.BEVERAGE: "Beverage",
    Category.TINCTURE: "Tincture",
    Category.TOPICAL: "Topical",
    Category.CAPSULE: "Capsule",
    Category.SEED_CLONE: "Seeds & Clones",
    Category.ACCESSORY: "Accessory",
    Category.OTHER: "Other",
}
STRAIN_TYPES: Final[dict[Lineage, str | None]] = {
    Lineage.INDICA: "indica",
    Lineage.SATIVA: "sativa",
    Lineage.HYBRID: "hybrid",
    Lineage.INDICA_HYBRID: "indica-dominant",
    Lineage.SATIVA_HYBRID: "sativa-dominant",
    Lineage.HIGH_CBD: "CBD",
    Lineage.BALANCED: "1:1",
    Lineage.UNKNOWN: None,
}
SIZES: Final[dict[SizeKind, tuple[tuple[float, str, str], ...]]] = {
    SizeKind.HALF_GRAM: ((0.5, "g", "0.5g"),),
    SizeKind.GRAM: ((1, "g", "1g"),),
    SizeKind.TWO_GRAM: ((2, "g", "2g"),),
    SizeKind.EIGHTH: ((3.5, "g", "3.5g"), (0.125, "oz", "1/8 oz")),
    SizeKind.QUARTER: ((7, "g", "7g"), (0.25, "oz", "1/4 oz")),
    SizeKind.HALF_OUNCE: ((14, "g", "14g"), (0.5, "oz", "1/2 oz")),
    SizeKind.OUNCE: ((28, "g", "28g"), (1, "oz", "1 oz")),
    SizeKind.EACH: ((1, "each", "each"), (0, "g", "N/A"), (9999999, "each", "each")),
}
"""(quantity, unit, displayQuantity) renderings of each size; 0 and 9999999 are sentinels."""
POTENCY_UNITS: Final = {
    PotencyUnit.PERCENT: "%",
    PotencyUnit.MILLIGRAMS: "mg",
    PotencyUnit.MILLIGRAMS_PER_GRAM: "mg/g",
}


def leafly_ids(item: Item) -> list[int]:
    """The menu item ids of a generated item, one per size."""
    base = int(item.key[16:24], 16) % 900_000_000 + 100_000_000
    return [base * 10 + index for index in range(len(item.options))]


def _price(option: Option, rng: Any) -> Any:
    if rng.random() < 0.25:
        return f"${option.price_cents / 100:,.2f}"
    return money(option.price_cents, rng, strings=0.1)


def render_items(item: Item) -> list[dict[str, Any]]:
    """A generated item as Leafly items, one per size."""
    rng = quirk_rng(item, "leafly")
    name = untidy_name(item.name, rng)
    brand = untidy_brand(item.brand, rng)
    description = html_description(item.description, rng)
    rendered = []
    for identifier, option in zip(leafly_ids(item), item.options, strict=True):
        quantity, unit, display = rng.choice(SIZES[option.size])
        entry: dict[str, Any] = {
            "id": identifier,
            "name": name,
            "brandName": brand,
            "productCategory": CATEGORIES[item.category],
            "strainType": STRAIN_TYPES[item.lineage],
            "strainName": item.name,
            "price": _price(option, rng),
            "quantity": quantity,
            "unit": unit,
            "displayQuantity": display,
            "stockQuantity": option.stock,
            "imageUrl": item.image_url,
            "description": description,
            "lastModifiedAt": (
                iso(item.updated_ms) if rng.random() < 0.5 else item.updated_ms // 1000
            ),
        }
        for prefix, potency in (("thc", item.thc), ("cbd", item.cbd)):
            if potency is None:
                entry[f"{prefix}Content"] = None
                entry[f"{prefix}Unit"] = None
                continue
            value: Any = potency.low
            if potency.is_range:
                value = f"{potency.low}-{potency.high}"
            entry[f"{prefix}Content"] = value
            entry[f"{prefix}Unit"] = POTENCY_UNITS[potency.unit]
        rendered.append(entry)
    return rendered


def render_menu(items: tuple[Item, ...]) -> list[Any]:
    return with_duplicates([entry for item in items for entry in render_items(item)])


# --------------------------------------------------------------------------- quirky menu
QUIRKY_ITEMS: Final[tuple[dict[str, Any], ...]] = (
    {
        "id": 501,
        "name": "Blue Dream",
        "brandName": "Terra Bloom",
        "productCategory": "Flower",
        "strainType": "hybrid",
        "price": 12,
        "quantity": 1,
        "unit": "g",
        "thcContent": 22,
        "thcUnit": "%",
        "stockQuantity": 10,
        "description": "<p>Classic &ldquo;sativa-leaning&rdquo; hybrid.</p>",
        "imageUrl": "https://images.sandbox.whnode.test/q/leafly-501.jpg",
        "lastModifiedAt": "2026-05-01T00:00:00Z",
    },
    {
        "id": 502,
        "name": "Blue Dream",
        "brandName": "Terra Bloom",
        "productCategory": "Flower",
        "strainType": "hybrid",
        "price": "$35.00",
        "quantity": 0.125,
        "unit": "oz",
        "thcContent": 22,
        "thcUnit": "%",
        "stockQuantity": None,
        "lastModifiedAt": 1746057600,
    },
    {
        "id": 503,
        "name": "Blue  Dream",
        "brandName": "terra bloom",
        "productCategory": "flower",
        "strainType": "Hybrid",
        "price": "$300.00",
        "quantity": 28,
        "unit": "g",
        "stockQuantity": "5",
    },
    {
        "id": 504,
        "name": "Grow Tent Kit",
        "productCategory": "Accessory",
        "price": "$1,200.00",
        "quantity": 1,
        "unit": "each",
        "stockQuantity": 9999999,
    },
    # page 2 with take 4: the newer envelope -----------------------------------------
    {
        "id": 505,
        "name": "Midnight Sundae Gummies 100mg",
        "brandName": "Lucky Duck",
        "productCategory": "Edible",
        "strainType": None,
        "priceInCents": 2200,
        "quantity": 0,
        "unit": "g",
        "thcContent": 100,
        "thcUnit": "mg",
    },
    {
        "id": 506,
        "name": "Cherry Runtz Live Rosin",
        "brandName": "Lucky Duck",
        "productCategory": "Concentrate",
        "strainType": "indica-dominant",
        "price": 45.5,
        "quantity": 1,
        "unit": "g",
        "thcContent": "750-800",
        "thcUnit": "mg/g",
    },
    {
        "id": 507,
        "name": "Sativa Sampler Pre-Rolls 0.5g x 5",
        "productCategory": "Pre-roll",
        "strainType": "sativa",
        "price": 30,
        "quantity": 5,
        "unit": "each",
    },
    {
        "id": 502,
        "name": "Blue Dream",
        "brandName": "Terra Bloom",
        "productCategory": "Flower",
        "strainType": "hybrid",
        "price": "$35.00",
        "quantity": 0.125,
        "unit": "oz",
        "thcContent": 22,
        "thcUnit": "%",
        "stockQuantity": None,
        "lastModifiedAt": 1746057600,
    },
    # page 3 ------------------------------------------------------------------------
    {
        "id": 509,
        "name": "Lemon Tincture",
        "productCategory": "Tincture",
        "price": 40,
        "quantity": 9999999,
        "unit": "mg",
        "thcContent": "0",
        "thcUnit": "%",
        "cbdContent": 500,
        "cbdUnit": "mg",
    },
    {"id": 510, "name": None, "productCategory": "Flower", "price": 10},
)
"""The quirky menu, served in this order; odd pages use the ``menuItems`` envelope."""


# --------------------------------------------------------------------------- the API
async def menu_items(request: web.Request) -> web.StreamResponse:
    """One ``take``/``skip`` page of a dispensary's menu."""
    state = request.app[STATE]
    dispensary_id = f"leafly:{request.match_info['slug']}"
    try:
        take = int(request.query.get("take", "20"))
        skip = int(request.query.get("skip", "0"))
    except ValueError:
        take, skip = -1, -1
    outcome = await state.gate(request, Vendor.LEAFLY, dispensary_id, first_page=skip == 0)
    if isinstance(outcome, web.StreamResponse):
        return outcome
    if not 1 <= take <= MAX_TAKE or skip < 0:
        return json_response(
            {"error": "Bad Request", "message": f"take must be between 1 and {MAX_TAKE}"},
            status=400,
        )
    spec = state.spec(dispensary_id)
    if spec is None or spec.vendor is not Vendor.LEAFLY:
        return json_response({"error": "Not Found", "message": "dispensary not found"}, status=404)
    quirky = spec.size_class is SizeClass.QUIRKY
    served = list(QUIRKY_ITEMS) if quirky else state.rendered(spec, "leafly", render_menu)
    items = [] if outcome is FaultKind.EMPTY_PAGE else paged(served, skip, take)
    envelope = "menuItems" if quirky and (skip // take) % 2 == 1 else "data"
    document = {
        envelope: items,
        "metadata": {"totalCount": len(served), "take": take, "skip": skip},
    }
    return await state.respond(request, document, outcome)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/dispensaries/v1/{slug}/menu_items", menu_items)]
