"""The parse report: every item and option a parse leaves out is counted by reason, with
example ids; it travels signed inside the menu; a fill that loses more than 2% logs one
WARNING and is counted by vendor and reason; one that keeps under half the items fails."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence

import pytest

from whnode.api.metrics import FIGURES
from whnode.record.codec import decode_menu, encode_menu
from whnode.record.exceptions import DecodeError, ModelError
from whnode.record.model import DropCount, DropReason, ParseReport, Vendor
from whnode.sandbox import LARGE, QUIRKY, SMALL, SandboxConfig, run_sandbox
from whnode.upstream.adapters import ADAPTERS
from whnode.upstream.exceptions import UpstreamParseError
from whnode.upstream.fetcher import Fetcher
from whnode.upstream.http import UpstreamHttp, UpstreamHttpConfig
from whnode.upstream.pool import ParsePool
from whnode.upstream.sources import SourcesConfig

R = DropReason
OPEN = UpstreamHttpConfig(requests_per_second=10_000.0, burst=1_000)
MERGING = [ADAPTERS[v] for v in (Vendor.LEAFLY, Vendor.TREEZ, Vendor.FLOWHUB)]
"""Vendors that list each size as an item of its own."""


def discovery_page(items: Sequence[object]) -> bytes:
    return json.dumps(
        {"data": {"menu_items": items}, "meta": {"total_menu_items": len(items)}}
    ).encode()


def flower(identifier: object, name: object = "Blue Dream", **prices: object) -> dict[str, object]:
    return {"id": identifier, "name": name, "prices": prices or {"gram": [{"price": 10}]}}


EVERY_REASON = [
    flower(1),
    None,  # not an item
    flower(None),  # no id
    flower(3, "  "),  # no name
    flower(4, bundle={"price": 40}),  # no size
    flower(5, gram=[{"units": "1"}]),  # no price
    flower(6, gram=[{"units": "1", "price": 0}]),  # not offered
    flower(1),  # seen again
    flower(7, gram=[{"units": str(n), "price": 9} for n in range(1, 41)]),  # 40 sizes
    flower(
        8, gram=[{"units": "1", "price": 9}, {"units": "2", "price": 0}, {"units": "1", "price": 9}]
    ),
]


def test_every_reason_is_counted_with_examples() -> None:
    result = ADAPTERS[Vendor.WEEDMAPS].parse_with_report(
        "weedmaps:somewhere", [discovery_page(EVERY_REASON)], 1
    )
    report = result.report
    assert report is not None
    assert (report.items_seen, report.products_kept, report.options_kept) == (10, 3, 34)
    assert report.items_dropped == (
        DropCount(R.NOT_AN_ITEM, 1, ("page 1 #1",)),
        DropCount(R.NO_ID, 1, ("page 1 #2",)),
        DropCount(R.NO_NAME, 1, ("3",)),
        DropCount(R.NO_SIZE, 1, ("4",)),
        DropCount(R.NO_PRICE, 1, ("5",)),
        DropCount(R.SENTINEL, 1, ("6",)),
        DropCount(R.DUPLICATE, 1, ("1",)),
    )
    assert report.options_dropped == (
        DropCount(R.NO_SIZE, 1, ("4 bundle",)),
        DropCount(R.NO_PRICE, 1, ("5 gram",)),
        DropCount(R.SENTINEL, 2, ("6 gram", "8 gram")),
        DropCount(R.DUPLICATE, 1, ("8",)),
        DropCount(R.INVALID, 8, ("7",)),
    )
    assert (report.items_lost, report.options_lost) == (5, 10)
    assert report.items_kept == 5


@pytest.mark.parametrize("vendor", list(ADAPTERS))
async def test_generated_menus_drop_nothing_but_duplicates(vendor: Vendor) -> None:
    async with run_sandbox(SandboxConfig(change_rate=0.0)) as sandbox:
        sources = SourcesConfig.pointing_at(sandbox.base_url, sandbox.credentials())
        source = sources.resolve(SMALL[vendor])
        async with UpstreamHttp(OPEN) as http:
            pages = await ADAPTERS[vendor].fetch_pages(http, source, LARGE[vendor])
        items = sandbox.items(LARGE[vendor])
    report = ADAPTERS[vendor].parse_with_report(LARGE[vendor], pages, 1).report
    assert report is not None
    assert report.products_kept == len(items)
    assert report.options_kept == sum(len(item.options) for item in items)
    assert (report.items_lost, report.options_lost) == (0, 0), report
    assert [d.reason for d in report.items_dropped] == [R.DUPLICATE], "pages overlap"
    assert report.items_dropped[0].count == report.items_seen - report.products_kept - sum(
        len(item.options) - 1 for item in items if ADAPTERS[vendor] in MERGING
    )


def test_the_report_travels_signed_inside_the_menu_and_decodes_strictly() -> None:
    result = ADAPTERS[Vendor.WEEDMAPS].parse_with_report(
        "weedmaps:somewhere", [discovery_page(EVERY_REASON)], 1
    )
    from whnode.upstream.pool import package_menu

    parsed = package_menu(result.menu, result.report)
    decoded = decode_menu(parsed.payload)
    assert decoded.statistics is not None
    assert decoded.statistics.parse_report == result.report
    assert parsed.statistics.parse_report == result.report
    plain_menu = dataclasses.replace(
        decoded, statistics=dataclasses.replace(decoded.statistics, parse_report=None)
    )
    assert decode_menu(encode_menu(plain_menu)).statistics == plain_menu.statistics
    with pytest.raises(ModelError):
        DropCount(R.NO_SIZE, 1, ("a", "b", "c", "d"))
    with pytest.raises(ModelError):
        DropCount(R.NO_SIZE, 0)
    with pytest.raises(ModelError):
        ParseReport(3, 1, 1, (DropCount(R.NO_SIZE, 1), DropCount(R.NO_SIZE, 2)))
    raw = encode_menu(decoded).replace(b"no_size", b"no_siz!")
    with pytest.raises((DecodeError, ModelError)):
        decode_menu(raw)


async def test_a_lossy_fill_warns_once_and_is_counted_by_vendor_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispensary = QUIRKY[Vendor.WEEDMAPS]
    async with (
        run_sandbox(SandboxConfig(change_rate=0.0)) as sandbox,
        ParsePool(1, max_tasks_per_child=None) as pool,
        UpstreamHttp(OPEN) as http,
    ):
        fetcher = Fetcher(SourcesConfig.pointing_at(sandbox.base_url), http, pool)
        with caplog.at_level(logging.WARNING, logger="whnode.upstream.fetcher"):
            parsed = await fetcher.fetch(dispensary, int(time.time() * 1000))
            await fetcher.fetch(SMALL[Vendor.WEEDMAPS], int(time.time() * 1000))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one WARNING for the lossy fill, none for the clean one"
    message = warnings[0].getMessage()
    assert dispensary in message
    assert "no_name 1 (e.g. 70000007)" in message
    assert "no_size 1 (e.g. 70000008)" in message
    report = parsed.statistics.parse_report
    assert report is not None
    assert report.items_seen == 8
    statistics = fetcher.statistics()
    assert statistics.items_dropped_by_vendor == {
        "weedmaps": {"duplicate": 1, "no_name": 1, "no_size": 1}
    }
    assert statistics.options_dropped_by_vendor == {"weedmaps": {"no_size": 1, "sentinel": 1}}
    figure = next(f for f in FIGURES if f.field == "items_dropped_by_vendor")
    assert figure.name == "whnode_fetcher_items_dropped_total"
    assert figure.labels == ("vendor", "reason")


async def test_a_parse_keeping_under_half_the_items_is_a_parse_error() -> None:
    lossy = [flower(n, bundle={"price": 40}) for n in range(1, 7)] + [flower(n) for n in (7, 8)]
    async with ParsePool(1, max_tasks_per_child=None) as pool:
        with pytest.raises(UpstreamParseError) as caught:
            await pool.parse(Vendor.WEEDMAPS, "weedmaps:somewhere", [discovery_page(lossy)], 1)
        half = lossy[2:]  # 4 of 6 items without a size: kept 2 of 6 still fails; 4 of 6 does not
        kept = [flower(n) for n in (9, 10)] + half
        parsed = await pool.parse(Vendor.WEEDMAPS, "weedmaps:somewhere", [discovery_page(kept)], 1)
    assert "kept 2 of the 8 items" in str(caught.value)
    assert "no_size 6 (e.g. 1, 2, 3)" in str(caught.value)
    assert caught.value.source == "weedmaps"
    assert parsed.product_count == 4


def test_the_stats_document_and_the_cli_summary_show_the_report() -> None:
    from whnode.api.render import statistics_document
    from whnode.cli.get import MenuResult, _menu_summary
    from whnode.record.keys import SigningKey
    from whnode.record.signed import sign_menu
    from whnode.upstream.pool import package_menu

    result = ADAPTERS[Vendor.WEEDMAPS].parse_with_report(
        "weedmaps:somewhere", [discovery_page(EVERY_REASON)], 1
    )
    menu = decode_menu(package_menu(result.menu, result.report).payload)
    record = sign_menu(menu, SigningKey.generate())
    shown = statistics_document(menu, record)["statistics"]["parse_report"]
    assert shown["items_seen"] == 10
    assert shown["items_lost"] == 5
    assert shown["items_dropped"][3] == {"reason": "no_size", "count": 1, "examples": ["4"]}
    summary = _menu_summary(MenuResult(menu=menu, record=record), now_ms=2)
    assert "parsed      10 items seen, 3 products and 34 sizes kept; 5 items and 10 sizes lost" in (
        summary
    )
    assert "  dropped items no_size           1  e.g. 4" in summary
