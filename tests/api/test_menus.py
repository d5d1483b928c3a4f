"""The menu endpoints on a real aiohttp server, with real signed records.

The service behind them is ``ServiceDouble`` (tests/api/support.py), a double of
MenuService: the read-through policy itself is tested in tests/service and end to end in
test_node_integration.py. Here the API's own behaviour is under test: representations,
validators, headers, parameters and the mapping of service errors to problem documents.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.utils
import json

import cbor2
import lz4.frame
import pytest

from tests.api.support import (
    DISPENSARY,
    ApiServer,
    ContextDouble,
    ServiceDouble,
    make_menu,
    make_record,
    now_ms,
)
from whnode.api.app import public_api
from whnode.api.render import menu_document
from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.keys import SigningKey
from whnode.record.signed import SignedRecord
from whnode.service.exceptions import NoOwnerReachable
from whnode.service.types import AnswerPath
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamBadResponse,
    UpstreamParseError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)

MENU = f"/v1/menus/{DISPENSARY}"


async def test_json_is_the_default_and_matches_the_documented_shape(
    server: ApiServer, record: SignedRecord
) -> None:
    async with server.http.get(MENU) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        body = await response.json()
    menu = open_record(record)
    assert body == json.loads(json.dumps(menu_document(menu, record)))
    assert body["dispensary_id"] == DISPENSARY
    assert body["product_count"] == 3
    assert body["products"][0]["name"] == "Product 0 <b>&amp;</b> ünïcode"
    assert body["products"][0]["price_options"][0] == {
        "quantity": {"amount": 3.5, "unit": "g"},
        "price_cents": 2500,
        "special_price_cents": 2000,
        "stock": None,
    }
    assert body["statistics"]["thc_percent_histogram"][4] == 2
    assert body["record"]["publisher"] == bytes(record.publisher).hex()
    assert body["fetched_at"].endswith("Z")


async def test_headers_carry_validators_freshness_path_and_publisher(
    server: ApiServer, record: SignedRecord, service: ServiceDouble
) -> None:
    service.path = AnswerPath.OWNER
    async with server.http.get(MENU, headers={"Accept-Encoding": "identity"}) as response:
        headers = response.headers
    assert headers["ETag"].startswith('"' + bytes(record.content_hash).hex()[:24])
    assert headers["ETag"].endswith(f'-{record.fetched_at_ms}-json"')
    modified = email.utils.parsedate_to_datetime(headers["Last-Modified"])
    assert int(modified.timestamp()) == record.fetched_at_ms // 1000
    max_age = int(headers["Cache-Control"].removeprefix("max-age="))
    assert 295 <= max_age <= 300
    assert headers["X-Whnode-Path"] == "owner"
    assert headers["X-Whnode-Publisher"] == bytes(record.publisher).hex()
    assert headers["X-Whnode-Fetched-At"] == str(record.fetched_at_ms)
    assert headers["X-Whnode-Stale"] == "0"
    assert headers["Vary"] == "Accept, Accept-Encoding"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Whnode-Path" in headers["Access-Control-Expose-Headers"]


async def test_stale_answers_are_not_cacheable(server: ApiServer, service: ServiceDouble) -> None:
    service.stale = True
    async with server.http.get(MENU) as response:
        assert response.headers["Cache-Control"] == "max-age=0"
        assert response.headers["X-Whnode-Path"] == "stale"
        assert response.headers["X-Whnode-Stale"] == "1"


async def test_cbor_is_the_canonical_cbor_of_the_menu(
    server: ApiServer, record: SignedRecord
) -> None:
    plain = {"Accept": "application/cbor", "Accept-Encoding": "identity"}
    async with server.http.get(MENU, headers=plain) as response:
        assert response.status == 200
        assert response.content_type == "application/cbor"
        data = await response.read()
        etag = response.headers["ETag"]
    assert data == lz4.frame.decompress(record.payload)
    decoded = cbor2.loads(data)
    assert DISPENSARY in json.dumps(decoded, default=repr)
    assert etag.endswith('-cbor"')


async def test_cose_is_the_signed_record_and_verifies(
    server: ApiServer, record: SignedRecord
) -> None:
    async with server.http.get(MENU, headers={"Accept": "application/cose"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == 'application/cose; cose-type="cose-sign1"'
        data = await response.read()
    assert data == record.encoded
    accepted = accept_record(
        data, now_ms=now_ms(), policy=TrustPolicy.open(), expected_dispensary=DISPENSARY
    )
    assert accepted.content_hash == record.content_hash


async def test_if_none_match_gives_304_per_representation(server: ApiServer) -> None:
    async with server.http.get(MENU) as response:
        etag = response.headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        async with server.http.get(MENU, headers={"If-None-Match": header}) as response:
            assert response.status == 304, header
            assert await response.read() == b""
            assert response.headers["ETag"] == etag
            assert response.headers["X-Whnode-Path"] == "hot"
    cbor = {"If-None-Match": etag, "Accept": "application/cbor"}
    async with server.http.get(MENU, headers=cbor) as response:
        assert response.status == 200  # another representation, another tag
    async with server.http.get(MENU, headers={"If-None-Match": '"stale-tag"'}) as response:
        assert response.status == 200


async def test_if_modified_since(server: ApiServer, record: SignedRecord) -> None:
    later = email.utils.formatdate(record.fetched_at_ms / 1000 + 5, usegmt=True)
    earlier = email.utils.formatdate(record.fetched_at_ms / 1000 - 5, usegmt=True)
    async with server.http.get(MENU, headers={"If-Modified-Since": later}) as response:
        assert response.status == 304
    async with server.http.get(MENU, headers={"If-Modified-Since": earlier}) as response:
        assert response.status == 200


async def test_head_gives_headers_only(server: ApiServer) -> None:
    async with server.http.head(MENU) as response:
        assert response.status == 200
        assert response.headers["X-Whnode-Path"] == "hot"
        assert await response.read() == b""


async def test_max_age_and_at_reach_the_service(
    server: ApiServer, service: ServiceDouble, record: SignedRecord
) -> None:
    async with server.http.get(MENU, params={"max_age": "30.5"}) as response:
        assert response.status == 200
    iso = dt.datetime.fromtimestamp(record.fetched_at_ms / 1000 + 1, tz=dt.UTC).isoformat()
    async with server.http.get(MENU, params={"at": iso}) as response:
        assert response.status == 200
    async with server.http.get(MENU, params={"at": str(record.fetched_at_ms)}) as response:
        assert response.status == 200
    async with server.http.get(MENU, params={"at": str(record.fetched_at_ms - 1)}) as response:
        assert response.status == 404
        assert (await response.json())["type"] == "urn:whnode:problem:menu-not-found"
    calls = [arguments for name, arguments in service.calls if name == "get_menu"]
    assert calls[0] == {"dispensary_id": DISPENSARY, "max_age": 30.5, "at_ms": None}
    assert calls[1]["at_ms"] == record.fetched_at_ms + 1000
    assert calls[2]["at_ms"] == record.fetched_at_ms


async def test_history_json_and_cbor(
    server: ApiServer, service: ServiceDouble, signing_key: SigningKey, record: SignedRecord
) -> None:
    older = make_record(
        make_menu(fetched_at_ms=record.fetched_at_ms - 3_600_000, price_shift=5), signing_key
    )
    service.add(older)
    async with server.http.get(f"{MENU}/history", params={"limit": "5"}) as response:
        assert response.status == 200
        body = await response.json()
    assert body["dispensary_id"] == DISPENSARY
    assert [item["fetched_at_ms"] for item in body["snapshots"]] == [
        record.fetched_at_ms,
        older.fetched_at_ms,
    ]
    assert body["snapshots"][1]["content_hash"] == bytes(older.content_hash).hex()
    headers = {"Accept": "application/cbor"}
    async with server.http.get(f"{MENU}/history", headers=headers) as response:
        assert response.content_type == "application/cbor"
        items = cbor2.loads(await response.read())
    assert items == [record.encoded, older.encoded]
    async with server.http.get(f"{MENU}/history", params={"limit": "1"}) as response:
        assert len((await response.json())["snapshots"]) == 1
    assert ("history", {"dispensary_id": DISPENSARY, "limit": 1}) in service.calls
    async with server.http.get("/v1/menus/jane:nothing-here/history") as response:
        assert response.status == 404
        assert (await response.json())["dispensary_id"] == "jane:nothing-here"


async def test_stats(server: ApiServer, record: SignedRecord) -> None:
    async with server.http.get(f"{MENU}/stats") as response:
        assert response.status == 200
        body = await response.json()
        etag = response.headers["ETag"]
    assert body["dispensary_id"] == DISPENSARY
    assert body["product_count"] == 3
    assert body["statistics"]["categories"][0] == {
        "category": "flower",
        "product_count": 2,
        "price_per_gram_min": 714.3,
        "price_per_gram_median": 720.0,
        "price_per_gram_max": 730.0,
    }
    assert etag.endswith('-stats"')
    async with server.http.get(f"{MENU}/stats", headers={"If-None-Match": etag}) as response:
        assert response.status == 304
    async with server.http.get(f"{MENU}/stats", headers={"Accept": "application/cbor"}) as r:
        assert r.status == 406


async def test_hot_hits_are_rendered_once(server: ApiServer) -> None:
    cache = public_api(server.app).renders
    for _ in range(5):
        async with server.http.get(MENU) as response:
            assert response.status == 200
    stats = cache.statistics()
    assert (stats.misses, stats.hits) == (1, 4)


async def test_large_menus_render_in_a_thread_once_for_concurrent_requests(
    signing_key: SigningKey,
) -> None:
    big = make_record(make_menu(fetched_at_ms=now_ms() - 1000, products=4000), signing_key)
    assert len(big.payload) > 32 * 1024
    service = ServiceDouble()
    service.add(big)
    async with ApiServer(ContextDouble(service)) as server:

        async def fetch() -> int:
            async with server.http.get(MENU) as response:
                body = await response.json()
                return len(body["products"])

        counts = await asyncio.gather(*(fetch() for _ in range(8)))
        stats = public_api(server.app).renders.statistics()
    assert counts == [4000] * 8
    assert stats.misses == 1
    assert stats.hits + stats.coalesced == 7


@pytest.mark.parametrize(
    ("error", "status", "slug", "retry_after"),
    [
        (
            UnknownDispensary("no source", source="weedmaps", dispensary_id=DISPENSARY),
            404,
            "unknown-dispensary",
            None,
        ),
        (
            UpstreamRefused("403 block page", source="weedmaps", dispensary_id=DISPENSARY),
            502,
            "upstream-refused",
            None,
        ),
        (
            UpstreamBadResponse("500", source="weedmaps", dispensary_id=DISPENSARY),
            502,
            "upstream-bad-response",
            None,
        ),
        (
            UpstreamParseError("shape", source="weedmaps", dispensary_id=DISPENSARY),
            502,
            "upstream-parse-error",
            None,
        ),
        (
            UpstreamRateLimited("429", source="weedmaps", dispensary_id=DISPENSARY, retry_after=42),
            503,
            "upstream-rate-limited",
            "42",
        ),
        (
            UpstreamUnavailable(
                "refused", source="weedmaps", dispensary_id=DISPENSARY, retry_after=7
            ),
            503,
            "upstream-unavailable",
            "7",
        ),
        (
            UpstreamTimeout("slow", source="weedmaps", dispensary_id=DISPENSARY),
            504,
            "upstream-timeout",
            None,
        ),
        (NoOwnerReachable("all down", dispensary_id=DISPENSARY), 503, "no-owner-reachable", None),
        (TimeoutError(), 504, "deadline-exceeded", None),
    ],
)
async def test_service_errors_become_problems(
    server: ApiServer,
    service: ServiceDouble,
    error: Exception,
    status: int,
    slug: str,
    retry_after: str | None,
) -> None:
    service.error = error
    async with server.http.get(MENU) as response:
        assert response.status == status
        assert response.content_type == "application/problem+json"
        body = await response.json()
        assert response.headers.get("Retry-After") == retry_after
    assert body["type"] == f"urn:whnode:problem:{slug}"
    assert body["status"] == status
    assert body["instance"] == MENU
    if not isinstance(error, TimeoutError):
        assert body["dispensary_id"] == DISPENSARY


async def test_unexpected_errors_are_500_logged_and_counted(
    server: ApiServer, service: ServiceDouble, caplog: pytest.LogCaptureFixture
) -> None:
    service.error = ZeroDivisionError("a bug with /private/details")
    async with server.http.get(MENU) as response:
        assert response.status == 500
        body = await response.json()
    assert body["type"] == "urn:whnode:problem:internal-error"
    assert "private" not in json.dumps(body)
    assert any("unexpected error" in message for message in caplog.messages)
    async with server.http.get("/metrics") as response:
        text = await response.text()
    assert (
        'whnode_http_unexpected_errors_total{exception="ZeroDivisionError",'
        'route="/v1/menus/{dispensary}"} 1.0' in text
    )


async def test_service_not_started_is_503(record: SignedRecord) -> None:
    class NotStarted(ContextDouble):
        @property
        def service(self) -> ServiceDouble:
            raise AttributeError("service")

        @service.setter
        def service(self, value: ServiceDouble) -> None:
            del value

    async with ApiServer(NotStarted()) as server, server.http.get(MENU) as response:
        assert response.status == 503
        assert (await response.json())["type"] == "urn:whnode:problem:node-not-ready"


async def test_record_representations_do_not_mix_between_publishers(
    server: ApiServer, service: ServiceDouble, record: SignedRecord
) -> None:
    other_key = SigningKey.generate()
    twin = make_record(open_record(record), other_key)
    async with server.http.get(MENU) as response:
        first = await response.json()
    service.records[DISPENSARY] = [dataclasses.replace(twin)]
    async with server.http.get(MENU, headers={"Accept": "application/cose"}) as response:
        assert await response.read() == twin.encoded
        assert response.headers["X-Whnode-Publisher"] == bytes(twin.publisher).hex()
    assert first["record"]["publisher"] == bytes(record.publisher).hex()
