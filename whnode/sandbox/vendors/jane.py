"""Simulated iHeartJane Algolia index: ``POST /1/indexes/menu-products-production/query``.

Like Algolia: parameters in the JSON body (or URL-encoded in its ``params`` string),
``hitsPerPage`` clamped to 1000, 0-based ``page``, an unknown store answers zero hits (Algolia
cannot tell), and wrong application id or key headers (when the sandbox is configured with
them) answer 403.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from typing import Any, Final

from aiohttp import web

from whnode.record.model import Category, Lineage, PotencyUnit, Vendor
from whnode.sandbox.catalog import DispensarySpec, Item, SizeClass, SizeKind
from whnode.sandbox.faults import FaultKind
from whnode.sandbox.state import STATE
from whnode.sandbox.vendors.base import (
    html_description,
    json_response,
    money,
    paged,
    quirk_rng,
    untidy_brand,
    untidy_name,
    with_duplicates,
)

__all__ = ["QUIRKY_HITS", "jane_product_id", "render_hit", "render_menu", "routes"]

INDEX: Final = "menu-products-production"
MAX_HITS_PER_PAGE: Final = 1000
WEIGHTS: Final[dict[SizeKind, str]] = {
    SizeKind.HALF_GRAM: "half gram",
    SizeKind.GRAM: "gram",
    SizeKind.TWO_GRAM: "two gram",
    SizeKind.EIGHTH: "eighth ounce",
    SizeKind.QUARTER: "quarter ounce",
    SizeKind.HALF_OUNCE: "half ounce",
    SizeKind.OUNCE: "ounce",
    SizeKind.EACH: "each",
}
KINDS: Final[dict[Category, tuple[str, str | None]]] = {
    Category.FLOWER: ("flower", None),
    Category.PRE_ROLL: ("pre-roll", None),
    Category.VAPE: ("vape", "Cartridges"),
    Category.CONCENTRATE: ("extract", "Live Resin"),
    Category.EDIBLE: ("edible", "Gummies"),
    Category.BEVERAGE: ("edible", "Drinks"),
    Category.TINCTURE: ("tincture", None),
    Category.TOPICAL: ("topical", None),
    Category.CAPSULE: ("edible", "Capsules"),
    Category.SEED_CLONE: ("clone", None),
    Category.ACCESSORY: ("gear", None),
    Category.OTHER: ("merch", None),
}
LINEAGES: Final[dict[Lineage, str | None]] = {
    Lineage.INDICA: "indica",
    Lineage.SATIVA: "sativa",
    Lineage.HYBRID: "hybrid",
    Lineage.INDICA_HYBRID: "indica",
    Lineage.SATIVA_HYBRID: "sativa",
    Lineage.HIGH_CBD: "cbd",
    Lineage.BALANCED: "cbd",
    Lineage.UNKNOWN: None,
}
"""Jane's ``category`` knows four words: finer lineages fold into them."""
FILTER: Final = re.compile(r"store_id\s*[:=]\s*\"?([A-Za-z0-9._~-]+)\"?")


def jane_product_id(item: Item) -> int:
    """The ``product_id`` of a generated item."""
    return int(item.key[:8], 16) % 9_000_000 + 1_000_000


def _case(word: str, draw: float) -> str:
    if draw < 0.2:
        return word.capitalize()
    if draw < 0.25:
        return word.upper()
    return word


def render_hit(item: Item, spec: DispensarySpec) -> dict[str, Any]:
    """One generated item as an Algolia hit (now and then an ad record)."""
    rng = quirk_rng(item, "jane")
    product_id = jane_product_id(item)
    kind, subtype = KINDS[item.category]
    underscores = rng.random() < 0.3
    hit: dict[str, Any] = {
        "objectID": str(product_id),
        "product_id": product_id,
        "store_id": int(spec.store) if spec.store.isdigit() else spec.store,
        "name": untidy_name(item.name, rng),
        "brand": untidy_brand(item.brand, rng),
        "kind": _case(kind, rng.random()),
        "kind_subtype": subtype,
        "category": LINEAGES[item.lineage],
        "available_weights": [],
        "description": html_description(item.description, rng),
        "image_urls": [] if item.image_url is None else [item.image_url],
        "max_cart_quantity": 10,
        "aggregate_rating": round(rng.uniform(3, 5), 1),
        "review_count": rng.randint(0, 300),
        "url_slug": item.name.lower().replace(" ", "-"),
    }
    for weight in WEIGHTS.values():
        hit[f"price_{weight.replace(' ', '_')}"] = None
    for option in item.options:
        weight = WEIGHTS[option.size]
        key = weight.replace(" ", "_")
        hit["available_weights"].append(key if underscores else weight)
        hit[f"price_{key}"] = money(option.price_cents, rng)
        if option.special_price_cents is not None:
            if rng.random() < 0.5:
                hit[f"special_price_{key}"] = {
                    "discount_price": f"{option.special_price_cents / 100:.2f}",
                    "discount_percent": 20,
                    "discount_type": "percent",
                }
            else:
                hit[f"discounted_price_{key}"] = money(option.special_price_cents, rng)
    for field, potency in (("percent_thc", item.thc), ("percent_cbd", item.cbd)):
        value: Any = None
        if potency is not None and potency.unit is PotencyUnit.PERCENT:
            value = potency.high
            if rng.random() < 0.2:
                value = f"{value}"
        hit[field] = value
    if rng.random() < 0.03:
        return {"objectID": f"ad-{product_id}", "search_attributes": hit, "ad_token": item.key[:16]}
    return hit


def render_menu(spec: DispensarySpec) -> Any:
    def render(items: tuple[Item, ...]) -> list[Any]:
        return with_duplicates([render_hit(item, spec) for item in items])

    return render


# --------------------------------------------------------------------------- quirky menu
def _hit(product_id: int, name: str, **fields: Any) -> dict[str, Any]:
    hit: dict[str, Any] = {
        "objectID": str(product_id),
        "product_id": product_id,
        "store_id": 5150,
        "name": name,
        "brand": None,
        "category": None,
        "available_weights": [],
        "image_urls": [],
        "percent_thc": None,
        "percent_cbd": None,
    }
    hit.update(fields)
    return hit


QUIRKY_HITS: Final[tuple[dict[str, Any], ...]] = (
    _hit(
        900001,
        "Kush  Mints\u2122",
        brand="Kind Harvest",
        kind="FLOWER",
        category="indica",
        available_weights=["eighth ounce", "half_gram", "gram"],
        price_eighth_ounce=45,
        price_half_gram=15.5,
        price_gram=None,
        special_price_eighth_ounce={"discount_price": "36.00", "discount_percent": 20},
        percent_thc="22.5",
        percent_cbd=0,
        image_urls=["https://images.sandbox.whnode.test/q/jane-1.jpg"],
    ),
    {
        "objectID": "ad-900002",
        "ad_token": "t0k3n",
        "search_attributes": _hit(
            900002,
            "Electric Lotus Cartridge",
            brand="kind harvest",
            kind="Vape",
            kind_subtype="Cartridges",
            category="sativa",
            available_weights=["half gram", "gram"],
            price_half_gram=25,
            price_gram=40,
            discounted_price_gram=35,
            percent_thc=88.1,
        ),
    },
    {
        "objectID": "ad-777",
        "search_attributes": _hit(
            777,
            "Another Store's Ad",
            store_id=9999,
            kind="flower",
            available_weights=["gram"],
            price_gram=10,
        ),
    },
    _hit(
        900004,
        "Huckleberry Gummies 100mg",
        kind="edible",
        kind_subtype="Gummies",
        category="hybrid",
        available_weights=["each"],
        price_each=18,
        description="Vegan.<br>Made with real fruit &amp; no gelatin.",
    ),
    # page 2 with hitsPerPage 4 ---------------------------------------------------
    _hit(
        900005,
        "Cold Brew Shot 10mg",
        kind="Edible",
        kind_subtype="Drinks",
        available_weights=["each"],
        price_each=7,
    ),
    _hit(
        900006,
        "Sunset Minis 0.5g x 5",
        brand="Kind Harvest",
        kind="pre-roll",
        category="hybrid",
        available_weights=["each"],
        price_each=30,
        percent_thc=19,
    ),
    _hit(
        900004,
        "Huckleberry Gummies 100mg",
        kind="edible",
        kind_subtype="Gummies",
        category="hybrid",
        available_weights=["each"],
        price_each=18,
        description="Vegan.<br>Made with real fruit &amp; no gelatin.",
    ),
    _hit(
        900008,
        "Mac &amp; Cheese Badder",
        brand="Sunrise Extracts",
        kind="extract",
        category="Hybrid",
        available_weights=["gram", "two gram"],
        price_gram=50,
        price_two_gram=0,
        percent_thc=78.2,
        description="<div><b>Whipped</b> to a smooth,\u00a0creamy consistency.</div>",
    ),
    # page 3 ------------------------------------------------------------------------
    _hit(900009, "Rolling Tray", kind="gear", price_each=12),
    _hit(
        900010,
        "Glacier Express",
        kind="Flower",
        category="Sativa",
        available_weights=["ounce", "quarter_ounce", "half ounce"],
        price_ounce=240,
        price_quarter_ounce=80,
        price_half_ounce="150",
        special_price_ounce={"discount_price": "199.99"},
        percent_thc=31.46,
    ),
    {"objectID": "broken", "name": "Hit Without A Product Id", "store_id": 5150},
)
"""The quirky menu, served in this order (pages of the client's ``hitsPerPage``)."""


# --------------------------------------------------------------------------- the API
def _error(message: str, status: int) -> web.Response:
    return json_response({"message": message, "status": status}, status=status)


def _served(request: web.Request, spec: DispensarySpec) -> list[Any]:
    if spec.size_class is SizeClass.QUIRKY:
        return list(QUIRKY_HITS)
    return request.app[STATE].rendered(spec, "jane", render_menu(spec))


def _int(value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError("not an integer")
    return int(str(value))


async def query(request: web.Request) -> web.StreamResponse:
    """``POST /1/indexes/{index}/query``: one page of hits."""
    state = request.app[STATE]
    if request.match_info["index"] != INDEX:
        return _error("Index does not exist", 404)
    try:
        body = json.loads(await request.read() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("not an object")
        params: dict[str, Any] = dict(body)
        if isinstance(body.get("params"), str):
            params.update(dict(urllib.parse.parse_qsl(body["params"])))
        page = _int(params.get("page"), 0)
        hits_per_page = min(MAX_HITS_PER_PAGE, _int(params.get("hitsPerPage"), 20))
    except (ValueError, UnicodeDecodeError):
        return _error("Invalid JSON or parameters", 400)
    if page < 0 or hits_per_page < 1:
        return _error("page and hitsPerPage must be positive", 400)
    match = FILTER.search(str(params.get("filters", "")))
    dispensary_id = f"jane:{match.group(1)}" if match else None
    outcome = await state.gate(request, Vendor.JANE, dispensary_id, first_page=page == 0)
    if isinstance(outcome, web.StreamResponse):
        return outcome
    config = state.config
    if config.jane_app_id is not None and (
        request.headers.get("x-algolia-application-id") != config.jane_app_id
    ):
        return _error("Invalid Application-ID or API key", 403)
    if config.jane_api_key is not None and (
        request.headers.get("x-algolia-api-key") != config.jane_api_key
    ):
        return _error("Invalid Application-ID or API key", 403)
    spec = state.spec(dispensary_id) if dispensary_id else None
    served = [] if spec is None or spec.vendor is not Vendor.JANE else _served(request, spec)
    hits = (
        []
        if outcome is FaultKind.EMPTY_PAGE
        else paged(served, page * hits_per_page, hits_per_page)
    )
    document = {
        "hits": hits,
        "nbHits": len(served),
        "page": page,
        "nbPages": math.ceil(len(served) / hits_per_page),
        "hitsPerPage": hits_per_page,
        "exhaustiveNbHits": True,
        "query": str(params.get("query", "")),
        "params": urllib.parse.urlencode({"filters": params.get("filters", ""), "page": page}),
        "processingTimeMS": 1,
    }
    return await state.respond(request, document, outcome)


def routes() -> list[web.RouteDef]:
    return [web.post("/1/indexes/{index}/query", query)]
