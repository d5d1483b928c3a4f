"""The Leafly adapter over real HTTP against the sandbox: small, 2,500-item and quirky menus,
``take``/``skip`` paging, envelope drift, and the node's own HTTP client riding out 429s."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.sandbox.support import check_generated, upstream
from whnode.record import model
from whnode.sandbox import LARGE, QUIRKY, SMALL, SandboxConfig
from whnode.upstream.adapters import ADAPTERS, AdapterParseError, leafly
from whnode.upstream.http import UpstreamHttp, UpstreamHttpConfig

G = model.QuantityUnit.GRAMS
MG = model.QuantityUnit.MILLIGRAMS
UNIT = model.QuantityUnit.UNITS

QUIRKY_EXPECTED = (
    model.Product(
        "501",
        "Blue Dream",
        model.Category.FLOWER,
        (
            model.PriceOption(model.Quantity(1.0, G), 1200, None, 10),
            model.PriceOption(model.Quantity(3.5, G), 3500),
            model.PriceOption(model.Quantity(28.0, G), 30000, None, 5),
        ),
        brand="Terra Bloom",
        lineage=model.Lineage.HYBRID,
        thc=model.Potency(22.0, 22.0, model.PotencyUnit.PERCENT),
        image_url="https://images.sandbox.whnode.test/q/leafly-501.jpg",
        description='Classic "sativa-leaning" hybrid.',
    ),
    model.Product(
        "506",
        "Cherry Runtz Live Rosin",
        model.Category.CONCENTRATE,
        (model.PriceOption(model.Quantity(1.0, G), 4550),),
        brand="Lucky Duck",
        lineage=model.Lineage.INDICA_HYBRID,
        thc=model.Potency(750.0, 800.0, model.PotencyUnit.MILLIGRAMS_PER_GRAM),
    ),
    model.Product(
        "504",
        "Grow Tent Kit",
        model.Category.ACCESSORY,
        (model.PriceOption(model.Quantity(1.0, UNIT), 120000),),
    ),
    model.Product(
        "509",
        "Lemon Tincture",
        model.Category.TINCTURE,
        (model.PriceOption(model.Quantity(1.0, UNIT), 4000),),
        cbd=model.Potency(500.0, 500.0, model.PotencyUnit.MILLIGRAMS),
    ),
    model.Product(
        "505",
        "Midnight Sundae Gummies 100mg",
        model.Category.EDIBLE,
        (model.PriceOption(model.Quantity(100.0, MG), 2200),),
        brand="Lucky Duck",
        thc=model.Potency(100.0, 100.0, model.PotencyUnit.MILLIGRAMS),
    ),
    model.Product(
        "507",
        "Sativa Sampler Pre-Rolls 0.5g x 5",
        model.Category.PRE_ROLL,
        (model.PriceOption(model.Quantity(2.5, G), 3000),),
        lineage=model.Lineage.SATIVA,
    ),
)
"""Written by hand from QUIRKY_ITEMS in whnode/sandbox/vendors/leafly.py: three items of one
flower merged into one product with three sizes (names and brands differing in spacing and
case), "$1,200.00", integer cents, sentinel quantities (0, 9999999) and stock (9999999), mg/g
ranges as strings, a pack size from the name, the duplicate and the nameless item dropped,
``data`` and ``menuItems`` envelopes."""


async def test_small_menu_over_http() -> None:
    dispensary = SMALL[model.Vendor.LEAFLY]
    async with upstream() as up:
        menu, pages = await up.menu(dispensary)
        check_generated(menu, up.sandbox.items(dispensary), "leafly")
        total = json.loads(pages[0])["metadata"]["totalCount"]
        assert total > len(menu.products), "one item per size"
        assert len(pages) == -(-total // 50)
        skips = [params["skip"] for _, _, params, _ in up.http.requests if params]
        takes = {params["take"] for _, _, params, _ in up.http.requests if params}
    assert takes == {"50"}
    assert sorted(skips, key=int) == [str(50 * n) for n in range(len(pages))]


async def test_large_menu_of_many_pages() -> None:
    dispensary = LARGE[model.Vendor.LEAFLY]
    async with upstream() as up:
        source = dataclasses.replace(up.sources.resolve(dispensary), page_size=500)
        assert source.effective_page_size == 50, "take above 50 is refused upstream"
        menu, pages = await up.menu(dispensary, source)
        assert len(pages) > 50
        check_generated(menu, up.sandbox.items(dispensary), "leafly")
        assert up.sandbox.calls(dispensary) == len(pages)


async def test_quirky_menu_matches_hand_written_products() -> None:
    dispensary = QUIRKY[model.Vendor.LEAFLY]
    async with upstream() as up:
        source = dataclasses.replace(up.sources.resolve(dispensary), page_size=4)
        menu, pages = await up.menu(dispensary, source)
    assert len(pages) == 3
    assert "menuItems" in json.loads(pages[1])
    assert menu.products == QUIRKY_EXPECTED
    assert leafly.ADAPTER.parse_pages(dispensary, pages[::-1], 1).products == QUIRKY_EXPECTED


async def test_the_node_http_client_rides_out_rate_limits() -> None:
    """With the real ``UpstreamHttp``: the sandbox answers 429 with Retry-After past its
    per-client burst; the client waits as told and the menu still arrives whole."""
    dispensary = SMALL[model.Vendor.LEAFLY]
    async with upstream(SandboxConfig(rate=2.0, burst=1)) as up:
        source = up.sources.resolve(dispensary)
        http = UpstreamHttp(
            UpstreamHttpConfig(requests_per_second=100.0, burst=10, request_timeout=5.0)
        )
        try:
            pages = await ADAPTERS[model.Vendor.LEAFLY].fetch_pages(http, source, dispensary)
        finally:
            await http.aclose()
        menu = leafly.ADAPTER.parse_pages(dispensary, pages, 1)
        check_generated(menu, up.sandbox.items(dispensary), "leafly")
        stats = up.sandbox.stats()
    assert stats.rate_limited >= 1
    assert stats.by_dispensary[dispensary].requests == len(pages) + stats.rate_limited


def test_broken_pages_raise_adapter_parse_errors() -> None:
    for page in (b"{]", b'{"items": []}', b'{"data": {}}', b"1"):
        with pytest.raises(AdapterParseError):
            leafly.ADAPTER.parse_pages("leafly:odd-lot-dispensary", [page], 1)
