"""Simulated Flowhub POS inventory (keyed): ``GET /v0/locations/{location}/inventory``.

The ``clientId`` and ``key`` headers must be the sandbox's (``SandboxConfig.flowhub_client_id``
/ ``flowhub_api_key``), else HTTP 401. Pages are 1-based (``page``, ``pageSize`` at most 100,
else 400); ``{data: [...], total, page, pageSize}``. One entry per size, the size written in
``productName`` for weighed goods (``"Blue Dream 3.5g"``, ``"Blue Dream - 1/8 oz"``), prices
in integer cents.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from whnode.record.model import Category, PotencyUnit, Vendor
from whnode.sandbox.catalog import SIZE_GRAMS, Item, Option, SizeKind
from whnode.sandbox.faults import FaultKind
from whnode.sandbox.state import STATE
from whnode.sandbox.vendors.base import (
    LINEAGE_WORDS,
    html_description,
    iso,
    json_response,
    paged,
    quirk_rng,
    untidy_brand,
    untidy_name,
    with_duplicates,
)

__all__ = ["flowhub_ids", "render_menu", "routes"]

MAX_PAGE_SIZE: Final = 100
CATEGORIES: Final[dict[Category, str]] = {
    Category.FLOWER: "Flower",
    Category.PRE_ROLL: "PreRolls",
    Category.VAPE: "Vapes",
    Category.CONCENTRATE: "Concentrates",
    Category.EDIBLE: "Edibles",
    Category.BEVERAGE: "Beverages",
    Category.TINCTURE: "Tinctures",
    Category.TOPICAL: "Topicals",
    Category.CAPSULE: "Capsules",
    Category.SEED_CLONE: "Clones",
    Category.ACCESSORY: "Accessories",
    Category.OTHER: "Other",
}
NAME_SIZES: Final[dict[SizeKind, tuple[str, ...]]] = {
    SizeKind.HALF_GRAM: ("0.5g", ".5g", "- 0.5 g"),
    SizeKind.GRAM: ("1g", "- 1g", "1 gram"),
    SizeKind.TWO_GRAM: ("2g", "2 grams"),
    SizeKind.EIGHTH: ("3.5g", "1/8oz", "- 1/8 oz"),
    SizeKind.QUARTER: ("7g", "1/4 oz"),
    SizeKind.HALF_OUNCE: ("14g", "1/2oz"),
    SizeKind.OUNCE: ("28g", "1 oz"),
}
"""How a weighed size is written at the end of a product name."""


def flowhub_ids(item: Item) -> list[str]:
    """The inventory ids of a generated item, one per size, the first the smallest."""
    base = int(item.key[24:32], 16) % 90_000_000 + 10_000_000
    return [f"fh-{base}-{index}" for index in range(len(item.options))]


def _name(name: str, option: Option, draw: float) -> str:
    if option.size not in SIZE_GRAMS:
        return name  # sized by its own words ("Gummies 100mg", "Minis 0.5g x 5") or one unit
    spellings = NAME_SIZES[option.size]
    return f"{name} {spellings[int(draw * len(spellings))]}"


def _cannabinoids(item: Item) -> list[dict[str, Any]]:
    found = []
    for code, potency in (("THC", item.thc), ("CBD", item.cbd)):
        if potency is not None:
            unit = "%" if potency.unit is PotencyUnit.PERCENT else "mg"
            found.append(
                {
                    "name": code,
                    "lowerRange": potency.low,
                    "upperRange": potency.high,
                    "unitOfMeasure": unit,
                }
            )
    return found


def render_entries(item: Item) -> list[dict[str, Any]]:
    """A generated item as Flowhub inventory entries, one per size."""
    rng = quirk_rng(item, "flowhub")
    name = untidy_name(item.name, rng)
    brand = untidy_brand(item.brand, rng)
    description = html_description(item.description, rng)
    return [
        {
            "productId": identifier,
            "productName": _name(name, option, rng.random()),
            "brand": brand,
            "category": CATEGORIES[item.category],
            "speciesName": LINEAGE_WORDS[item.lineage],
            "preTaxPriceInPennies": option.price_cents,
            "postTaxPriceInPennies": round(option.price_cents * 1.2),
            "quantity": option.stock,
            "cannabinoidInformation": _cannabinoids(item),
            "productDescription": description,
            "productPictureURL": item.image_url,
            "updatedAt": iso(item.updated_ms),
        }
        for identifier, option in zip(flowhub_ids(item), item.options, strict=True)
    ]


def render_menu(items: tuple[Item, ...]) -> list[Any]:
    return with_duplicates([entry for item in items for entry in render_entries(item)])


async def inventory(request: web.Request) -> web.StreamResponse:
    """One page of a location's inventory."""
    state = request.app[STATE]
    dispensary_id = f"flowhub:{request.match_info['location']}"
    first = request.query.get("page", "1") == "1"
    outcome = await state.gate(request, Vendor.FLOWHUB, dispensary_id, first_page=first)
    if isinstance(outcome, web.StreamResponse):
        return outcome
    config = state.config
    if (
        request.headers.get("clientId") != config.flowhub_client_id
        or request.headers.get("key") != config.flowhub_api_key
    ):
        return json_response({"error": "Unauthorized", "status": 401}, status=401)
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("pageSize", "100"))
    except ValueError:
        page, size = 0, 0
    if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        message = f"page must be >= 1 and pageSize between 1 and {MAX_PAGE_SIZE}"
        return json_response({"error": message, "status": 400}, status=400)
    spec = state.spec(dispensary_id)
    if spec is None or spec.vendor is not Vendor.FLOWHUB:
        return json_response({"error": "location not found", "status": 404}, status=404)
    served = state.rendered(spec, "flowhub", render_menu)
    entries = [] if outcome is FaultKind.EMPTY_PAGE else paged(served, (page - 1) * size, size)
    document = {"data": entries, "total": len(served), "page": page, "pageSize": size}
    return await state.respond(request, document, outcome)


def routes() -> list[web.RouteDef]:
    return [web.get("/v0/locations/{location}/inventory", inventory)]
