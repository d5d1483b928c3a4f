"""The sandbox over real HTTP: API protocol rules, injected faults, 429 + Retry-After, latency,
change over time, counters and the control endpoints."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from whnode.errors import UsageError
from whnode.record.model import Vendor
from whnode.sandbox import (
    NAMED_IDS,
    QUIRKY,
    SMALL,
    TINY,
    FaultKind,
    FaultRule,
    InvalidSandboxControl,
    PageSelector,
    SandboxConfig,
    SandboxServer,
    UnknownSandboxDispensary,
    run_sandbox,
)
from whnode.sandbox.state import SandboxState
from whnode.upstream.sources import DEFAULT_DUTCHIE_QUERY_HASH

LEAFLY = SMALL[Vendor.LEAFLY]
OTHER_LEAFLY = TINY[Vendor.LEAFLY]


@asynccontextmanager
async def serving(
    config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[tuple[SandboxServer, aiohttp.ClientSession]]:
    async with run_sandbox(config, clock=clock) as sandbox, aiohttp.ClientSession() as session:
        yield sandbox, session


def leafly_url(sandbox: SandboxServer, dispensary: str = LEAFLY) -> str:
    slug = dispensary.partition(":")[2]
    return f"{sandbox.base_url}/api/dispensaries/v1/{slug}/menu_items"


async def get(
    session: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, str, dict[str, str], bytes]:
    async with session.get(url, **kwargs) as response:
        return response.status, response.content_type, dict(response.headers), await response.read()


def dutchie_params(
    store: str, *, page: int = 0, per_page: int = 50, digest: str = ""
) -> dict[str, str]:
    return {
        "operationName": "FilteredProducts",
        "variables": json.dumps(
            {"productsFilter": {"dispensaryId": store}, "page": page, "perPage": per_page}
        ),
        "extensions": json.dumps(
            {"persistedQuery": {"version": 1, "sha256Hash": digest or DEFAULT_DUTCHIE_QUERY_HASH}}
        ),
    }


PREFLIGHT = {"apollo-require-preflight": "true"}


# --------------------------------------------------------------------------- protocol rules
async def test_leafly_refuses_take_above_50_and_unknown_slugs() -> None:
    async with serving() as (sandbox, session):
        status, _, _, _ = await get(
            session, leafly_url(sandbox), params={"take": "51", "skip": "0"}
        )
        assert status == 400
        status, _, _, body = await get(
            session, leafly_url(sandbox), params={"take": "50", "skip": "0"}
        )
        assert status == 200
        document = json.loads(body)
        assert len(document["data"]) == 50
        assert document["metadata"]["totalCount"] > 50
        status, _, _, _ = await get(session, leafly_url(sandbox, "leafly:nowhere"))
        assert status == 404


async def test_weedmaps_caps_page_size_and_knows_its_listings() -> None:
    async with serving() as (sandbox, session):
        url = (
            f"{sandbox.base_url}/discovery/v1/listings/dispensaries/high-desert-remedies/menu_items"
        )
        status, _, _, _ = await get(session, url, params={"page": "1", "page_size": "101"})
        assert status == 422
        status, _, _, body = await get(session, url, params={"page": "1", "page_size": "10"})
        assert status == 200
        assert len(json.loads(body)["data"]["menu_items"]) == 10
        missing = url.replace("high-desert-remedies", "nowhere")
        assert (await get(session, missing))[0] == 404


async def test_dutchie_speaks_apollo() -> None:
    store = SMALL[Vendor.DUTCHIE].partition(":")[2]
    url_params = dutchie_params(store)
    async with serving() as (sandbox, session):
        url = f"{sandbox.base_url}/graphql"
        status, _, _, body = await get(session, url, params=url_params)
        assert status == 400, "a GET without a preflight header is refused (CSRF)"
        assert b"CSRF" in body

        async def errors(params: dict[str, str]) -> str:
            status, _, _, body = await get(session, url, params=params, headers=PREFLIGHT)
            assert status == 200
            document = json.loads(body)
            assert document["data"] is None
            return str(document["errors"][0]["extensions"]["code"])

        assert await errors(dutchie_params(store, digest="0" * 64)) == "PERSISTED_QUERY_NOT_FOUND"
        assert await errors(dutchie_params(store, per_page=101)) == "BAD_USER_INPUT"
        assert await errors(dutchie_params("ffffffffffffffffffffffff")) == "NOT_FOUND"
        assert await errors({**url_params, "operationName": "Other"}) == "GRAPHQL_VALIDATION_FAILED"
        status, _, _, _ = await get(
            session, url, params={**url_params, "variables": "{"}, headers=PREFLIGHT
        )
        assert status == 400
        status, _, _, body = await get(session, url, params=url_params, headers=PREFLIGHT)
        info = json.loads(body)["data"]["filteredProducts"]["queryInfo"]
        assert info["totalPages"] == -(-info["totalCount"] // 50)


async def test_jane_speaks_algolia() -> None:
    config = SandboxConfig(jane_app_id="APP", jane_api_key="KEY")
    headers = {"x-algolia-application-id": "APP", "x-algolia-api-key": "KEY"}
    async with serving(config) as (sandbox, session):
        base = f"{sandbox.base_url}/1/indexes"
        body = {"filters": "store_id : 2210", "hitsPerPage": 5000}
        async with session.post(f"{base}/menu-products-production/query", json=body) as response:
            assert response.status == 403
        async with session.post(
            f"{base}/menu-products-production/query", json=body, headers=headers
        ) as response:
            document = await response.json()
        assert document["hitsPerPage"] == 1000
        assert document["nbPages"] == 1
        assert len(document["hits"]) == document["nbHits"] > 40
        params = {"params": "filters=store_id%20%3A%202210&page=1&hitsPerPage=20"}
        async with session.post(
            f"{base}/menu-products-production/query", json=params, headers=headers
        ) as response:
            paged = await response.json()
        assert (paged["page"], len(paged["hits"])) == (1, 20)
        async with session.post(
            f"{base}/menu-products-production/query",
            json={"filters": "store_id : 999999"},
            headers=headers,
        ) as response:
            assert (await response.json())["nbHits"] == 0
        async with session.post(f"{base}/other/query", json=body, headers=headers) as response:
            assert response.status == 404


async def test_same_seed_same_pages_other_seed_other_pages() -> None:
    async with serving(SandboxConfig(seed=11)) as (one, session):
        first = await get(session, leafly_url(one), params={"take": "50"})
    async with serving(SandboxConfig(seed=11)) as (two, session):
        second = await get(session, leafly_url(two), params={"take": "50"})
    async with serving(SandboxConfig(seed=12)) as (three, session):
        third = await get(session, leafly_url(three), params={"take": "50"})
    assert first[3] == second[3]
    assert first[3] != third[3]


# --------------------------------------------------------------------------- faults
Check = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


async def _status(session: aiohttp.ClientSession, url: str, expected: int) -> dict[str, str]:
    status, _, headers, _ = await get(session, url, params={"take": "50"})
    assert status == expected
    return headers


async def check_server_error(session: aiohttp.ClientSession, url: str) -> None:
    await _status(session, url, 500)


async def check_unavailable(session: aiohttp.ClientSession, url: str) -> None:
    assert (await _status(session, url, 503))["Retry-After"] == "1"


async def check_rate_limited(session: aiohttp.ClientSession, url: str) -> None:
    assert (await _status(session, url, 429))["Retry-After"] == "1"


async def check_not_acceptable(session: aiohttp.ClientSession, url: str) -> None:
    await _status(session, url, 406)


async def check_html_block(session: aiohttp.ClientSession, url: str) -> None:
    status, content_type, _, body = await get(session, url)
    assert (status, content_type) == (200, "text/html")
    assert body.startswith(b"<!DOCTYPE html>")


async def check_malformed_json(session: aiohttp.ClientSession, url: str) -> None:
    status, content_type, _, body = await get(session, url, params={"take": "50"})
    assert (status, content_type) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def check_truncated(session: aiohttp.ClientSession, url: str) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await get(session, url, params={"take": "50"})


async def check_empty_page(session: aiohttp.ClientSession, url: str) -> None:
    status, _, _, body = await get(session, url, params={"take": "50"})
    document = json.loads(body)
    assert status == 200
    assert document["data"] == []
    assert document["metadata"]["totalCount"] > 0, "the totals still say there are items"


async def check_timeout(session: aiohttp.ClientSession, url: str) -> None:
    with pytest.raises(TimeoutError):
        await get(session, url, timeout=aiohttp.ClientTimeout(total=0.3))


async def check_graphql_error_elsewhere(session: aiohttp.ClientSession, url: str) -> None:
    await _status(session, url, 500)


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        (FaultKind.SERVER_ERROR, check_server_error),
        (FaultKind.UNAVAILABLE, check_unavailable),
        (FaultKind.RATE_LIMITED, check_rate_limited),
        (FaultKind.NOT_ACCEPTABLE, check_not_acceptable),
        (FaultKind.HTML_BLOCK, check_html_block),
        (FaultKind.MALFORMED_JSON, check_malformed_json),
        (FaultKind.TRUNCATED, check_truncated),
        (FaultKind.EMPTY_PAGE, check_empty_page),
        (FaultKind.TIMEOUT, check_timeout),
        (FaultKind.GRAPHQL_ERROR, check_graphql_error_elsewhere),
    ],
)
async def test_each_fault_kind(kind: FaultKind, check: Check) -> None:
    started = time.monotonic()
    async with serving(SandboxConfig(timeout_fault_seconds=30.0)) as (sandbox, session):
        sandbox.fail(LEAFLY, kind)
        await check(session, leafly_url(sandbox))
        status, _, _, _ = await get(session, leafly_url(sandbox, OTHER_LEAFLY))
        assert status == 200, "other dispensaries are unaffected"
        sandbox.heal(LEAFLY)
        status, _, _, body = await get(session, leafly_url(sandbox), params={"take": "50"})
        assert status == 200
        assert json.loads(body)["data"]
        assert sandbox.stats().by_dispensary[LEAFLY].faults == 1
    assert time.monotonic() - started < 10, "a timeout fault does not hold up the shutdown"


async def test_dutchie_errors_in_a_200() -> None:
    dispensary = TINY[Vendor.DUTCHIE]
    async with serving() as (sandbox, session):
        sandbox.fail(dispensary, FaultKind.GRAPHQL_ERROR)
        status, _, _, body = await get(
            session,
            f"{sandbox.base_url}/graphql",
            params=dutchie_params(dispensary.partition(":")[2]),
            headers=PREFLIGHT,
        )
    assert status == 200
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


async def test_fault_probability_times_and_pages() -> None:
    async with serving(SandboxConfig(seed=3)) as (sandbox, session):
        url = leafly_url(sandbox)
        sandbox.set_faults(FaultRule(FaultKind.SERVER_ERROR, probability=0.5, vendor=Vendor.LEAFLY))
        statuses = [(await get(session, url))[0] for _ in range(40)]
        assert 5 <= statuses.count(500) <= 35
        assert statuses.count(500) + statuses.count(200) == 40
        assert sandbox.stats().by_vendor["leafly"].faults == statuses.count(500)

        sandbox.set_faults(FaultRule(FaultKind.NOT_ACCEPTABLE, times=2))
        statuses = [(await get(session, url))[0] for _ in range(4)]
        assert statuses == [406, 406, 200, 200]

        sandbox.set_faults(FaultRule(FaultKind.SERVER_ERROR, pages=PageSelector.LATER))
        assert (await get(session, url, params={"take": "50", "skip": "0"}))[0] == 200
        assert (await get(session, url, params={"take": "50", "skip": "50"}))[0] == 500
        sandbox.set_faults(FaultRule(FaultKind.SERVER_ERROR, pages=PageSelector.FIRST))
        assert (await get(session, url, params={"take": "50", "skip": "0"}))[0] == 500
        assert (await get(session, url, params={"take": "50", "skip": "50"}))[0] == 200
        sandbox.set_faults(FaultRule(FaultKind.SERVER_ERROR, vendor=Vendor.JANE))
        assert (await get(session, url))[0] == 200


async def test_faults_set_through_the_control_endpoint() -> None:
    async with serving() as (sandbox, session):
        control = f"{sandbox.base_url}/_sandbox/faults"
        rules = {"faults": [{"kind": "not_acceptable", "dispensary_id": LEAFLY, "times": 1}]}
        async with session.put(control, json=rules) as response:
            assert response.status == 200
        assert (await get(session, leafly_url(sandbox)))[0] == 406
        assert (await get(session, leafly_url(sandbox)))[0] == 200
        async with session.put(control, json={"faults": [{"kind": "server_error"}]}):
            pass
        assert (await get(session, leafly_url(sandbox)))[0] == 500
        async with session.delete(control) as response:
            assert response.status == 200
        assert (await get(session, leafly_url(sandbox)))[0] == 200
        for bad in ({"faults": [{"kind": "gremlins"}]}, {"faults": [{"kind": "timeout", "x": 1}]}):
            async with session.put(control, json=bad) as response:
                assert response.status == 400


# --------------------------------------------------------------------------- rate, latency
async def test_per_client_rate_limit_answers_429_with_retry_after() -> None:
    now = [100.0]  # the sandbox's clock, moved by hand
    async with serving(SandboxConfig(rate=1.0, burst=2), clock=lambda: now[0]) as (
        sandbox,
        session,
    ):
        url = leafly_url(sandbox)
        statuses = [await get(session, url) for _ in range(3)]
        assert [s[0] for s in statuses] == [200, 200, 429]
        assert statuses[2][2]["Retry-After"] == "1"
        stats = sandbox.stats()
        assert (stats.rate_limited, stats.by_dispensary[LEAFLY].rate_limited) == (1, 1)
        assert stats.by_vendor["leafly"].rate_limited == 1
        now[0] += 0.9
        assert (await get(session, url))[0] == 429, "before Retry-After, still refused"
        now[0] += 0.15
        assert (await get(session, url))[0] == 200, "after Retry-After, welcome again"
        async with session.post(f"{sandbox.base_url}/_sandbox/rate", json={"rate": None}):
            pass
        assert {(await get(session, url))[0] for _ in range(10)} == {200}


async def test_latency_per_request_and_per_dispensary() -> None:
    async with serving() as (sandbox, session):
        sandbox.set_latency(0.3, LEAFLY)
        started = time.monotonic()
        await get(session, leafly_url(sandbox))
        assert time.monotonic() - started >= 0.3
        started = time.monotonic()
        await get(session, leafly_url(sandbox, OTHER_LEAFLY))
        assert time.monotonic() - started < 0.25
        async with session.post(
            f"{sandbox.base_url}/_sandbox/latency", json={"seconds": 0.2}
        ) as response:
            assert response.status == 200
        started = time.monotonic()
        await get(session, leafly_url(sandbox, OTHER_LEAFLY))
        assert time.monotonic() - started >= 0.2


# --------------------------------------------------------------------------- change, counters
async def test_menus_change_when_advanced() -> None:
    async with serving() as (sandbox, session):
        before = await get(session, leafly_url(sandbox), params={"take": "50"})
        other_before = await get(session, leafly_url(sandbox, OTHER_LEAFLY))
        assert sandbox.epoch(LEAFLY) == 0
        sandbox.advance(LEAFLY)
        assert sandbox.epoch(LEAFLY) == 1
        after = await get(session, leafly_url(sandbox), params={"take": "50"})
        assert after[3] != before[3]
        other_after = await get(session, leafly_url(sandbox, OTHER_LEAFLY))
        assert other_after[3] == other_before[3], "other menus do not move"
        async with session.post(
            f"{sandbox.base_url}/_sandbox/advance", json={"dispensary_id": LEAFLY, "steps": 2}
        ) as response:
            assert (await response.json())["epoch"] == 3
        async with session.post(f"{sandbox.base_url}/_sandbox/advance", json={}) as response:
            assert response.status == 200
        assert sandbox.epoch(OTHER_LEAFLY) == 1
        assert await get(session, leafly_url(sandbox, OTHER_LEAFLY)) != other_before


async def test_menus_change_with_time() -> None:
    now = [100.0]
    async with serving(SandboxConfig(change_interval=60.0), clock=lambda: now[0]) as (
        sandbox,
        session,
    ):
        before = await get(session, leafly_url(sandbox), params={"take": "50"})
        now[0] += 59.0
        assert sandbox.epoch(LEAFLY) == 0
        now[0] += 2.0
        assert sandbox.epoch(LEAFLY) == 1
        after = await get(session, leafly_url(sandbox), params={"take": "50"})
    assert after[3] != before[3]


def test_versions_follow_the_clock() -> None:
    now = [100.0]
    state = SandboxState(SandboxConfig(change_interval=10.0), clock=lambda: now[0])
    assert state.epoch(LEAFLY) == 0
    now[0] = 125.0
    assert state.epoch(LEAFLY) == 2
    state.advance(LEAFLY)
    assert (state.epoch(LEAFLY), state.epoch(OTHER_LEAFLY)) == (3, 2)
    state.advance(steps=2)
    assert (state.epoch(LEAFLY), state.epoch(OTHER_LEAFLY)) == (5, 4)
    with pytest.raises(UnknownSandboxDispensary):
        state.advance("leafly:nowhere")
    with pytest.raises(InvalidSandboxControl):
        state.advance(LEAFLY, -1)
    with pytest.raises(InvalidSandboxControl):
        state.set_latency(-1.0)
    with pytest.raises(UsageError):
        state.set_rate(0.0)


async def test_statistics_count_requests_first_pages_and_reset() -> None:
    async with serving() as (sandbox, session):
        url = leafly_url(sandbox)
        await get(session, url, params={"take": "50", "skip": "0"})
        await get(session, url, params={"take": "50", "skip": "50"})
        await get(session, leafly_url(sandbox, OTHER_LEAFLY))
        await get(session, leafly_url(sandbox, "leafly:nowhere"))
        assert (sandbox.calls(LEAFLY), sandbox.menu_fetches(LEAFLY)) == (2, 1)
        assert sandbox.calls(OTHER_LEAFLY) == 1
        assert sandbox.calls(TINY[Vendor.JANE]) == 0
        assert sandbox.calls() == 4
        async with session.get(f"{sandbox.base_url}/_sandbox/stats") as response:
            document = await response.json()
        assert document["dispensaries"] == sandbox.dispensaries == list(NAMED_IDS)
        assert (document["requests"], document["menu_fetches"]) == (4, 3)
        assert document["by_dispensary"][LEAFLY] == {
            "requests": 2,
            "menu_fetches": 1,
            "rate_limited": 0,
            "faults": 0,
        }
        assert document["by_vendor"]["leafly"]["requests"] == 4
        assert "leafly:nowhere" not in document["by_dispensary"]
        async with session.post(f"{sandbox.base_url}/_sandbox/stats/reset") as response:
            assert (await response.json())["requests"] == 0
        assert sandbox.calls() == sandbox.calls(LEAFLY) == 0


async def test_health_and_dispensary_listing() -> None:
    config = SandboxConfig(population=8, max_items=10)
    async with serving(config) as (sandbox, session):
        async with session.get(f"{sandbox.base_url}/healthz") as response:
            assert response.status == 200
        async with session.get(f"{sandbox.base_url}/_sandbox/dispensaries") as response:
            listing = await response.json()
    assert [entry["id"] for entry in listing] == sandbox.dispensaries
    assert sandbox.dispensaries[:28] == list(NAMED_IDS)
    assert sandbox.dispensaries[28:] == [
        f"{vendor}:store-{n:04d}"
        for n, vendor in zip(
            range(1, 9), ["weedmaps", "dutchie", "jane", "leafly"] * 2, strict=True
        )
    ]
    sizes = {entry["id"]: entry["items"] for entry in listing}
    assert all(3 <= sizes[d] <= 10 for d in sandbox.dispensaries[28:])
    assert sizes[QUIRKY[Vendor.JANE]] is None
