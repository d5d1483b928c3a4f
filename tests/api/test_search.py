"""``GET /v1/search`` on a real aiohttp server over ``ServiceDouble`` and a real search index
(SQLite file, fed through ``SearchFeed``); the index's answers are checked against
``select`` in tests/store/test_search.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import ApiServer, ContextDouble, ServiceDouble, make_record, now_ms
from whnode.record.keys import SigningKey
from whnode.record.query import ProductQuery, select
from whnode.service.searchfeed import SearchFeed
from whnode.store.search import SearchIndex
from whnode.testing.factories import make_menu

HELD = [f"weedmaps:held-{n}" for n in range(3)]
ELSEWHERE = "jane:4242"


@pytest.fixture
async def searching(tmp_path: Path, signing_key: SigningKey) -> AsyncIterator[Any]:
    service = ServiceDouble()
    menus = {
        dispensary: make_menu(dispensary, 50, seed=n, fetched_at_ms=now_ms() - 60_000)
        for n, dispensary in enumerate([*HELD, ELSEWHERE])
    }
    feed = SearchFeed(SearchIndex(tmp_path / "search.sqlite3"), service.events)
    await feed.index.open()
    for dispensary in HELD:
        record = make_record(menus[dispensary], signing_key)
        service.add(record)
        await feed.ensure(record)
    # the service can get this one (from "the network"), but it is not indexed yet
    service.add(make_record(menus[ELSEWHERE], signing_key))
    context = ContextDouble(service)
    context.search_feed = feed  # type: ignore[attr-defined]
    async with ApiServer(context) as server:
        yield server, service, menus, feed
    await feed.aclose()


async def _search(server: ApiServer, **params: str) -> tuple[int, Any]:
    async with server.http.get("/v1/search", params=params) as response:
        return response.status, await response.json()


async def test_a_search_across_held_menus_pages_through_every_match(searching: Any) -> None:
    server, _, menus, feed = searching
    params = {"category": "flower", "sort": "price", "limit": "10"}
    expected = sorted(
        (
            (min(o.special_price_cents or o.price_cents for o in m.options), d, m.product.source_id)
            for d in HELD
            for m in select(menus[d], ProductQuery(categories=frozenset({"flower"})))  # type: ignore[arg-type]
        ),
    )
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        status, body = await _search(server, **params, **({"cursor": cursor} if cursor else {}))
        assert status == 200, body
        assert body["total"] == len(expected)
        assert body["total_exact"] is True
        assert body["partial"] is False
        for result in body["results"]:
            seen.append((result["dispensary_id"], result["product"]["source_id"]))
            record = body["records"][result["dispensary_id"]]
            assert record["fetched_at_ms"] == menus[result["dispensary_id"]].fetched_at_ms
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted((d, s) for _, d, s in expected)
    assert ELSEWHERE not in {d for d, _ in seen}
    assert feed.index.queries >= 2


async def test_listed_dispensaries_are_fetched_and_failures_reported(searching: Any) -> None:
    server, service, menus, feed = searching
    status, body = await _search(
        server, dispensaries=f"{HELD[0]},{ELSEWHERE},weedmaps:nowhere", limit="500"
    )
    assert status == 200, body
    statuses = {entry["dispensary_id"]: entry["status"] for entry in body["dispensaries"]}
    assert statuses == {HELD[0]: "ok", ELSEWHERE: "ok", "weedmaps:nowhere": "menu-not-found"}
    assert body["partial"] is True
    assert {r["dispensary_id"] for r in body["results"]} == {HELD[0], ELSEWHERE}
    assert body["total"] == len(menus[HELD[0]].products) + len(menus[ELSEWHERE].products)
    assert feed.index.indexed_at(ELSEWHERE) == menus[ELSEWHERE].fetched_at_ms
    asked = [call[1]["dispensary_id"] for call in service.calls if call[0] == "get_menu"]
    assert sorted(asked) == sorted([HELD[0], ELSEWHERE, "weedmaps:nowhere"])


@pytest.mark.parametrize(
    "params",
    [
        {"dispensaries": ""},
        {"dispensaries": ",".join(f"weedmaps:d{n}" for n in range(51))},
        {"dispensaries": "not an id"},
        {"category": "fruit"},
        {"cursor": "garbage"},
        {"limit": "0"},
        {"at": "1700000000000"},
        {"q": "x", "q2": "y"},
    ],
)
async def test_bad_searches_are_problem_documents(searching: Any, params: dict[str, str]) -> None:
    server, service, _, _ = searching
    async with server.http.get("/v1/search", params=params) as response:
        assert response.status == 400
        assert response.content_type == "application/problem+json"
    assert service.calls == []


async def test_a_node_without_an_index_says_so() -> None:
    async with ApiServer(ContextDouble(ServiceDouble())) as server:
        status, body = await _search(server, q="kush")
    assert status == 503
    assert "search index" in body["detail"]
