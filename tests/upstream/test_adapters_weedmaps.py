"""The Weedmaps adapter over real HTTP against the sandbox, both APIs (discovery and the JSON:API
v1 menu): small, 2,500-item and quirky menus, unknown listings, broken pages."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.sandbox.support import HttpStatusError, check_generated, upstream
from whnode.record import model
from whnode.sandbox import LARGE, QUIRKY, SMALL
from whnode.upstream.adapters import AdapterParseError, weedmaps
from whnode.upstream.sources import WeedmapsApi

G = model.QuantityUnit.GRAMS
MG = model.QuantityUnit.MILLIGRAMS
PCT = model.PotencyUnit.PERCENT

QUIRKY_DISCOVERY = (
    model.Product(
        "70000001",
        "Blue Dream",
        model.Category.FLOWER,
        (
            model.PriceOption(model.Quantity(1.0, G), 1200),
            model.PriceOption(model.Quantity(2.0, G), 2200),
            model.PriceOption(model.Quantity(3.5, G), 3500, 3000),
        ),
        brand="Ridgeline",
        lineage=model.Lineage.HYBRID,
        thc=model.Potency(21.4, 21.4, PCT),
        cbd=model.Potency(0.3, 0.3, PCT),
        image_url="https://images.sandbox.whnode.test/q/wm-1.jpg",
        description="Sweet berry aroma.\nBalanced & uplifting.",
    ),
    model.Product(
        "70000006",
        "Glass Spoon Pipe",
        model.Category.ACCESSORY,
        (model.PriceOption(model.Quantity(1.0, model.QuantityUnit.UNITS), 1500),),
    ),
    model.Product(
        "70000003",
        "Lemon Haze Pre-Roll 2pk",
        model.Category.PRE_ROLL,
        (model.PriceOption(model.Quantity(2.0, model.QuantityUnit.UNITS), 1800),),
        brand="Ridgeline",
    ),
    model.Product(
        "70000004",
        "Tangie Live Resin",
        model.Category.CONCENTRATE,
        (
            model.PriceOption(model.Quantity(0.5, G), 2800),
            model.PriceOption(model.Quantity(1.0, G), 5500, 5000),
        ),
        brand="Ridgeline",
        thc=model.Potency(72.0, 78.0, PCT),
    ),
    model.Product(
        "70000002",
        "Watermelon Gummies 100mg",
        model.Category.EDIBLE,
        (model.PriceOption(model.Quantity(100.0, MG), 2000),),
        brand="Ridgeline",
        thc=model.Potency(100.0, 100.0, model.PotencyUnit.MILLIGRAMS),
    ),
)
"""Written by hand from QUIRKY_ITEMS in whnode/sandbox/vendors/weedmaps.py: "Brand | Name",
lineage in the category, both price shapes, grams_per_eighth ignored, on-sale prices,
the 0 price and nulls dropped, a single price object as fallback, the older duplicate ignored,
brand case, ``meta.total`` instead of ``meta.total_menu_items``."""

QUIRKY_JSONAPI = (
    model.Product(
        "80000003",
        "Fruit Chews 100mg",
        model.Category.EDIBLE,
        (model.PriceOption(model.Quantity(100.0, MG), 2200, None, 7),),
        brand="Canyon Craft",
        lineage=model.Lineage.BALANCED,
        thc=model.Potency(100.0, 100.0, model.PotencyUnit.MILLIGRAMS),
        cbd=model.Potency(0.5, 0.5, PCT),
    ),
    model.Product(
        "80000001",
        "Purple Punch",
        model.Category.FLOWER,
        (
            model.PriceOption(model.Quantity(1.0, G), 899),
            model.PriceOption(model.Quantity(2.0, G), 1798),
            model.PriceOption(model.Quantity(3.5, G), 3146),
        ),
        brand="Ultra Test Brand",
        thc=model.Potency(20.2, 20.2, PCT),
        description="House grown flower",
    ),
    model.Product(
        "80000002",
        "Wax-Purple Kush .5g",
        model.Category.CONCENTRATE,
        (model.PriceOption(model.Quantity(0.5, G), 2000),),
        brand="Ultra Test Brand",
        lineage=model.Lineage.INDICA,
    ),
)
"""Written by hand from QUIRKY_JSONAPI: string variant prices with weights in ounces, the
prices table (0 = not offered) when there are no variants, cannabinoid strings without a unit
(mg for edibles, % else, the measurement's unit when given), genetics."""


async def test_small_menu_over_http_both_apis() -> None:
    dispensary = SMALL[model.Vendor.WEEDMAPS]
    async with upstream() as up:
        menu, pages = await up.menu(dispensary)
        check_generated(menu, up.sandbox.items(dispensary), "weedmaps")
        assert len(pages) == 1
        _, url, params, _ = up.http.requests[0]
        expected = "/discovery/v1/listings/dispensaries/high-desert-remedies/menu_items"
        assert url == up.sandbox.base_url + expected
        assert params == {"page": "1", "page_size": "100"}
        assert menu.name == "high-desert-remedies"
        source = up.sources.resolve(dispensary).with_options(credentials={"api": "v1"})
        assert source.weedmaps_api is WeedmapsApi.V1
        v1, _ = await up.menu(dispensary, source)
        check_generated(v1, up.sandbox.items(dispensary), "weedmaps-v1")
        assert v1.name == "High Desert Remedies", "the JSON:API menu names its dispensary"
        _, url, params, _ = up.http.requests[-1]
        assert (
            url == up.sandbox.base_url + "/v1/listings/dispensaries/high-desert-remedies/menu_items"
        )
        assert params == {"page": "1", "per_page": "100"}


async def test_large_menu_of_many_pages_both_apis() -> None:
    dispensary = LARGE[model.Vendor.WEEDMAPS]
    async with upstream() as up:
        source = dataclasses.replace(up.sources.resolve(dispensary), page_size=1000)
        assert source.effective_page_size == 100, "page_size is capped at the API's 100"
        menu, pages = await up.menu(dispensary, source)
        total = json.loads(pages[0])["meta"]["total_menu_items"]
        assert total > 2500
        assert len(pages) == -(-total // 100)
        check_generated(menu, up.sandbox.items(dispensary), "weedmaps")
        v1_source = dataclasses.replace(source, weedmaps_api=WeedmapsApi.V1)
        v1, v1_pages = await up.menu(dispensary, v1_source)
        assert len(v1_pages) == len(pages)
        check_generated(v1, up.sandbox.items(dispensary), "weedmaps-v1")
        assert up.sandbox.calls(dispensary) == 2 * len(pages)
        assert up.sandbox.menu_fetches(dispensary) == 2


async def test_quirky_menus_match_hand_written_products() -> None:
    dispensary = QUIRKY[model.Vendor.WEEDMAPS]
    async with upstream() as up:
        source = dataclasses.replace(up.sources.resolve(dispensary), page_size=3)
        menu, pages = await up.menu(dispensary, source)
        assert len(pages) == 3
        assert menu.products == QUIRKY_DISCOVERY
        v1_source = dataclasses.replace(source, weedmaps_api=WeedmapsApi.V1)
        v1, v1_pages = await up.menu(dispensary, v1_source)
    assert len(v1_pages) == 1
    assert v1.products == QUIRKY_JSONAPI
    assert v1.name == "Quirky Buds Emporium"
    mixed = weedmaps.ADAPTER.parse_pages(dispensary, [*v1_pages, *pages], 1)
    assert {p.source_id for p in mixed.products} == {
        p.source_id for p in (*QUIRKY_DISCOVERY, *QUIRKY_JSONAPI)
    }, "pages of both envelopes parse together"


async def test_unknown_listing_is_a_404() -> None:
    async with upstream() as up:
        with pytest.raises(HttpStatusError) as caught:
            await up.menu("weedmaps:no-such-store-anywhere")
    assert caught.value.status == 404


def test_broken_pages_raise_adapter_parse_errors() -> None:
    for page in (b"{", b'{"data": {"items": []}}', b'{"meta": {}}', b'"menu"'):
        with pytest.raises(AdapterParseError):
            weedmaps.ADAPTER.parse_pages("weedmaps:ultra-health-gallup", [page], 1)
