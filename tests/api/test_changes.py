"""``GET /v1/menus/{id}/changes`` on a real aiohttp server over ``ServiceDouble``.

The diff itself is tested in tests/record/test_diff.py (round trip on generated changes);
here: ``since`` in its three forms, the snapshots named, rebuilding the new product list from
the old one and the answer, kept diffs, problem documents.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.api.support import ApiServer, ContextDouble, ServiceDouble, make_record, now_ms
from whnode.api.app import public_api
from whnode.api.render import product_document
from whnode.record.keys import SigningKey
from whnode.record.model import Potency, PotencyUnit
from whnode.testing.factories import evolve_menu, make_menu

DISPENSARY = "weedmaps:changes-target"
CHANGES = f"/v1/menus/{DISPENSARY}/changes"


@pytest.fixture
async def two_snapshots(signing_key: SigningKey) -> Any:
    old_menu = make_menu(DISPENSARY, 200, seed=5, fetched_at_ms=now_ms() - 600_000)
    evolved = evolve_menu(old_menu, 9, now_ms() - 1000, change=0.1)
    products = list(evolved.products)
    products[3] = replace(products[3], thc=Potency(29.0, 29.0, PotencyUnit.PERCENT))
    gone = products.pop(7)
    products.insert(0, replace(old_menu.products[1], source_id="newcomer", name="Newcomer"))
    new_menu = replace(evolved, products=tuple(products))
    old, new = make_record(old_menu, signing_key), make_record(new_menu, signing_key)
    service = ServiceDouble()
    service.add(old)
    service.add(new)
    async with ApiServer(ContextDouble(service)) as server:
        yield server, old_menu, new_menu, old, new, gone


async def _get(server: ApiServer, **params: str) -> tuple[int, Any]:
    async with server.http.get(CHANGES, params=params) as response:
        return response.status, await response.json()


async def test_changes_since_a_time_rebuild_the_new_snapshot(two_snapshots: Any) -> None:
    server, old_menu, new_menu, old, new, gone = two_snapshots
    status, body = await _get(server, since=str(old.fetched_at_ms + 1), full="true")
    assert status == 200, body
    assert body["from"]["content_hash"] == bytes(old.content_hash).hex()
    assert body["to"]["content_hash"] == bytes(new.content_hash).hex()
    assert body["to"]["publisher"] == bytes(new.publisher).hex()
    assert [item["source_id"] for item in body["removed"]] == [gone.source_id]
    assert [item["source_id"] for item in body["added"]] == ["newcomer"]
    summary = body["summary"]
    assert summary["added"] == 1
    assert summary["removed"] == 1
    assert summary["thc_changed"] >= 1
    assert summary["price_changed"] >= 5  # evolve_menu changed about 10% of 200 prices
    assert summary["changed"] == len(body["changed"])
    for change in body["changed"]:
        for price in change["prices"]:
            assert price["old_price_cents"] != price["new_price_cents"]
    # a client holding the old snapshot rebuilds the new product list from the answer alone
    assert body["reordered"] is False
    replaced = {change["source_id"]: change["product"] for change in body["changed"]}
    removed = {item["source_id"] for item in body["removed"]}
    rebuilt = [
        replaced.get(product.source_id, product_document(product))
        for product in old_menu.products
        if product.source_id not in removed
    ]
    for item in body["added"]:
        index = item.pop("index")
        rebuilt.insert(index, item)
    assert rebuilt == [product_document(product) for product in new_menu.products]


async def test_since_an_etag_or_an_iso_time(two_snapshots: Any) -> None:
    server, _, _, old, _, _ = two_snapshots
    async with server.http.get(
        f"/v1/menus/{DISPENSARY}", params={"at": str(old.fetched_at_ms)}
    ) as response:
        etag = response.headers["ETag"]
    status, by_etag = await _get(server, since=etag)
    assert status == 200, by_etag
    assert by_etag["from"]["fetched_at_ms"] == old.fetched_at_ms
    iso = by_etag["from"]["fetched_at"]
    status, by_time = await _get(server, since=iso)
    assert status == 200
    assert by_time["summary"] == by_etag["summary"]
    assert "product" not in by_etag["changed"][0]  # full=false: the summary only


async def test_a_diff_is_computed_once_per_pair(two_snapshots: Any) -> None:
    server, _, _, old, _, _ = two_snapshots
    for _ in range(3):
        status, _ = await _get(server, since=str(old.fetched_at_ms))
        assert status == 200
    handlers = public_api(server.app).changes
    assert handlers.computed == 1
    assert handlers.cpu_seconds > 0


async def test_since_the_newest_snapshot_nothing_changed(two_snapshots: Any) -> None:
    server, _, _, _, new, _ = two_snapshots
    status, body = await _get(server, since=str(new.fetched_at_ms + 10_000))
    assert status == 200
    assert body["summary"] == dict.fromkeys(body["summary"], 0)
    assert body["from"] == body["to"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 400),
        ({"since": "yesterday"}, 400),
        ({"since": "1", "since2": "2"}, 400),
        ({"since": "1700000000000", "full": "perhaps"}, 400),
        ({"since": '"0123456789abcdef01234567-1700000000000-json"'}, 404),
        ({"since": "1000"}, 404),  # before any snapshot held
    ],
)
async def test_bad_requests_are_problem_documents(
    two_snapshots: Any, params: dict[str, str], status: int
) -> None:
    server = two_snapshots[0]
    async with server.http.get(CHANGES, params=params) as response:
        assert response.status == status
        assert response.content_type == "application/problem+json"
