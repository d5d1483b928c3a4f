"""The Dutchie adapter over real HTTP against the sandbox: small, 2,500-item and quirky menus,
persisted-query refusals, errors in HTTP 200, empty pages, broken pages."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.sandbox.support import check_generated, upstream
from whnode.errors import WhnodeError
from whnode.record import model
from whnode.sandbox import LARGE, QUIRKY, SMALL, FaultKind, FaultRule, PageSelector
from whnode.upstream.adapters import AdapterParseError, AdapterRefusal, dutchie
from whnode.upstream.exceptions import UnknownDispensary, UpstreamRefused

G = model.QuantityUnit.GRAMS
MG = model.QuantityUnit.MILLIGRAMS
UNIT = model.QuantityUnit.UNITS
PCT = model.PotencyUnit.PERCENT
IMAGES = "https://images.sandbox.whnode.test/q/"

QUIRKY_EXPECTED = (
    model.Product(
        "6a10000000000000000000a8",
        "Blue Dream",
        model.Category.FLOWER,
        (model.PriceOption(model.Quantity(1.0, G), 1000),),
        lineage=model.Lineage.HYBRID,
    ),
    model.Product(
        "6a10000000000000000000a9",
        "Blue Dream",
        model.Category.FLOWER,
        (model.PriceOption(model.Quantity(3.5, G), 3200),),
        lineage=model.Lineage.HYBRID,
    ),
    model.Product(
        "6a10000000000000000000a3",
        "Cosmic Gummies 100mg",
        model.Category.EDIBLE,
        (model.PriceOption(model.Quantity(100.0, MG), 2000),),
        brand="Mama J's",
        thc=model.Potency(100.0, 100.0, model.PotencyUnit.MILLIGRAMS),
        description="Fruity & vegan.\n10 pieces\n10mg each",
    ),
    model.Product(
        "6a10000000000000000000a5",
        "Glass Spoon Pipe",
        model.Category.ACCESSORY,
        (model.PriceOption(model.Quantity(1.0, UNIT), 1500, None, 4),),
    ),
    model.Product(
        "6a10000000000000000000a2",
        "Golden Haze",
        model.Category.FLOWER,
        (
            model.PriceOption(model.Quantity(1.0, G), 1300, None, 12),
            model.PriceOption(model.Quantity(3.5, G), 3550),
            model.PriceOption(model.Quantity(7.0, G), 6000, None, 3),
            model.PriceOption(model.Quantity(28.3, G), 19999),
        ),
        brand="Mama J's",
        lineage=model.Lineage.SATIVA_HYBRID,
        thc=model.Potency(24.5, 24.5, PCT),
        image_url=IMAGES + "dutchie-a2.jpg",
    ),
    model.Product(
        "6a10000000000000000000a4",
        "Lime Seltzer 10mg",
        model.Category.BEVERAGE,
        (model.PriceOption(model.Quantity(10.0, MG), 650),),
        thc=model.Potency(10.0, 10.0, model.PotencyUnit.MILLIGRAMS),
    ),
    model.Product(
        "6a10000000000000000000a1",
        "Mama J's: Alien Rock Candy - PR 2pk",
        model.Category.PRE_ROLL,
        (model.PriceOption(model.Quantity(2.0, G), 800, 400, 25),),
        brand="Mama J's",
        lineage=model.Lineage.INDICA,
        thc=model.Potency(21.0, 22.0, PCT),
        cbd=model.Potency(0.04, 0.05, PCT),
        image_url=IMAGES + "dutchie-a1.jpg",
    ),
    model.Product(
        "6a10000000000000000000a7",
        "Midnight Kush",
        model.Category.FLOWER,
        (model.PriceOption(model.Quantity(7.0, G), 7000),),
        brand="Mama J's",
        lineage=model.Lineage.HIGH_CBD,
        thc=model.Potency(19.5, 19.5, PCT),
    ),
    model.Product(
        "6a10000000000000000000a6",
        "Sour Diesel Live Resin",
        model.Category.CONCENTRATE,
        (
            model.PriceOption(model.Quantity(0.5, G), 3000, 2500, 0),
            model.PriceOption(model.Quantity(1.0, G), 5500, None, 0),
        ),
        brand="Sunrise Extracts",
        lineage=model.Lineage.INDICA_HYBRID,
        thc=model.Potency(780.0, 810.0, model.PotencyUnit.MILLIGRAMS_PER_GRAM),
    ),
)
"""Written by hand from the quirky products in whnode/sandbox/vendors/dutchie.py: name
clean-up, brand case, positional prices, specials only when flagged, stock matched by option
string, sentinels dropped, the newest duplicate kept, the id-less and unpriced items gone."""


async def test_small_menu_over_http() -> None:
    dispensary = SMALL[model.Vendor.DUTCHIE]
    async with upstream() as up:
        menu, pages = await up.menu(dispensary, fetched_at_ms=1_700_000_000_000)
        check_generated(menu, up.sandbox.items(dispensary), "dutchie")
        assert menu.vendor is model.Vendor.DUTCHIE
        assert menu.fetched_at_ms == 1_700_000_000_000
        assert menu.name == dispensary.partition(":")[2]
        assert len(pages) == 2  # ~50 items, 50 per page
        assert up.sandbox.calls(dispensary) == len(pages)
        assert up.sandbox.menu_fetches(dispensary) == 1
        method, url, params, _ = up.http.requests[0]
        assert (method, url) == ("GET", up.sandbox.base_url + "/graphql")
        assert params is not None
        assert params["operationName"] == "FilteredProducts"
        variables = json.loads(params["variables"])
        assert variables["productsFilter"]["dispensaryId"] == dispensary.partition(":")[2]
        assert (variables["page"], variables["perPage"]) == (0, 50)
        extensions = json.loads(params["extensions"])
        assert extensions["persistedQuery"]["sha256Hash"] == up.sandbox.config.dutchie_query_hash


async def test_large_menu_of_many_overlapping_pages() -> None:
    dispensary = LARGE[model.Vendor.DUTCHIE]
    async with upstream() as up:
        menu, pages = await up.menu(dispensary)
        served = json.loads(pages[0])["data"]["filteredProducts"]["queryInfo"]["totalCount"]
        assert served > 2500, "the sandbox repeats items across pages"
        assert len(pages) == -(-served // 50) > 50
        assert len(menu.products) == 2500
        check_generated(menu, up.sandbox.items(dispensary), "dutchie")
        assert up.sandbox.calls(dispensary) == len(pages)


async def test_quirky_menu_matches_hand_written_products() -> None:
    dispensary = QUIRKY[model.Vendor.DUTCHIE]
    async with upstream() as up:
        source = dataclasses.replace(up.sources.resolve(dispensary), page_size=3)
        menu, pages = await up.menu(dispensary, source)
    assert len(pages) == 5
    assert menu.name == "6a0de1ec7ab1e5ca1ab1ec0d"
    assert menu.products == QUIRKY_EXPECTED
    again = dutchie.ADAPTER.parse_pages(dispensary, list(reversed(pages)), 1)
    assert again.products == QUIRKY_EXPECTED, "page order does not matter"


async def test_unknown_persisted_query_is_a_refusal() -> None:
    dispensary = SMALL[model.Vendor.DUTCHIE]
    async with upstream() as up:
        source = up.sources.resolve(dispensary).with_options(
            credentials={"persisted_query_hash": "0" * 64}
        )
        with pytest.raises(AdapterRefusal, match="persisted query") as caught:
            await up.menu(dispensary, source)
        assert up.sandbox.calls(dispensary) == 1, "a refusal is not paged through"
    assert isinstance(caught.value, UpstreamRefused)
    assert caught.value.dispensary_id == dispensary
    assert caught.value.source == "dutchie"


async def test_errors_in_a_200_are_refusals_in_fetch_and_parse() -> None:
    dispensary = SMALL[model.Vendor.DUTCHIE]
    async with upstream() as up:
        up.sandbox.set_faults(FaultRule(FaultKind.GRAPHQL_ERROR, dispensary_id=dispensary))
        with pytest.raises(AdapterRefusal, match="INTERNAL_SERVER_ERROR"):
            await up.menu(dispensary)
        body = await up.http.request(
            "GET",
            dutchie.endpoint(up.sources.resolve(dispensary)),
            source="dutchie",
            dispensary_id=dispensary,
            params=dutchie.request_params(
                up.sources.resolve(dispensary), dispensary.partition(":")[2], 0
            ),
            headers={"apollo-require-preflight": "true"},
        )
    with pytest.raises(AdapterRefusal):
        dutchie.ADAPTER.parse_pages(dispensary, [body], 1)


async def test_unknown_dispensary() -> None:
    async with upstream() as up:
        with pytest.raises(UnknownDispensary):
            await up.menu("dutchie:000000000000000000000000")


async def test_an_empty_page_is_asked_for_again() -> None:
    dispensary = SMALL[model.Vendor.DUTCHIE]
    async with upstream() as up:
        up.sandbox.set_faults(
            FaultRule(
                FaultKind.EMPTY_PAGE, dispensary_id=dispensary, pages=PageSelector.LATER, times=1
            )
        )
        menu, pages = await up.menu(dispensary)
        check_generated(menu, up.sandbox.items(dispensary), "dutchie")
        assert up.sandbox.calls(dispensary) == len(pages) + 1


def test_broken_pages_raise_adapter_parse_errors() -> None:
    broken = (
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"data": {}}',
        b'{"data": {"filteredProducts": {"products": 3}}}',
    )
    for page in broken:
        with pytest.raises(AdapterParseError) as caught:
            dutchie.ADAPTER.parse_pages("dutchie:67068790432055b33dc37888", [page], 1)
        assert isinstance(caught.value, ValueError)
        assert isinstance(caught.value, WhnodeError)


def test_a_page_of_junk_items_gives_an_empty_menu() -> None:
    junk = [1, None, "x", {"Name": "no id"}, {"_id": "a"}]
    page = json.dumps({"data": {"filteredProducts": {"products": junk}}}).encode()
    menu = dutchie.ADAPTER.parse_pages("dutchie:67068790432055b33dc37888", [page], 1)
    assert menu.products == ()
