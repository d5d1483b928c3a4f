"""``GET /v1/menus/{id}/products`` on a real aiohttp server over ``ServiceDouble``.

The filters and order are tested against a brute-force reference in tests/record/test_query.py;
here: parameters, pages and cursors, the record named, validators, problem documents.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.support import ApiServer, ContextDouble, ServiceDouble, make_record, now_ms
from whnode.api.app import public_api
from whnode.api.render import product_document
from whnode.record.keys import SigningKey
from whnode.record.query import ProductQuery, SortKey, select
from whnode.testing.factories import make_menu

DISPENSARY = "weedmaps:query-target"
PRODUCTS = f"/v1/menus/{DISPENSARY}/products"


@pytest.fixture
async def menu_server(signing_key: SigningKey) -> Any:
    menu = make_menu(DISPENSARY, 300, seed=3, fetched_at_ms=now_ms() - 60_000)
    record = make_record(menu, signing_key)
    service = ServiceDouble()
    service.add(record)
    async with ApiServer(ContextDouble(service)) as server:
        yield server, service, menu, record


async def _json(server: ApiServer, params: dict[str, str]) -> tuple[int, Any]:
    async with server.http.get(PRODUCTS, params=params) as response:
        return response.status, await response.json()


async def test_pages_of_a_query_add_up_to_the_whole_answer(menu_server: Any) -> None:
    server, service, menu, record = menu_server
    params = {"category": "flower,pre_roll", "sort": "-price_per_gram", "limit": "7"}
    expected = select(
        menu,
        ProductQuery(
            categories=frozenset({"flower", "pre_roll"}),  # type: ignore[arg-type]
            sort=SortKey.PRICE_PER_GRAM,
            descending=True,
        ),
    )
    assert len(expected) > 14  # several pages
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page_params = dict(params, **({"cursor": cursor} if cursor else {}))
        status, body = await _json(server, page_params)
        assert status == 200, body
        pages += 1
        assert body["total"] == len(expected)
        assert body["count"] == len(body["products"]) <= 7
        # the answer names the record it came from: a light client can fetch and verify it
        assert body["record"]["content_hash"] == bytes(record.content_hash).hex()
        assert body["record"]["publisher"] == bytes(record.publisher).hex()
        assert body["fetched_at_ms"] == record.fetched_at_ms
        seen.extend(body["products"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == -(-len(expected) // 7)
    assert [p["source_id"] for p in seen] == [m.product.source_id for m in expected]
    # a later page is read from the snapshot the cursor names (at = its fetch time)
    assert service.calls[-1][1]["at_ms"] == record.fetched_at_ms


async def test_only_matching_options_are_listed(menu_server: Any) -> None:
    server, _, menu, _ = menu_server
    status, body = await _json(server, {"size": "1/8oz", "limit": "500"})
    assert status == 200
    assert body["total"] > 0
    for product in body["products"]:
        assert product["price_options"]
        for option in product["price_options"]:
            assert option["quantity"]["unit"] == "g"
            assert abs(option["quantity"]["amount"] - 3.5) < 0.11
    by_id = {product.source_id: product for product in menu.products}
    full = product_document(by_id[body["products"][0]["source_id"]])
    assert len(full["price_options"]) >= len(body["products"][0]["price_options"])


async def test_dollar_amounts_and_words(menu_server: Any) -> None:
    server, _, menu, _ = menu_server
    status, body = await _json(
        server, {"max_price_per_gram": "10", "q": "  ", "on_special": "false", "sort": "price"}
    )
    assert status == 200, body
    for product in body["products"]:
        for option in product["price_options"]:
            assert option["special_price_cents"] is None
            assert option["quantity"]["unit"] == "g"
            assert option["price_cents"] / option["quantity"]["amount"] <= 1000
    prices = [min(o["price_cents"] for o in p["price_options"]) for p in body["products"]]
    assert prices == sorted(prices)
    word = menu.products[0].name.split()[0]
    status, body = await _json(server, {"q": word.upper(), "limit": "500"})
    assert status == 200
    assert body["total"] >= 1
    assert all(word.lower() in (p["name"] + (p["brand"] or "")).lower() for p in body["products"])


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"colour": "green"}, "colour"),
        ({"category": "fruit"}, "category"),
        ({"lineage": ""}, "lineage"),
        ({"min_thc": "101"}, "min_thc"),
        ({"max_thc": "nan"}, "max_thc"),
        ({"max_price": "1e3"}, "max_price"),
        ({"max_price_per_gram": "-1"}, "max_price_per_gram"),
        ({"on_special": "maybe"}, "on_special"),
        ({"size": "a bit"}, "size"),
        ({"sort": "popularity"}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"max_age": "10", "at": "1700000000000"}, "at"),
        ({"q": "x " * 40}, "q"),
    ],
)
async def test_bad_parameters_are_problem_documents(
    menu_server: Any, params: dict[str, str], name: str
) -> None:
    server, service, _, _ = menu_server
    async with server.http.get(PRODUCTS, params=params) as response:
        assert response.status == 400
        assert response.content_type == "application/problem+json"
        body = await response.json()
    assert body["type"] == "urn:whnode:problem:invalid-parameter"
    assert name in body["detail"] or body.get("parameter") == name, body
    assert service.calls == []  # refused before any work


async def test_a_repeated_parameter_is_refused(menu_server: Any) -> None:
    server, _, _, _ = menu_server
    async with server.http.get(f"{PRODUCTS}?category=flower&category=edible") as response:
        assert response.status == 400


async def test_a_cursor_holds_only_for_its_own_query(menu_server: Any) -> None:
    server, _, _, _ = menu_server
    status, body = await _json(server, {"category": "flower", "limit": "2"})
    assert status == 200
    assert body["next_cursor"]
    status, again = await _json(
        server, {"category": "flower", "limit": "2", "cursor": body["next_cursor"]}
    )
    assert status == 200
    assert again["products"][0]["source_id"] != body["products"][0]["source_id"]
    status, refused = await _json(
        server, {"category": "edible", "limit": "2", "cursor": body["next_cursor"]}
    )
    assert status == 400
    assert "cursor" in refused["detail"]


async def test_a_cursor_of_a_snapshot_no_longer_found_is_refused(
    menu_server: Any, signing_key: SigningKey
) -> None:
    server, service, _menu, _ = menu_server
    _, body = await _json(server, {"limit": "5"})
    # the node now holds only a newer snapshot: the cursor's own is gone
    newer = make_menu(DISPENSARY, 300, seed=4, fetched_at_ms=now_ms())
    service.records[DISPENSARY] = [make_record(newer, signing_key)]
    status, refused = await _json(server, {"limit": "5", "cursor": body["next_cursor"]})
    assert status == 400
    assert "cursor" in refused["detail"]


async def test_validators_and_the_opened_menu_is_kept(menu_server: Any) -> None:
    server, _, _, _ = menu_server
    params = {"category": "vape", "limit": "3"}
    async with server.http.get(PRODUCTS, params=params) as response:
        assert response.status == 200
        etag = response.headers["ETag"]
        assert response.headers["X-Whnode-Content-Hash"]
    async with server.http.get(PRODUCTS, params=params, headers={"If-None-Match": etag}) as r:
        assert r.status == 304
    async with server.http.get(
        PRODUCTS, params={"category": "edible", "limit": "3"}, headers={"If-None-Match": etag}
    ) as r:
        assert r.status == 200  # another query is another representation
    handlers = public_api(server.app).products
    assert handlers.queries == 2
    assert public_api(server.app).opened.opened == 1  # one opened menu served both queries


async def test_an_unknown_dispensary_is_not_found() -> None:
    async with (
        ApiServer(ContextDouble(ServiceDouble())) as server,
        server.http.get("/v1/menus/weedmaps:nowhere/products") as response,
    ):
        assert response.status == 404
