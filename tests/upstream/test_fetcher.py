"""Whole-menu fetches: a paging adapter over a real aiohttp server, parsed in a real pool.

The adapter and the parser here are the test's own (the vendor adapters have their own
tests); what is under test is the fetcher, the client and the pool working together, and
that every kind of bad answer ends as a clear error while the pool keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from whnode.record import model
from whnode.sandbox import (
    REALISTIC,
    SMALL,
    TINY,
    FaultKind,
    FaultRule,
    PageSelector,
    SandboxConfig,
    SandboxServer,
    run_sandbox,
)
from whnode.upstream.breaker import BreakerState
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamBadResponse,
    UpstreamCircuitOpen,
    UpstreamParseError,
    UpstreamRefused,
    UpstreamTimeout,
)
from whnode.upstream.fetcher import Fetcher, PageSource
from whnode.upstream.http import UpstreamHttp, UpstreamHttpConfig
from whnode.upstream.pool import ParsedMenu, ParsePool, run_parser
from whnode.upstream.sources import SourcesConfig

NOW_MS = 1_760_000_000_000


# --------------------------------------------------------------------------- the test vendor
def parse_test_pages(dispensary_id: str, pages: list[bytes], fetched_at_ms: int) -> model.Menu:
    """Pages of ``{"store": name, "total_pages": n, "items": [...]}``."""
    products: list[model.Product] = []
    name = "?"
    for page in pages:
        document = json.loads(page)
        name = document["store"]
        for item in document["items"]:
            if item.get("poison"):
                os.kill(os.getpid(), signal.SIGKILL)
            products.append(
                model.Product(
                    source_id=str(item["id"]),
                    name=item["name"],
                    category=model.Category(item["category"]),
                    price_options=(
                        model.PriceOption(
                            model.Quantity(item["grams"], model.QuantityUnit.GRAMS), item["cents"]
                        ),
                    ),
                    thc=model.Potency(item["thc"], item["thc"], model.PotencyUnit.PERCENT),
                )
            )
    return model.Menu(
        dispensary_id=model.parse_dispensary_id(dispensary_id),
        name=name,
        vendor=model.Vendor.LEAFLY,
        fetched_at_ms=fetched_at_ms,
        products=tuple(products),
    )


def parse_test_job(
    vendor: str, dispensary_id: str, pages: list[bytes], fetched_at_ms: int
) -> ParsedMenu:
    return run_parser(parse_test_pages, vendor, dispensary_id, pages, fetched_at_ms)


@dataclass(frozen=True)
class StoreSource:
    vendor: str
    base_url: str
    credentials: dict[str, str] = field(default_factory=dict)


class Sources:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def resolve(self, dispensary_id: str) -> StoreSource | None:
        if not dispensary_id.startswith("leafly:"):
            return None
        return StoreSource("leafly", self.base_url, {"key": "SECRET"})


class PagingAdapter:
    """Reads page 0 for the page count, then the other pages concurrently."""

    async def fetch_pages(self, http: Any, source: Any, dispensary_id: str) -> list[bytes]:
        store = dispensary_id.partition(":")[2]
        url = f"{source.base_url}/menu/{store}"

        async def page(number: int) -> bytes:
            body: bytes = await http.request(
                "GET",
                url,
                source=source,
                dispensary_id=dispensary_id,
                params={"page": str(number)},
                headers={"x-api-key": source.credentials["key"]},
            )
            return body

        first = await page(0)
        total = json.loads(first)["total_pages"]
        rest = await asyncio.gather(*(page(number) for number in range(1, total)))
        return [first, *rest]


ADAPTERS: dict[model.Vendor, PageSource] = {model.Vendor.LEAFLY: PagingAdapter()}


# --------------------------------------------------------------------------- the test upstream
def items(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": n,
            "name": f"Product {n}",
            "category": ["flower", "vape", "edible"][n % 3],
            "grams": 3.5,
            "cents": 1000 + n,
            "thc": float(n % 30),
        }
        for n in range(start, start + count)
    ]


def menu_pages(store: str, pages: int, per_page: int) -> list[bytes | str]:
    return [
        json.dumps(
            {
                "store": store,
                "total_pages": pages,
                "items": items(page * per_page, per_page),
            }
        ).encode()
        for page in range(pages)
    ]


class MenuServer:
    """``/menu/{store}?page=N`` from ``catalog``; a str entry names a misbehaviour."""

    def __init__(self) -> None:
        self.catalog: dict[str, list[bytes | str]] = {}
        self.url = ""
        self.hits = 0
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        pages = self.catalog.get(request.match_info["store"])
        if pages is None:
            return web.Response(status=404, text="no such store")
        if self.delay:
            await asyncio.sleep(self.delay)
        entry = pages[int(request.query["page"])]
        if entry == "html":
            return web.Response(text="<html>Access denied</html>", content_type="text/html")
        if entry == "truncated":
            response = web.StreamResponse(
                headers={"Content-Type": "application/json", "Content-Length": "5000"}
            )
            await response.prepare(request)
            await response.write(b'{"store": "x", "items": [')
            assert request.transport is not None
            request.transport.close()
            return response
        assert isinstance(entry, bytes)
        return web.Response(body=entry, content_type="application/json")


@pytest.fixture
async def server() -> AsyncIterator[MenuServer]:
    menus = MenuServer()
    app = web.Application()
    app.router.add_get("/menu/{store}", menus.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    menus.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield menus
    await runner.cleanup()


@pytest.fixture
async def pool() -> AsyncIterator[ParsePool]:
    async with ParsePool(workers=2, queue_depth=8, parse_job=parse_test_job) as parse_pool:
        yield parse_pool


@pytest.fixture
async def http() -> AsyncIterator[UpstreamHttp]:
    config = UpstreamHttpConfig(
        requests_per_second=500.0, burst=50, max_retries=1, backoff_base=0.01
    )
    async with UpstreamHttp(config) as client:
        yield client


def fetcher(
    server: MenuServer, http: UpstreamHttp, pool: ParsePool, deadline: float = 10.0
) -> Fetcher:
    return Fetcher(Sources(server.url), http, pool, menu_deadline=deadline, adapters=ADAPTERS)


# --------------------------------------------------------------------------- tests
async def test_fetches_every_page_and_parses_in_the_pool(
    server: MenuServer, http: UpstreamHttp, pool: ParsePool
) -> None:
    server.catalog["green-leaf"] = menu_pages("Green Leaf", pages=5, per_page=40)
    parsed = await fetcher(server, http, pool).fetch("leafly:green-leaf", NOW_MS)
    assert (parsed.dispensary_id, parsed.vendor, parsed.menu_name) == (
        "leafly:green-leaf",
        model.Vendor.LEAFLY,
        "Green Leaf",
    )
    assert (parsed.product_count, parsed.fetched_at_ms) == (200, NOW_MS)
    assert len(parsed.content_hash) == 32
    assert parsed.payload
    counts = {item.category: item.product_count for item in parsed.statistics.categories}
    assert counts == {model.Category.FLOWER: 67, model.Category.VAPE: 67, model.Category.EDIBLE: 66}
    assert server.hits == 5
    assert http.statistics().hosts[0].peak_in_flight > 1  # pages were fetched concurrently

    from whnode.record import codec

    menu = codec.decode_menu(parsed.payload)
    assert len(menu.products) == 200
    assert menu.statistics == parsed.statistics
    # An unchanged menu fetched later has the same content hash.
    again = await fetcher(server, http, pool).fetch("leafly:green-leaf", NOW_MS + 60_000)
    assert again.content_hash == parsed.content_hash


@pytest.mark.parametrize(
    ("bad_page", "error", "message"),
    [
        (b'{"store": "x", "total_pages": 3, "items": [{"id": 1,', UpstreamParseError, "JSON"),
        ("html", UpstreamRefused, "HTML"),
        ("truncated", UpstreamBadResponse, "cut short"),
        (b'{"store": "x", "total_pages": 3, "items": [{"id": 7}]}', UpstreamParseError, "name"),
    ],
    ids=["malformed-json", "html-block-page", "truncated-body", "missing-field"],
)
async def test_a_bad_page_is_a_clear_error_and_the_pool_keeps_serving(
    server: MenuServer,
    http: UpstreamHttp,
    pool: ParsePool,
    bad_page: bytes | str,
    error: type[Exception],
    message: str,
) -> None:
    pages = menu_pages("Bad Page", pages=3, per_page=10)
    pages[2] = bad_page
    server.catalog["bad"] = pages
    server.catalog["good"] = menu_pages("Good", pages=2, per_page=10)
    fetch = fetcher(server, http, pool)
    with pytest.raises(error, match=message) as caught:
        await fetch.fetch("leafly:bad", NOW_MS)
    assert getattr(caught.value, "source", None) == "leafly"
    assert getattr(caught.value, "dispensary_id", None) == "leafly:bad"
    assert (await fetch.fetch("leafly:good", NOW_MS)).product_count == 20
    assert fetch.statistics().failures == 1


async def test_empty_pages_are_not_an_empty_menu(
    server: MenuServer, http: UpstreamHttp, pool: ParsePool
) -> None:
    server.catalog["empty"] = [
        json.dumps({"store": "E", "total_pages": 2, "items": []}).encode()
    ] * 2
    with pytest.raises(UpstreamParseError, match="no products"):
        await fetcher(server, http, pool).fetch("leafly:empty", NOW_MS)


async def test_a_page_that_kills_the_worker_fails_that_menu_only(
    server: MenuServer, http: UpstreamHttp, pool: ParsePool
) -> None:
    poisoned = menu_pages("Poison", pages=2, per_page=5)
    document = json.loads(poisoned[1])
    document["items"][0]["poison"] = True
    poisoned[1] = json.dumps(document).encode()
    server.catalog["poison"] = poisoned
    for n in range(6):
        server.catalog[f"store-{n}"] = menu_pages(f"Store {n}", pages=2, per_page=20)
    fetch = fetcher(server, http, pool)
    results = await asyncio.gather(
        fetch.fetch("leafly:poison", NOW_MS),
        *(fetch.fetch(f"leafly:store-{n}", NOW_MS) for n in range(6)),
        return_exceptions=True,
    )
    assert isinstance(results[0], UpstreamParseError)
    assert "worker process died" in str(results[0])
    assert [getattr(result, "product_count", None) for result in results[1:]] == [40] * 6
    assert pool.statistics().worker_killers == 1


async def test_unknown_dispensaries(
    server: MenuServer, http: UpstreamHttp, pool: ParsePool
) -> None:
    fetch = fetcher(server, http, pool)
    with pytest.raises(UnknownDispensary, match="no source"):
        await fetch.fetch("dutchie:not-configured", NOW_MS)
    assert server.hits == 0
    with pytest.raises(UnknownDispensary, match="404") as caught:
        await fetch.fetch("leafly:never-heard-of-it", NOW_MS)
    assert caught.value.status == 404


async def test_the_menu_deadline_bounds_the_whole_fetch(
    server: MenuServer, http: UpstreamHttp, pool: ParsePool
) -> None:
    server.catalog["slow"] = menu_pages("Slow", pages=3, per_page=5)
    server.delay = 5.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout, match="deadline"):
        await fetcher(server, http, pool, deadline=0.4).fetch("leafly:slow", NOW_MS)
    assert loop.time() - started < 0.8


async def test_a_page_that_cannot_be_paged_is_a_parse_error(
    server: MenuServer, http: UpstreamHttp, pool: ParsePool
) -> None:
    server.catalog["odd"] = [b'{"store": "Odd", "pages": 3, "items": []}']
    server.catalog["broken"] = [b'{"store": "Broken", "total_pa']
    fetch = fetcher(server, http, pool)
    with pytest.raises(UpstreamParseError, match="KeyError") as caught:
        await fetch.fetch("leafly:odd", NOW_MS)
    assert caught.value.dispensary_id == "leafly:odd"
    with pytest.raises(UpstreamParseError, match="JSONDecodeError"):
        await fetch.fetch("leafly:broken", NOW_MS)


# --------------------------------------------------------------------------- against the sandbox
PUBLIC_VENDORS = (
    model.Vendor.WEEDMAPS,
    model.Vendor.DUTCHIE,
    model.Vendor.JANE,
    model.Vendor.LEAFLY,
)
"""The menus the pacing test fetches (eight: the keyed POS menus are left out)."""


@asynccontextmanager
async def sandbox_fetcher(
    sandbox_config: SandboxConfig,
    client: UpstreamHttpConfig,
    credentials: dict[model.Vendor, dict[str, str]] | None = None,
    *,
    breaker_clock: Callable[[], float] | None = None,
) -> AsyncIterator[tuple[SandboxServer, UpstreamHttp, Fetcher]]:
    """The sandbox, a client with ``client`` settings, and a fetcher with the real adapters."""
    async with (
        run_sandbox(sandbox_config) as sandbox,
        UpstreamHttp(client, breaker_clock=breaker_clock) as http,
        ParsePool(workers=2, queue_depth=8) as parse_pool,
    ):
        keys = {**sandbox.credentials(), **(credentials or {})}
        sources = SourcesConfig.pointing_at(sandbox.base_url, keys)
        yield sandbox, http, Fetcher(sources, http, parse_pool, menu_deadline=30.0)


async def test_sandbox_counters_show_the_pace_is_kept() -> None:
    """The sandbox allows 20 requests/s (burst 5) per client; paced at 15/s (burst 4), eight
    menus fetched at once are never refused, and take the time the pace says."""
    client = UpstreamHttpConfig(requests_per_second=15.0, burst=4, concurrency_per_host=8)
    async with sandbox_fetcher(SandboxConfig(), client) as (sandbox, http, fetch):
        wanted = [menus[v] for menus in (SMALL, REALISTIC) for v in PUBLIC_VENDORS]
        # Warm the sandbox's menu caches first: building a menu blocks the loop the sandbox
        # shares with the client here, and requests queued meanwhile would reach its rate
        # limiter at one instant however well they were paced.
        await asyncio.gather(*(fetch.fetch(d, NOW_MS) for d in wanted))
        sandbox.set_rate(20.0, burst=5)
        sandbox.reset_stats()
        before = http.statistics().requests
        await asyncio.sleep(0.3)  # let the client's own bucket refill to its burst
        started = time.monotonic()
        menus = await asyncio.gather(*(fetch.fetch(d, NOW_MS) for d in wanted))
        elapsed = time.monotonic() - started
        assert all(menu.product_count > 40 for menu in menus)
        stats = sandbox.stats()
        assert stats.rate_limited == 0
        assert stats.requests == http.statistics().requests - before > 12
        assert elapsed >= (stats.requests - 4) / 15.0 - 0.05


async def test_sandbox_429_retry_after_is_honoured() -> None:
    """One request at a time against 4 requests/s (burst 2): each 429 says Retry-After: 1, the
    client waits it out and the next request passes. A client that ignored it would exhaust
    its retries against the empty bucket."""
    client = UpstreamHttpConfig(
        requests_per_second=1000.0,
        burst=100,
        concurrency_per_host=1,
        max_retries=2,
        backoff_base=0.01,
        backoff_max=0.02,
    )
    async with sandbox_fetcher(SandboxConfig(rate=4.0, burst=2), client) as (sandbox, http, fetch):
        started = time.monotonic()
        menu = await fetch.fetch(REALISTIC[model.Vendor.LEAFLY], NOW_MS)
        elapsed = time.monotonic() - started
        assert menu.product_count > 200
        stats, ours = sandbox.stats(), http.statistics()
        assert stats.rate_limited == ours.rate_limited >= 1
        assert ours.retries == ours.rate_limited  # each 429 was followed by one success
        assert stats.requests == ours.requests == ours.ok + ours.rate_limited
        assert elapsed >= ours.rate_limited * 1.0


async def test_sandbox_breaker_opens_and_recovers() -> None:
    client = UpstreamHttpConfig(
        requests_per_second=500.0, burst=50, max_retries=0, breaker_failures=3, breaker_cooldown=30
    )
    now = [1000.0]  # the breakers' clock, moved by hand
    async with sandbox_fetcher(SandboxConfig(), client, breaker_clock=lambda: now[0]) as (
        sandbox,
        http,
        fetch,
    ):
        dispensary = SMALL[model.Vendor.WEEDMAPS]
        sandbox.fail(dispensary, FaultKind.SERVER_ERROR)
        for _ in range(3):
            with pytest.raises(UpstreamBadResponse):
                await fetch.fetch(dispensary, NOW_MS)
        assert sandbox.calls(dispensary) == 3
        with pytest.raises(UpstreamCircuitOpen):
            await fetch.fetch(dispensary, NOW_MS)
        with pytest.raises(UpstreamCircuitOpen):
            await fetch.fetch(SMALL[model.Vendor.JANE], NOW_MS)  # same host: same breaker
        assert sandbox.calls(dispensary) == 3  # nothing sent while open
        assert sandbox.stats().requests == 3
        sandbox.heal(dispensary)
        now[0] += 30.0  # the cooldown is over: the next call is the probe
        menu = await fetch.fetch(dispensary, NOW_MS)
        assert menu.product_count > 40
        host = http.statistics().hosts[0]
        assert (host.breaker, host.breaker_opened) == (BreakerState.CLOSED, 1)


async def test_sandbox_faults_end_as_clear_errors_and_the_pool_keeps_serving() -> None:
    client = UpstreamHttpConfig(
        requests_per_second=500.0, burst=50, max_retries=1, backoff_base=0.01, breaker_failures=50
    )
    cases = [
        (FaultKind.MALFORMED_JSON, UpstreamParseError),
        (FaultKind.HTML_BLOCK, UpstreamRefused),
        (FaultKind.NOT_ACCEPTABLE, UpstreamRefused),
        (FaultKind.TRUNCATED, UpstreamBadResponse),
    ]
    small_pages = {model.Vendor.WEEDMAPS: {"page_size": "20"}}  # ~50 items: three pages
    async with sandbox_fetcher(SandboxConfig(), client, small_pages) as (sandbox, _, fetch):
        dispensary = SMALL[model.Vendor.WEEDMAPS]
        for kind, error in cases:
            sandbox.set_faults(FaultRule(kind, dispensary_id=dispensary, pages=PageSelector.LATER))
            with pytest.raises(error) as caught:
                await fetch.fetch(dispensary, NOW_MS)
            assert caught.value.dispensary_id == dispensary, kind
            assert caught.value.source == "weedmaps", kind
            sandbox.clear_faults()
            assert (await fetch.fetch(TINY[model.Vendor.DUTCHIE], NOW_MS)).product_count >= 3
