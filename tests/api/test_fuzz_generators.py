"""The generators of ``whnode bench fuzz`` under hypothesis (small example counts).

The bench sends a million of these at a node; here each kind gets a few hundred, drawn by
hypothesis (which shrinks a failure to its seed), against the same real entry points: a
listening DHT node's datagram handler, a real HTTP server over TCP, record acceptance and
the adapters' parsers. A failure names the seed: ``whnode bench fuzz --seed`` does not
replay it, but the generator called with ``random.Random(seed)`` does.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.test_hardening import threaded_server  # noqa: F401 (a fixture)
from whnode.bench.fuzz import (
    collect_pages,
    datagram_input,
    http_input,
    page_input,
    record_input,
)
from whnode.dht import DhtConfig, DhtNode
from whnode.dht.contact import PublicKey
from whnode.record.acceptance import TrustPolicy, accept_record
from whnode.record.codec import content_hash, encode_menu
from whnode.record.exceptions import RecordError
from whnode.record.keys import SigningKey
from whnode.record.signed import sign_record
from whnode.testing.factories import make_menu
from whnode.upstream.exceptions import UpstreamError
from whnode.upstream.pool import parse_menu_job

SEEDS = st.integers(min_value=0, max_value=2**32)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def dht_protocol() -> Iterator[tuple[DhtNode, object, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    config = DhtConfig(
        ip_limit_exempts_loopback=False,
        datagrams_per_source_per_second=1e9,
        datagram_burst_per_source=10**9,
        datagrams_per_ip_per_second=1e9,
        datagram_burst_per_ip=10**9,
        flood_block_seconds=0,
    )
    node = DhtNode(PublicKey(bytes(32)), config)
    loop.run_until_complete(node.listen("127.0.0.1", 0))
    yield node, node._protocol, loop
    loop.run_until_complete(node.aclose())
    loop.close()


@FUZZ
@given(seed=SEEDS)
def test_generated_datagrams_never_raise_nor_log_tracebacks(
    dht_protocol: tuple[DhtNode, object, asyncio.AbstractEventLoop],
    seed: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node, protocol, loop = dht_protocol
    r = random.Random(seed)
    before = node.statistics().handler_errors

    async def feed() -> None:  # on the loop, as datagram_received always runs
        for _ in range(20):
            source = (f"127.{r.randint(4, 250)}.{r.randint(0, 255)}.{r.randint(1, 254)}", 4000)
            protocol.datagram_received(datagram_input(r), source)  # type: ignore[attr-defined]
        await asyncio.sleep(0)

    loop.run_until_complete(feed())
    assert node.statistics().handler_errors == before
    assert not [rec for rec in caplog.records if rec.exc_info or rec.levelno >= logging.ERROR]


@pytest.fixture(scope="module")
def valid_record() -> bytes:
    menu = make_menu(n_products=5)
    return sign_record(
        payload=encode_menu(menu),
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=menu.fetched_at_ms,
        content_hash=content_hash(menu),
        signing_key=SigningKey.generate(),
    ).encoded


@FUZZ
@given(seed=SEEDS)
def test_generated_records_raise_only_record_errors(valid_record: bytes, seed: int) -> None:
    data = record_input(random.Random(seed), valid_record)
    try:
        accept_record(data, now_ms=1_700_000_000_000, policy=TrustPolicy.open())
    except RecordError:
        pass


@pytest.fixture(scope="module")
def pages() -> list[tuple[str, str, bytes]]:
    from whnode.sandbox import SandboxConfig, run_sandbox

    async def collect() -> list[tuple[str, str, bytes]]:
        async with run_sandbox(SandboxConfig()) as sandbox:
            return await collect_pages(sandbox.base_url, list(sandbox.dispensaries))

    return asyncio.run(collect())


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS)
def test_generated_pages_raise_only_upstream_errors(
    pages: list[tuple[str, str, bytes]], seed: int
) -> None:
    r = random.Random(seed)
    vendor, dispensary, sample = r.choice(pages)
    try:
        parse_menu_job(vendor, dispensary, [page_input(r, sample)], 1_700_000_000_000)
    except UpstreamError:
        pass


@settings(max_examples=150, deadline=None)
@given(seed=SEEDS)
def test_generated_http_requests_never_get_a_500(threaded_server: int, seed: int) -> None:  # noqa: F811
    raw = http_input(random.Random(seed))
    with socket.create_connection(("127.0.0.1", threaded_server), timeout=10) as sock:
        try:
            sock.sendall(raw)
            line = sock.makefile("rb").readline()
        except ConnectionError:
            return  # the server may close on garbage before reading it all
    parts = line.split()
    if len(parts) >= 2 and parts[1].isdigit():
        assert int(parts[1]) < 500, (raw[:200], line)
