"""The Jane (Algolia) adapter over real HTTP against the sandbox: small, 2,500-item and quirky
menus, Algolia credentials, ad records, broken pages."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.sandbox.support import HttpStatusError, check_generated, upstream
from whnode.record import model
from whnode.sandbox import LARGE, QUIRKY, SMALL, SandboxConfig
from whnode.upstream.adapters import AdapterParseError, jane

G = model.QuantityUnit.GRAMS
PCT = model.PotencyUnit.PERCENT

QUIRKY_EXPECTED = (
    model.Product(
        "900005",
        "Cold Brew Shot 10mg",
        model.Category.BEVERAGE,
        (model.PriceOption(model.Quantity(10.0, model.QuantityUnit.MILLIGRAMS), 700),),
    ),
    model.Product(
        "900002",
        "Electric Lotus Cartridge",
        model.Category.VAPE,
        (
            model.PriceOption(model.Quantity(0.5, G), 2500),
            model.PriceOption(model.Quantity(1.0, G), 4000, 3500),
        ),
        brand="Kind Harvest",
        lineage=model.Lineage.SATIVA,
        thc=model.Potency(88.1, 88.1, PCT),
    ),
    model.Product(
        "900010",
        "Glacier Express",
        model.Category.FLOWER,
        (
            model.PriceOption(model.Quantity(7.0, G), 8000),
            model.PriceOption(model.Quantity(14.0, G), 15000),
            model.PriceOption(model.Quantity(28.0, G), 24000, 19999),
        ),
        lineage=model.Lineage.SATIVA,
        thc=model.Potency(31.46, 31.46, PCT),
    ),
    model.Product(
        "900004",
        "Huckleberry Gummies 100mg",
        model.Category.EDIBLE,
        (model.PriceOption(model.Quantity(100.0, model.QuantityUnit.MILLIGRAMS), 1800),),
        lineage=model.Lineage.HYBRID,
        description="Vegan.\nMade with real fruit & no gelatin.",
    ),
    model.Product(
        "900001",
        "Kush Mints",
        model.Category.FLOWER,
        (
            model.PriceOption(model.Quantity(0.5, G), 1550),
            model.PriceOption(model.Quantity(3.5, G), 4500, 3600),
        ),
        brand="Kind Harvest",
        lineage=model.Lineage.INDICA,
        thc=model.Potency(22.5, 22.5, PCT),
        image_url="https://images.sandbox.whnode.test/q/jane-1.jpg",
    ),
    model.Product(
        "900008",
        "Mac & Cheese Badder",
        model.Category.CONCENTRATE,
        (model.PriceOption(model.Quantity(1.0, G), 5000),),
        brand="Sunrise Extracts",
        lineage=model.Lineage.HYBRID,
        thc=model.Potency(78.2, 78.2, PCT),
        description="Whipped to a smooth, creamy consistency.",
    ),
    model.Product(
        "900009",
        "Rolling Tray",
        model.Category.ACCESSORY,
        (model.PriceOption(model.Quantity(1.0, model.QuantityUnit.UNITS), 1200),),
    ),
    model.Product(
        "900006",
        "Sunset Minis 0.5g x 5",
        model.Category.PRE_ROLL,
        (model.PriceOption(model.Quantity(2.5, G), 3000),),
        brand="Kind Harvest",
        lineage=model.Lineage.HYBRID,
        thc=model.Potency(19.0, 19.0, PCT),
    ),
)
"""Written by hand from QUIRKY_HITS in whnode/sandbox/vendors/jane.py: ads unwrapped, another
store's ad skipped, weights spelled with spaces or underscores, string special prices, the 0
price dropped, "each" sized by the name, kind case and subtype, the duplicate hit merged."""


async def test_small_menu_over_http() -> None:
    dispensary = SMALL[model.Vendor.JANE]
    async with upstream() as up:
        menu, pages = await up.menu(dispensary)
        check_generated(menu, up.sandbox.items(dispensary), "jane")
        assert len(pages) == 1
        assert up.sandbox.calls(dispensary) == 1
        method, url, _, body = up.http.requests[0]
    assert (method, url) == (
        "POST",
        up.sandbox.base_url + "/1/indexes/menu-products-production/query",
    )
    assert body == {"query": "", "filters": "store_id : 2210", "page": 0, "hitsPerPage": 1000}
    assert menu.name == "2210"


async def test_large_menu_of_many_pages() -> None:
    dispensary = LARGE[model.Vendor.JANE]
    async with upstream() as up:
        menu, pages = await up.menu(dispensary)
        first = json.loads(pages[0])
        assert first["nbHits"] > 2500
        assert len(pages) == first["nbPages"] == 3
        check_generated(menu, up.sandbox.items(dispensary), "jane")
        smaller = dataclasses.replace(up.sources.resolve(dispensary), page_size=250)
        again, more_pages = await up.menu(dispensary, smaller)
    assert len(more_pages) == 11
    assert again.products == menu.products


async def test_quirky_menu_matches_hand_written_products() -> None:
    dispensary = QUIRKY[model.Vendor.JANE]
    async with upstream() as up:
        source = dataclasses.replace(up.sources.resolve(dispensary), page_size=4)
        menu, pages = await up.menu(dispensary, source)
    assert len(pages) == 3
    assert menu.products == QUIRKY_EXPECTED
    assert jane.ADAPTER.parse_pages(dispensary, pages[::-1], 1).products == QUIRKY_EXPECTED


async def test_algolia_credentials_are_sent_from_the_source() -> None:
    dispensary = SMALL[model.Vendor.JANE]
    config = SandboxConfig(jane_app_id="SANDBOXAPP", jane_api_key="search-only-key")
    async with upstream(config) as up:
        with pytest.raises(HttpStatusError) as refused:
            await up.menu(dispensary)
        assert refused.value.status == 403
        source = up.sources.resolve(dispensary).with_options(
            credentials={"algolia_app_id": "SANDBOXAPP", "algolia_api_key": "search-only-key"}
        )
        menu, _ = await up.menu(dispensary, source)
        check_generated(menu, up.sandbox.items(dispensary), "jane")
    assert "search-only-key" not in repr(source)
    assert "search-only-key" not in str(source.credentials)


def test_broken_pages_raise_adapter_parse_errors() -> None:
    for page in (b"", b"<html>blocked</html>", b"{}", b'{"hits": {}}', b"null"):
        with pytest.raises(AdapterParseError):
            jane.ADAPTER.parse_pages("jane:1547", [page], 1)


def test_hits_of_unexpected_shapes_are_skipped() -> None:
    hits = [None, 5, {"product_id": 1}, {"name": "x"}, {"product_id": True, "name": "y"}]
    page = json.dumps({"hits": hits, "nbPages": 1}).encode()
    assert jane.ADAPTER.parse_pages("jane:1547", [page], 1).products == ()
