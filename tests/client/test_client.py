"""whnode.Client against real API servers (port 0) and misbehaving nodes.

Honest nodes run the real public API (whnode.api) over ``ServiceDouble``, a double of the
service (tested in tests/service); misbehaving nodes are small real aiohttp servers that
answer with tampered, foreign or stale records, or with errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

import whnode
import whnode.client
from tests.api.support import (
    DISPENSARY,
    OTHER,
    ApiServer,
    ContextDouble,
    ServiceDouble,
    make_menu,
    make_record,
    now_ms,
)
from whnode.client import (
    Client,
    NodeBadAnswer,
    NodeProblem,
    NodeRateLimited,
    NodeUnreachable,
    VerifiedMenu,
)
from whnode.errors import UsageError
from whnode.record.acceptance import TrustPolicy, open_record
from whnode.record.exceptions import (
    DecodeError,
    KeyBindingMismatch,
    ModelError,
    RecordError,
    UntrustedPublisher,
)
from whnode.record.keys import SigningKey
from whnode.record.signed import SignedRecord
from whnode.service.exceptions import MenuNotFound
from whnode.upstream.exceptions import UnknownDispensary, UpstreamRateLimited

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def raw_node(handler: Handler) -> AsyncIterator[str]:
    """A real HTTP server answering every path with ``handler``; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    assert isinstance(server, asyncio.Server)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def cose(data: bytes) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, content_type="application/cose")

    return handler


def dead_url() -> str:
    """A loopback URL where nothing listens (a port bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def record(key: SigningKey) -> SignedRecord:
    return make_record(make_menu(fetched_at_ms=now_ms() - 30_000), key)


@pytest.fixture
async def honest(record: SignedRecord) -> AsyncIterator[ApiServer]:
    service = ServiceDouble()
    service.add(record)
    async with ApiServer(ContextDouble(service)) as server:
        yield server


async def test_get_menu_verifies_and_decodes(honest: ApiServer, record: SignedRecord) -> None:
    async with Client(honest.url + "/") as client:
        verified = await client.get_menu(DISPENSARY, max_age=300)
    assert isinstance(verified, VerifiedMenu)
    assert verified.menu == open_record(record)
    assert verified.record.encoded == record.encoded
    assert verified.node == honest.url
    assert verified.path == "hot"
    assert verified.fresh_until_ms is not None
    assert verified.fresh_until_ms > now_ms()
    assert client.statistics().requests == 1
    service = honest.context.service
    assert service.calls[-1] == (
        "get_menu",
        {"dispensary_id": DISPENSARY, "max_age": 300.0, "at_ms": None},
    )


async def test_at_is_sent_as_epoch_ms(honest: ApiServer, record: SignedRecord) -> None:
    import datetime as dt

    moment = dt.datetime.fromtimestamp(record.fetched_at_ms / 1000 + 5, tz=dt.UTC)
    async with Client([honest.url]) as client:
        await client.get_menu(DISPENSARY, at=moment)
        await client.get_menu(DISPENSARY, at=record.fetched_at_ms)
    calls = [args for name, args in honest.context.service.calls if name == "get_menu"]
    assert calls[0]["at_ms"] == int(moment.timestamp() * 1000)
    assert calls[1]["at_ms"] == record.fetched_at_ms


async def test_failover_past_dead_and_failing_nodes(
    honest: ApiServer, record: SignedRecord
) -> None:
    failing_service = ServiceDouble(error=TimeoutError())
    async with ApiServer(ContextDouble(failing_service)) as failing:
        nodes = [dead_url(), failing.url, honest.url]
        async with Client(nodes, timeout=5) as client:
            first = await client.get_menu(DISPENSARY)
            second = await client.get_menu(DISPENSARY)
            stats = client.statistics()
    assert first.node == second.node == honest.url
    assert first.record.encoded == record.encoded
    assert stats.failovers == 2
    assert stats.requests == 4  # three for the first call, then straight to the good node


async def test_tampered_records_are_refused_and_the_next_node_asked(
    honest: ApiServer, record: SignedRecord
) -> None:
    flipped = bytearray(record.encoded)
    flipped[-5] ^= 0x01  # inside the signature
    async with raw_node(cose(bytes(flipped))) as liar:
        async with Client([liar, honest.url]) as client:
            verified = await client.get_menu(DISPENSARY)
            assert verified.node == honest.url
            assert client.statistics().rejected_records == 1
        async with Client([liar]) as client:
            with pytest.raises(RecordError) as caught:
                await client.get_menu(DISPENSARY)
    assert any(liar in note for note in caught.value.__notes__)


async def test_garbage_is_a_decode_error(honest: ApiServer) -> None:
    async with raw_node(cose(b"\xa1not a record")) as liar, Client([liar]) as client:
        with pytest.raises(DecodeError):
            await client.get_menu(DISPENSARY)


async def test_trust_policy_is_applied_locally(honest: ApiServer, key: SigningKey) -> None:
    stranger = SigningKey.generate()
    policy = TrustPolicy.allowlist(frozenset({stranger.public_key}))
    async with Client([honest.url], policy=policy) as client:
        with pytest.raises(UntrustedPublisher):
            await client.get_menu(DISPENSARY)
    trusted = TrustPolicy.allowlist(frozenset({key.public_key}))
    async with Client([honest.url], policy=trusted) as client:
        assert (await client.get_menu(DISPENSARY)).menu.dispensary_id == DISPENSARY


async def test_a_record_of_another_dispensary_is_refused(key: SigningKey) -> None:
    other = make_record(make_menu(OTHER, fetched_at_ms=now_ms() - 1000), key)
    async with raw_node(cose(other.encoded)) as liar, Client([liar]) as client:
        with pytest.raises(KeyBindingMismatch):
            await client.get_menu(DISPENSARY)


async def test_records_that_do_not_answer_the_question_are_refused(
    key: SigningKey, record: SignedRecord
) -> None:
    old = make_record(make_menu(fetched_at_ms=now_ms() - 3_600_000), key)
    async with raw_node(cose(old.encoded)) as liar, Client([liar]) as client:
        with pytest.raises(NodeBadAnswer, match="max_age"):
            await client.get_menu(DISPENSARY, max_age=60)
        assert (await client.get_menu(DISPENSARY, max_age=7200)).record.encoded == old.encoded
    async with raw_node(cose(record.encoded)) as liar, Client([liar]) as client:
        with pytest.raises(NodeBadAnswer, match="newer"):
            await client.get_menu(DISPENSARY, at=record.fetched_at_ms - 1)


async def test_not_found_is_final_and_not_retried_elsewhere(honest: ApiServer) -> None:
    second_service = ServiceDouble()
    async with (
        ApiServer(ContextDouble(second_service)) as second,
        Client([honest.url, second.url]) as client,
    ):
        with pytest.raises(MenuNotFound) as caught:
            await client.get_menu("jane:nowhere")
        assert caught.value.dispensary_id == "jane:nowhere"
        honest.context.service.error = UnknownDispensary(
            "no source", source="jane", dispensary_id="jane:nowhere"
        )
        with pytest.raises(UnknownDispensary):
            await client.get_menu("jane:nowhere")
    assert second_service.calls == []


async def test_upstream_rate_limits_come_back_with_retry_after(record: SignedRecord) -> None:
    error = UpstreamRateLimited("429", source="weedmaps", dispensary_id=DISPENSARY, retry_after=9)
    async with (
        ApiServer(ContextDouble(ServiceDouble(error=error))) as first,
        ApiServer(ContextDouble(ServiceDouble(error=error))) as second,
        Client([first.url, second.url]) as client,
    ):
        with pytest.raises(UpstreamRateLimited) as caught:
            await client.get_menu(DISPENSARY)
    assert caught.value.retry_after == 9
    assert caught.value.dispensary_id == DISPENSARY
    assert len(caught.value.__notes__) == 1  # the other node's failure


async def test_a_node_rate_limiting_the_client(record: SignedRecord) -> None:
    async def limited(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=429,
            content_type="application/problem+json",
            headers={"Retry-After": "3"},
            text='{"type":"urn:whnode:problem:rate-limited","title":"Too many requests",'
            '"status":429,"detail":"slow down","retry_after":3}',
        )

    async with raw_node(limited) as node, Client([node]) as client:
        with pytest.raises(NodeRateLimited) as caught:
            await client.get_menu(DISPENSARY)
    assert caught.value.retry_after == 3
    assert caught.value.status == 429


async def test_answers_that_are_not_whnode_answers(record: SignedRecord) -> None:
    async def html(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>captive portal</html>", content_type="text/html")

    async def teapot(request: web.Request) -> web.StreamResponse:
        return web.Response(status=418, text="no")

    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="bad gateway")

    async with raw_node(html) as node, Client([node]) as client:
        with pytest.raises(NodeBadAnswer, match="text/html"):
            await client.get_menu(DISPENSARY)
    async with raw_node(teapot) as node, Client([node]) as client:
        with pytest.raises(NodeBadAnswer, match="418"):
            await client.get_menu(DISPENSARY)
    async with raw_node(broken) as node, Client([node]) as client:
        with pytest.raises(NodeProblem) as caught:
            await client.get_menu(DISPENSARY)
    assert caught.value.status == 502
    async with Client([dead_url()]) as client:
        with pytest.raises(NodeUnreachable):
            await client.get_menu(DISPENSARY)


async def test_history_is_verified_newest_first(
    honest: ApiServer, key: SigningKey, record: SignedRecord
) -> None:
    older = make_record(make_menu(fetched_at_ms=record.fetched_at_ms - 60_000), key)
    honest.context.service.add(older)
    async with Client([honest.url]) as client:
        records = await client.history(DISPENSARY, limit=10)
    assert [r.encoded for r in records] == [record.encoded, older.encoded]
    # Flip a bit of the signature's last byte: replacing it with a constant
    # would leave the record unchanged whenever the byte already had that value.
    flipped = older.encoded[:-1] + bytes([older.encoded[-1] ^ 1])
    assert flipped != older.encoded
    forged = dataclasses.replace(older, encoded=flipped)
    honest.context.service.records[DISPENSARY] = [record, forged]
    async with Client([honest.url]) as client:
        with pytest.raises(RecordError):
            await client.history(DISPENSARY)


async def test_node_info_and_dispensaries(honest: ApiServer) -> None:
    async with Client([dead_url(), honest.url]) as client:
        info = await client.node_info()
        dispensaries = await client.dispensaries()
    assert info["node_id"] == honest.context.node_id
    assert dispensaries == sorted([DISPENSARY, OTHER])


async def test_misuse_is_refused_before_any_request() -> None:
    with pytest.raises(UsageError):
        Client([])
    with pytest.raises(UsageError):
        Client("ftp://example.org")
    with pytest.raises(UsageError):
        Client("http://127.0.0.1:1", timeout=0)
    async with Client(dead_url()) as client:
        with pytest.raises(ModelError):
            await client.get_menu("not an id")
        with pytest.raises(UsageError):
            await client.get_menu(DISPENSARY, max_age=5, at=1)
        with pytest.raises(UsageError):
            await client.get_menu(DISPENSARY, max_age=-1)
        with pytest.raises(UsageError):
            await client.history(DISPENSARY, limit=0)
        assert client.statistics().requests == 0


async def test_a_shared_session_is_left_open(honest: ApiServer) -> None:
    async with Client([honest.url], session=honest.http) as client:
        await client.get_menu(DISPENSARY)
    assert not honest.http.closed


def test_public_names_are_pinned() -> None:
    assert whnode.client.__all__ == [
        "Client",
        "ClientStatistics",
        "NodeBadAnswer",
        "NodeError",
        "NodeProblem",
        "NodeRateLimited",
        "NodeUnreachable",
        "VerifiedMenu",
    ]
    public = sorted(name for name in vars(Client) if not name.startswith("_"))
    assert public == [
        "aclose",
        "changes",
        "dispensaries",
        "events",
        "get_menu",
        "history",
        "node_info",
        "nodes",
        "products",
        "search",
        "statistics",
    ]
    assert whnode.Client is Client
    for name in whnode.client.__all__:
        value = getattr(whnode.client, name)
        assert value.__doc__, name
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, whnode.RemoteError), name
