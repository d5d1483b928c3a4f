"""Simulated Treez POS API (keyed): a token, then the product list.

- ``POST /v2.0/dispensary/{d}/config/api/gettokens`` with ``client_id`` and ``apikey`` (JSON or
  form) answers ``{resultCode, access_token, expires_in}`` when they are the sandbox's
  (``SandboxConfig.treez_client_id``/``treez_api_key``), else HTTP 401. A token lives
  ``treez_token_seconds`` (or until ``SandboxServer.expire_tokens``).
- ``GET /v2.0/dispensary/{d}/product/product_list?active=true&pagesize=N&page=P`` (1-based,
  ``pagesize`` at most 50, else 400) needs ``Authorization: Bearer <token>`` and the
  ``client_id`` header (else 401 ``{resultCode: FAIL}``). One product per size.
"""

from __future__ import annotations

import math
import secrets
from typing import Any, Final

from aiohttp import web

from whnode.record.model import Category, Lineage, PotencyUnit, QuantityUnit, Vendor
from whnode.sandbox.catalog import SIZE_GRAMS, Item, Option
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

__all__ = ["render_menu", "routes", "treez_ids"]

MAX_PAGE_SIZE: Final = 50
CATEGORY_TYPES: Final[dict[Category, str]] = {
    Category.FLOWER: "FLOWER",
    Category.PRE_ROLL: "PREROLL",
    Category.VAPE: "CARTRIDGE",
    Category.CONCENTRATE: "EXTRACT",
    Category.EDIBLE: "EDIBLE",
    Category.BEVERAGE: "BEVERAGE",
    Category.TINCTURE: "TINCTURE",
    Category.TOPICAL: "TOPICAL",
    Category.CAPSULE: "PILL",
    Category.SEED_CLONE: "CLONE",
    Category.ACCESSORY: "MERCH",
    Category.OTHER: "MISC",
}
CLASSIFICATIONS: Final[dict[Lineage, str | None]] = {
    Lineage.INDICA: "INDICA",
    Lineage.SATIVA: "SATIVA",
    Lineage.HYBRID: "HYBRID",
    Lineage.INDICA_HYBRID: "INDICA DOMINANT HYBRID",
    Lineage.SATIVA_HYBRID: "SATIVA DOMINANT HYBRID",
    Lineage.HIGH_CBD: "HIGH CBD",
    Lineage.BALANCED: "1:1",
    Lineage.UNKNOWN: None,
}
UOMS: Final = {
    QuantityUnit.GRAMS: "GRAMS",
    QuantityUnit.MILLIGRAMS: "MILLIGRAMS",
    QuantityUnit.UNITS: "EACH",
}


def treez_ids(item: Item) -> list[str]:
    """The product ids of a generated item, one per size, the first the smallest."""
    key = item.key
    return [
        f"{key[:8]}-{key[8:12]}-4{key[13:16]}-a{index:03d}-{key[20:32]}"
        for index in range(len(item.options))
    ]


def _size(option: Option, draw: float) -> tuple[float, str, str]:
    """(amount, uom, size label) as the POS writes one size."""
    grams = SIZE_GRAMS.get(option.size)
    if grams is not None and draw < 0.3:
        return grams / 28.0, "OUNCES", f"{grams / 28.0:g} oz"
    quantity = option.quantity
    suffix = {QuantityUnit.GRAMS: "g", QuantityUnit.MILLIGRAMS: "mg"}.get(quantity.unit, " ea")
    return quantity.amount, UOMS[quantity.unit], f"{quantity.amount:g}{suffix}"


def _lab_results(item: Item) -> list[dict[str, Any]]:
    results = []
    for code, potency in (("THC", item.thc), ("CBD", item.cbd)):
        if potency is None:
            continue
        percent = potency.unit is PotencyUnit.PERCENT
        results.append(
            {
                "result_type": code,
                "amount": {"minimum_value": potency.low, "maximum_value": potency.high},
                "amount_type": "PERCENTAGE" if percent else "MILLIGRAMS",
            }
        )
    return results


def render_products(item: Item) -> list[dict[str, Any]]:
    """A generated item as Treez products, one per size."""
    rng = quirk_rng(item, "treez")
    name = untidy_name(item.name, rng)
    brand = untidy_brand(item.brand, rng)
    description = html_description(item.description, rng)
    products = []
    for identifier, option in zip(treez_ids(item), item.options, strict=True):
        amount, uom, label = _size(option, rng.random())
        products.append(
            {
                "product_id": identifier,
                "product_status": "ACTIVE",
                "category_type": CATEGORY_TYPES[item.category],
                "product_configurable_fields": {
                    "name": name,
                    "brand": brand,
                    "size": label,
                    "amount": amount,
                    "uom": uom,
                    "classification": CLASSIFICATIONS[item.lineage],
                },
                "pricing": {
                    "price_type": "TIER" if option.size in SIZE_GRAMS else "FLAT",
                    "tier_name": option.size.value,
                    "price_sell": money(option.price_cents, rng),
                    "discounted_price": None
                    if option.special_price_cents is None
                    else money(option.special_price_cents, rng),
                },
                "sellable_quantity": option.stock,
                "lab_results": _lab_results(item),
                "e_commerce": {"product_description": description, "primary_image": item.image_url},
                "last_update_date": iso(item.updated_ms),
            }
        )
    return products


def render_menu(items: tuple[Item, ...]) -> list[Any]:
    return with_duplicates([product for item in items for product in render_products(item)])


def _fail(reason: str, status: int) -> web.Response:
    return json_response({"resultCode": "FAIL", "resultReason": reason}, status=status)


async def _credentials(request: web.Request) -> tuple[object, object]:
    try:
        if request.content_type == "application/json":
            body = await request.json()
            body = body if isinstance(body, dict) else {}
        else:
            body = dict(await request.post())
    except ValueError:
        body = {}
    return body.get("client_id"), body.get("apikey")


async def get_tokens(request: web.Request) -> web.StreamResponse:
    """A token for the dispensary's API client."""
    state = request.app[STATE]
    dispensary_id = f"treez:{request.match_info['dispensary']}"
    outcome = await state.gate(request, Vendor.TREEZ, dispensary_id, first_page=False)
    if isinstance(outcome, web.StreamResponse):
        return outcome
    client_id, api_key = await _credentials(request)
    config = state.config
    if client_id != config.treez_client_id or api_key != config.treez_api_key:
        return _fail("invalid client_id or apikey", 401)
    token = secrets.token_hex(16)
    state.tokens[token] = state.clock() + config.treez_token_seconds
    state.tokens_issued += 1
    return json_response(
        {
            "resultCode": "SUCCESS",
            "access_token": token,
            "expires_in": int(config.treez_token_seconds),
        }
    )


async def product_list(request: web.Request) -> web.StreamResponse:
    """One page of a dispensary's active products."""
    state = request.app[STATE]
    dispensary_id = f"treez:{request.match_info['dispensary']}"
    first = request.query.get("page", "1") == "1"
    outcome = await state.gate(request, Vendor.TREEZ, dispensary_id, first_page=first)
    if isinstance(outcome, web.StreamResponse):
        return outcome
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    expiry = state.tokens.get(token)
    if request.headers.get("client_id") != state.config.treez_client_id or expiry is None:
        return _fail("unauthorized", 401)
    if expiry <= state.clock():
        return _fail("token expired", 401)
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("pagesize", "50"))
    except ValueError:
        page, size = 0, 0
    if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
        return _fail(f"page must be >= 1 and pagesize between 1 and {MAX_PAGE_SIZE}", 400)
    spec = state.spec(dispensary_id)
    if spec is None or spec.vendor is not Vendor.TREEZ:
        return _fail("dispensary not found", 404)
    served = state.rendered(spec, "treez", render_menu)
    products = [] if outcome is FaultKind.EMPTY_PAGE else paged(served, (page - 1) * size, size)
    document = {
        "resultCode": "SUCCESS",
        "data": {
            "total_count": len(served),
            "page_count": math.ceil(len(served) / size),
            "product_list": products,
        },
    }
    return await state.respond(request, document, outcome)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v2.0/dispensary/{dispensary}/config/api/gettokens", get_tokens),
        web.get("/v2.0/dispensary/{dispensary}/product/product_list", product_list),
    ]
