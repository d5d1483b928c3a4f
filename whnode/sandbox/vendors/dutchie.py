"""Simulated Dutchie consumer GraphQL: ``FilteredProducts`` as a persisted query over GET.

``GET /graphql`` (also ``/api-3/graphql``) with ``operationName``, ``variables`` and
``extensions`` query parameters. Like Apollo: a GET needs ``apollo-require-preflight`` (or a
JSON content type) else HTTP 400; an unknown persisted-query hash, an unknown operation, a bad
``perPage`` or an unknown dispensary are errors in an HTTP 200 (``errors`` array).
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from aiohttp import web

from whnode.record.model import Category, PotencyUnit, QuantityUnit, Vendor
from whnode.sandbox.catalog import SIZE_GRAMS, DispensarySpec, Item, Option, SizeClass, SizeKind
from whnode.sandbox.faults import FaultKind
from whnode.sandbox.state import STATE
from whnode.sandbox.vendors.base import (
    LINEAGE_WORDS,
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

__all__ = ["QUIRKY_PRODUCTS", "render_menu", "render_product", "routes"]

MAX_PER_PAGE: Final = 100
TYPES: Final[dict[Category, tuple[str, str]]] = {
    Category.FLOWER: ("Flower", "premium"),
    Category.PRE_ROLL: ("Pre-Rolls", "singles"),
    Category.VAPE: ("Vaporizers", "cartridges"),
    Category.CONCENTRATE: ("Concentrate", "live-resin"),
    Category.EDIBLE: ("Edible", "gummies"),
    Category.BEVERAGE: ("Edible", "drinks"),
    Category.TINCTURE: ("Tincture", "unflavored"),
    Category.TOPICAL: ("Topicals", "balms"),
    Category.CAPSULE: ("Edible", "capsules"),
    Category.SEED_CLONE: ("Clones", "clones"),
    Category.ACCESSORY: ("Accessories", "glassware"),
    Category.OTHER: ("Other", "other"),
}
"""Dutchie ``type`` (plural or singular, as it comes) and ``subcategory`` per category."""
LABELS: Final[dict[SizeKind, tuple[str, ...]]] = {
    SizeKind.HALF_GRAM: (".5g", "0.5g", "1/2g"),
    SizeKind.GRAM: ("1g",),
    SizeKind.TWO_GRAM: ("2g",),
    SizeKind.EIGHTH: ("3.5g", "1/8oz", "1/8 oz", "3.5gC"),
    SizeKind.QUARTER: ("7g", "1/4oz"),
    SizeKind.HALF_OUNCE: ("14g", "1/2oz"),
    SizeKind.OUNCE: ("28g", "1oz"),
}
POTENCY_UNITS: Final = {
    PotencyUnit.PERCENT: "PERCENTAGE",
    PotencyUnit.MILLIGRAMS: "MILLIGRAMS",
    PotencyUnit.MILLIGRAMS_PER_GRAM: "MILLIGRAMS_PER_GRAM",
}


def _label(option: Option, draw: float) -> str:
    if option.size is not SizeKind.EACH:
        labels = LABELS[option.size]
        return labels[int(draw * len(labels))]
    quantity = option.quantity
    if quantity.unit is QuantityUnit.MILLIGRAMS:
        return f"{quantity.amount:g}mg"
    if quantity.unit is QuantityUnit.GRAMS:
        return f"{quantity.amount:g}g"
    if quantity.amount > 1:
        return f"{quantity.amount:g}pk"
    return "N/A"


def _raw_label(option: Option, label: str) -> str:
    if option.size in SIZE_GRAMS:
        return f"{SIZE_GRAMS[option.size]:.1f}g"
    return label


def _potency(potency: Any, single: bool) -> dict[str, Any] | None:
    if potency is None:
        return None
    values = [potency.low] if single and not potency.is_range else [potency.low, potency.high]
    return {"unit": POTENCY_UNITS[potency.unit], "range": values, "__typename": "ProductPotency"}


def render_product(item: Item) -> dict[str, Any]:
    """One generated item as a ``filteredProducts.products[]`` object."""
    rng = quirk_rng(item, "dutchie")
    identifier = item.key[:24]
    labels = [_label(option, rng.random()) for option in item.options]
    prices = [money(o.price_cents, rng, strings=0.05) for o in item.options]
    on_special = any(o.special_price_cents is not None for o in item.options)
    specials: list[Any] = [
        None if o.special_price_cents is None else money(o.special_price_cents, rng)
        for o in item.options
    ]
    if not on_special and rng.random() < 0.15:  # special prices present, flag off: ignored
        specials = [money(max(1, o.price_cents // 2), rng) for o in item.options]
    children = [
        {
            "option": label,
            "quantity": option.stock,
            "quantityAvailable": option.stock,
            "kioskQuantityAvailable": option.stock,
            "price": prices[index],
            "recPrice": prices[index],
            "medPrice": None,
            "__typename": "Products_POSMetaData_children",
        }
        for index, (label, option) in enumerate(zip(labels, item.options, strict=True))
        if option.stock is not None
    ]
    if rng.random() < 0.5:
        children.reverse()
    kind, subcategory = TYPES[item.category]
    brand = untidy_brand(item.brand, rng)
    lineage = LINEAGE_WORDS[item.lineage]
    if lineage is None and rng.random() < 0.5:
        lineage = "N/A"
    single_range = rng.random() < 0.3
    image = item.image_url
    return {
        "_id": identifier,
        "id": identifier,
        "AdditionalOptions": [],
        "brand": None
        if brand is None
        else {"id": item.key[24:36], "name": brand, "__typename": "Brand"},
        "brandId": None if brand is None else item.key[24:36],
        "brandName": brand,
        "CBD": None,
        "CBDContent": _potency(item.cbd, single_range),
        "createdAt": str(item.created_ms),
        "updatedAt": iso(item.updated_ms),
        "DispensaryID": None,
        "Image": image if rng.random() < 0.8 else None,
        "images": []
        if image is None
        else [{"url": image, "active": True, "__typename": "Products_Images"}],
        "medicalOnly": False,
        "medicalPrices": prices,
        "medicalSpecialPrices": specials,
        "Name": untidy_name(item.name, rng),
        "Options": labels,
        "rawOptions": [_raw_label(o, label) for o, label in zip(item.options, labels, strict=True)],
        "POSMetaData": {
            "canonicalCategory": kind,
            "children": children,
            "__typename": "Products_POSMetaData",
        },
        "Prices": prices,
        "recOnly": False,
        "recPrices": prices,
        "recSpecialPrices": specials,
        "special": on_special,
        "specialData": (
            {
                "saleSpecials": [
                    {
                        "discount": 20,
                        "percentDiscount": True,
                        "specialName": "20% Off Select Items",
                        "specialType": "sale",
                        "__typename": "Products_specialData_saleSpecials",
                    }
                ],
                "__typename": "Products_specialData",
            }
            if on_special
            else None
        ),
        "Status": "Active",
        "strainType": lineage,
        "subcategory": subcategory,
        "THC": None,
        "THCContent": _potency(item.thc, single_range),
        "type": kind,
        "description": html_description(item.description, rng),
        "cName": item.name.lower().replace(" ", "-"),
        "__typename": "Products",
    }


def render_menu(items: tuple[Item, ...]) -> list[Any]:
    """The served product list of a generated menu (pages overlap)."""
    return with_duplicates([render_product(item) for item in items])


# --------------------------------------------------------------------------- quirky menu
def _product(identifier: str, name: str, **fields: Any) -> dict[str, Any]:
    product: dict[str, Any] = {
        "_id": identifier,
        "id": identifier,
        "Name": name,
        "brandName": None,
        "brand": None,
        "Status": "Active",
        "THCContent": None,
        "CBDContent": None,
        "POSMetaData": {"children": [], "__typename": "Products_POSMetaData"},
        "special": False,
        "Image": None,
        "images": [],
        "__typename": "Products",
    }
    product.update(fields)
    return product


QUIRKY_PRODUCTS: Final[tuple[dict[str, Any], ...]] = (
    _product(
        "6a10000000000000000000a1",
        "Mama J\u2019s: Alien Rock Candy  - PR 2pk",
        brandName="mama J's",
        brand={"id": "b1", "name": "mama J's", "__typename": "Brand"},
        type="Pre-Rolls",
        subcategory="singles",
        strainType="Indica",
        Options=["2g"],
        rawOptions=["2.0g"],
        Prices=[8],
        recPrices=[8],
        medicalPrices=[8],
        recSpecialPrices=[4],
        medicalSpecialPrices=[4],
        special=True,
        THCContent={"unit": "PERCENTAGE", "range": [21, 22], "__typename": "ProductPotency"},
        CBDContent={"unit": "PERCENTAGE", "range": [0.04, 0.05], "__typename": "ProductPotency"},
        POSMetaData={"children": [{"option": "2g", "quantityAvailable": 25}]},
        Image="https://images.sandbox.whnode.test/q/dutchie-a1.jpg",
        createdAt="1748641511238",
        updatedAt="2026-06-13T05:24:11.208Z",
    ),
    _product(
        "6a10000000000000000000a2",
        "Golden  Haze",
        brand={"id": "b1", "name": "Mama J's"},
        type="Flower",
        subcategory="premium",
        strainType="Sativa-Hybrid",
        Options=["1g", "1/8oz", "1/4 oz", "28.3g"],
        rawOptions=["1.0g", "3.5g", "7.0g", "28.3g"],
        Prices=["12.00", 35.5, 60, 199.99],
        recPrices=["12.00", 35.5, 60, 199.99],
        recSpecialPrices=[None, 30, None, None],
        special=False,
        THCContent={"unit": "PERCENTAGE", "range": ["24.5"]},
        POSMetaData={
            "children": [
                {"option": "1/4 oz", "quantityAvailable": 3},
                {"option": "1g", "quantityAvailable": "12"},
            ]
        },
        images=[{"url": "https://images.sandbox.whnode.test/q/dutchie-a2.jpg", "active": True}],
        createdAt="1700000000000",
        updatedAt="2026-01-01T00:00:00Z",
    ),
    _product(
        "6a10000000000000000000a3",
        "Cosmic Gummies 100mg",
        brandName="Mama J's",
        type="Edible",
        subcategory="gummies",
        strainType="N/A",
        Options=["100mg"],
        Prices=[20],
        recPrices=[20],
        THCContent={"unit": "MILLIGRAMS", "range": [100, 100]},
        CBDContent={"unit": "MILLIGRAMS", "range": [None, None]},
        description="<p>Fruity &amp; vegan.</p><ul><li>10 pieces</li><li>10mg   each</li></ul>",
        createdAt="1710000000000",
        updatedAt="2026-03-01T12:00:00.000Z",
    ),
    _product(
        "6a10000000000000000000a4",
        "Lime Seltzer  10mg\u2122",
        type="Edible",
        subcategory="drinks",
        strainType=None,
        Options=["10mg"],
        Prices=[6.5],
        recPrices=[6.5],
        THCContent={"unit": "MILLIGRAMS", "range": [10]},
        createdAt="1710000000000",
        updatedAt="2026-03-01T12:00:00Z",
    ),
    _product(
        "6a10000000000000000000a5",
        "Glass Spoon Pipe",
        brandName="",
        type="Accessories",
        subcategory="glassware",
        Options=["N/A"],
        rawOptions=["N/A"],
        Prices=[15],
        recPrices=[15],
        POSMetaData={"children": [{"option": "N/A", "quantityAvailable": 4}]},
        createdAt="1710000000000",
    ),
    # page 2 from here with perPage 3 -------------------------------------------
    _product(
        "6a10000000000000000000a6",
        "Sour Diesel Live Resin",
        brandName="Sunrise Extracts",
        type="Concentrate",
        subcategory="live-resin",
        strainType="Indica-Hybrid",
        Options=[".5g", "1g"],
        Prices=[30, 55],
        recPrices=[30, 55],
        medicalPrices=[28, 50],
        recSpecialPrices=[25, None],
        special=True,
        THCContent={"unit": "MILLIGRAMS_PER_GRAM", "range": [780, 810]},
        POSMetaData={
            "children": [
                {"option": ".5g", "quantityAvailable": 0},
                {"option": "1g", "quantityAvailable": -2},
            ]
        },
        createdAt="1710000000000",
        updatedAt="2026-02-02T02:02:02Z",
    ),
    _product(
        "6a10000000000000000000a7",
        "Midnight Kush",
        brandName="Mama J's",
        type="Flower",
        strainType="High CBD",
        Options=["3.5gC", "7g"],
        Prices=[0, 70],
        recPrices=[0, 70],
        THC="19.5%",
        createdAt="1710000000000",
    ),
    _product(
        "6a10000000000000000000a8",
        "Blue Dream",
        type="Flower",
        strainType="Hybrid",
        Options=["1g"],
        Prices=[10],
        recPrices=[10],
        createdAt="1710000000000",
    ),
    _product(
        "6a10000000000000000000a9",
        "Blue Dream",
        type="Flower",
        strainType="hybrid",
        Options=["1/8 oz"],
        Prices=["$32"],
        recPrices=["$32"],
        createdAt="1710000000000",
    ),
    # the flower of a2 again, updated since: its newer price wins
    _product(
        "6a10000000000000000000a2",
        "Golden Haze",
        brand={"id": "b1", "name": "Mama J's"},
        type="Flower",
        subcategory="premium",
        strainType="Sativa-Hybrid",
        Options=["1g", "1/8oz", "1/4 oz", "28.3g"],
        Prices=["13.00", 35.5, 60, 199.99],
        recPrices=["13.00", 35.5, 60, 199.99],
        special=False,
        THCContent={"unit": "PERCENTAGE", "range": ["24.5"]},
        POSMetaData={
            "children": [
                {"option": "1/4 oz", "quantityAvailable": 3},
                {"option": "1g", "quantityAvailable": "12"},
            ]
        },
        images=[{"url": "https://images.sandbox.whnode.test/q/dutchie-a2.jpg", "active": True}],
        createdAt="1700000000000",
        updatedAt="2026-01-02T00:00:00Z",
    ),
    # the gummies again, an older copy: ignored
    _product(
        "6a10000000000000000000a3",
        "Cosmic Gummies 100mg",
        brandName="Mama J's",
        type="Edible",
        Options=["100mg"],
        Prices=[18],
        recPrices=[18],
        createdAt="1710000000000",
        updatedAt="2025-03-01T12:00:00Z",
    ),
    # every option priced 0 (not offered): not on the menu
    _product(
        "6a10000000000000000000aa",
        "Sold Out Sampler",
        type="Flower",
        Options=["1g"],
        Prices=[0],
        recPrices=[0],
    ),
    # no id: not a product
    {"Name": "Nameless Mystery", "Options": ["1g"], "Prices": [5], "type": "Flower"},
)
"""The quirky menu, served in this order (pages of the client's ``perPage``)."""


# --------------------------------------------------------------------------- the API
def _errors(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}], "data": None}


def _served(request: web.Request, spec: DispensarySpec) -> list[Any]:
    if spec.size_class is SizeClass.QUIRKY:
        return list(QUIRKY_PRODUCTS)
    return request.app[STATE].rendered(spec, "dutchie", render_menu)


async def graphql(request: web.Request) -> web.StreamResponse:
    """``GET /graphql``: FilteredProducts, one page."""
    state = request.app[STATE]
    query = request.query
    try:
        variables = json.loads(query.get("variables", "{}"))
        extensions = json.loads(query.get("extensions", "{}"))
    except json.JSONDecodeError:
        return json_response(_errors("Variables are invalid JSON.", "BAD_REQUEST"), status=400)
    if not isinstance(variables, dict) or not isinstance(extensions, dict):
        return json_response(_errors("Variables are invalid JSON.", "BAD_REQUEST"), status=400)
    products_filter = variables.get("productsFilter")
    store = (
        str(products_filter.get("dispensaryId", "")) if isinstance(products_filter, dict) else ""
    )
    dispensary_id = f"dutchie:{store}"
    page = variables.get("page", 0)
    per_page = variables.get("perPage", 50)
    first_page = page == 0
    outcome = await state.gate(
        request, Vendor.DUTCHIE, dispensary_id, first_page=isinstance(page, int) and first_page
    )
    if isinstance(outcome, web.StreamResponse):
        return outcome
    if not (
        request.headers.get("apollo-require-preflight")
        or request.headers.get("x-apollo-operation-name")
        or request.content_type == "application/json"
    ):
        return json_response(
            _errors(
                "This operation has been blocked as a potential Cross-Site Request Forgery "
                "(CSRF). Please either specify a 'content-type' header (with a type that is "
                "not one of application/x-www-form-urlencoded, multipart/form-data, "
                "text/plain) or provide a non-empty value for one of the following headers: "
                "x-apollo-operation-name, apollo-require-preflight",
                "BAD_REQUEST",
            ),
            status=400,
        )
    if outcome is FaultKind.GRAPHQL_ERROR:
        return json_response(_errors("Unexpected error value: internal", "INTERNAL_SERVER_ERROR"))
    persisted_query = extensions.get("persistedQuery")
    persisted = persisted_query.get("sha256Hash") if isinstance(persisted_query, dict) else None
    if persisted != state.config.dutchie_query_hash:
        return json_response(_errors("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND"))
    if query.get("operationName") != "FilteredProducts":
        return json_response(
            _errors(
                f'Unknown operation named "{query.get("operationName")}".',
                "GRAPHQL_VALIDATION_FAILED",
            )
        )
    if (
        not isinstance(page, int)
        or page < 0
        or not isinstance(per_page, int)
        or not 1 <= per_page <= MAX_PER_PAGE
    ):
        return json_response(
            _errors(f"perPage must be between 1 and {MAX_PER_PAGE}; page >= 0", "BAD_USER_INPUT")
        )
    spec = state.spec(dispensary_id)
    if spec is None or spec.vendor is not Vendor.DUTCHIE:
        return json_response(_errors("Dispensary not found", "NOT_FOUND"))
    served = _served(request, spec)
    products = [] if outcome is FaultKind.EMPTY_PAGE else paged(served, page * per_page, per_page)
    document = {
        "data": {
            "filteredProducts": {
                "products": products,
                "queryInfo": {
                    "totalCount": len(served),
                    "totalPages": math.ceil(len(served) / per_page),
                    "__typename": "QueryInfo",
                },
                "__typename": "FilteredProducts",
            }
        }
    }
    return await state.respond(request, document, outcome)


def routes() -> list[web.RouteDef]:
    return [web.get("/graphql", graphql), web.get("/api-3/graphql", graphql)]
