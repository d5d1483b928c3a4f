"""The ingress of a node under abuse: peer rate limits per IP, body caps on every route,
clients hanging up mid-body, quiet logs for what clients control.

Real servers on loopback, real sockets; the peer routes run over an in-memory handler
(tests/api/peer_support.py) since the service behind them is not what is tested here.
"""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from tests.api.peer_support import PeerServer
from whnode import limits
from whnode.api.server import ConnectionLimits, ingress_of
from whnode.peer.ratelimit import PeerRateLimiter
from whnode.testing.clock import eventually

DISPENSARY = "weedmaps:ultra-health-gallup"


async def test_a_new_announced_node_id_per_request_still_gets_429() -> None:
    # loopback is exempt from the IP bucket by default (local networks share 127.0.0.1);
    # this server treats it as any remote address
    limiter = PeerRateLimiter(ip_rate=5, ip_burst=20, exempt_loopback=False)
    async with PeerServer(limiter) as server:
        statuses = []
        retry_after = []
        for _ in range(60):
            headers = {"X-Whnode-Node": os.urandom(20).hex()}
            async with server.http.get(f"/peer/v1/records/{DISPENSARY}", headers=headers) as r:
                statuses.append(r.status)
                if r.status == 429:
                    retry_after.append(r.headers.get("Retry-After"))
                    assert (await r.json())["kind"] == "rate_limited"
    assert statuses[:20] == [404] * 20  # the burst, then the IP's bucket is empty
    assert statuses.count(429) >= 35
    assert retry_after
    assert all(value is not None and int(value) >= 1 for value in retry_after)
    assert limiter.statistics().refused_by_ip == statuses.count(429)


async def test_one_announced_node_is_limited_inside_its_ip() -> None:
    limiter = PeerRateLimiter(node_rate=1, node_burst=5, exempt_loopback=True)
    async with PeerServer(limiter) as server:
        node = {"X-Whnode-Node": "ab" * 20}
        other = {"X-Whnode-Node": "cd" * 20}
        path = f"/peer/v1/records/{DISPENSARY}"
        seen = []
        for _ in range(8):
            async with server.http.get(path, headers=node) as r:
                seen.append(r.status)
        async with server.http.get(path, headers=other) as r:
            other_status = r.status
    assert seen[:5] == [404] * 5
    assert seen[5:] == [429] * 3
    assert other_status == 404  # another node behind the same address keeps its share


def test_ipv6_peers_share_their_64() -> None:
    limiter = PeerRateLimiter(ip_rate=1, ip_burst=3)
    now = 100.0
    waits = [limiter.check(f"2001:db8:1:2::{i:x}", f"{i:040x}", now) for i in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert all(wait > 0 for wait in waits[3:])
    assert limiter.check("2001:db8:1:3::1", "x", now) == 0.0  # another /64


@pytest.mark.parametrize("size", [4 * 1024 * 1024, 6 * 1024 * 1024])
async def test_fill_with_a_huge_body_is_413(size: int) -> None:
    async with PeerServer() as server:
        body = b"x" * size
        async with server.http.post(f"/peer/v1/fill/{DISPENSARY}", data=body) as r:
            assert r.status == 413
            assert (await r.json())["kind"] == "too_large"

        async def chunks() -> object:
            for _ in range(size // 65536):
                yield b"y" * 65536

        async with server.http.post(f"/peer/v1/fill/{DISPENSARY}", data=chunks()) as r:
            assert r.status == 413  # chunked: no length declared, refused while read
        assert server.handler.fills == 0


async def test_every_peer_route_caps_its_body() -> None:
    async with PeerServer() as server:
        big = b"z" * (limits.MAX_UNUSED_BODY_BYTES + 1)
        for method, path in (
            ("GET", f"/peer/v1/records/{DISPENSARY}"),
            ("GET", f"/peer/v1/history/{DISPENSARY}"),
            ("POST", f"/peer/v1/fill/{DISPENSARY}"),
        ):
            async with server.http.request(method, path, data=big) as r:
                assert r.status == 413, (method, path)
        record = b"r" * (limits.MAX_RECORD_BYTES + 1)
        async with server.http.put(f"/peer/v1/records/{DISPENSARY}", data=record) as r:
            assert r.status == 413


async def _hang_up_mid_chunked_put(port: int) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"PUT /peer/v1/records/{DISPENSARY} HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n1000\r\n".encode()
        + b"a" * 2000
    )
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()


async def _broken_chunk_framing(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"PUT /peer/v1/records/{DISPENSARY} HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n10\r\n".encode()
        + b"a" * 16
    )
    await writer.drain()
    await asyncio.sleep(0.05)  # the handler is reading the body by now
    writer.write(b"\r\nzz\r\n")
    await writer.drain()
    await asyncio.wait_for(reader.read(), 5)
    writer.close()


async def test_a_client_hanging_up_mid_put_is_no_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # the broken framing stalls the body (aiohttp's parser stops feeding it): the body's
    # inactivity timeout ends the request; short here, limits.BODY_IDLE_SECONDS in a node
    async with PeerServer(body_idle_timeout=0.3) as server:
        for _ in range(10):
            await _hang_up_mid_chunked_put(server.port)
            await _broken_chunk_framing(server.port)
        for _ in range(50):
            if server.handler.errors["client_disconnected"] >= 20:
                break
            await asyncio.sleep(0.02)
        errors = dict(server.handler.errors)
    assert errors.get("internal", 0) == 0, errors
    assert errors.get("client_disconnected", 0) == 20, errors
    assert server.ingress.statistics().server_errors == 0
    assert not server.handler.records
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


async def _send_raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


MALFORMED = {
    "line_too_long": b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "too_many_headers": b"GET / HTTP/1.1\r\n"
    + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
    + b"\r\n",
    "bad_chunking": b"PUT /peer/v1/records/weedmaps:x HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    "bad_method": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
}


async def test_malformed_http_is_counted_by_kind_and_never_logged_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with PeerServer() as server:
        for _ in range(30):
            for request in MALFORMED.values():
                answer = await _send_raw(server.port, request)
                assert answer[:12] in (b"HTTP/1.1 400", b"HTTP/1.0 400", b"")
        counted = server.ingress.statistics().malformed_by_kind
        loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
        assert not loud, [r.getMessage()[:200] for r in loud]
        server.ingress.flush_summary()  # what the next request after the window would log
    for kind in MALFORMED:
        assert counted.get(kind) == 30, counted
    summaries = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(summaries) == 1
    assert "line_too_long=30" in summaries[0].getMessage()
    assert server.ingress.statistics().server_errors == 0


def test_the_summary_is_rate_limited() -> None:
    from whnode.api.ingress import HttpIngress

    now = [0.0]
    ingress = HttpIngress(summary_interval=60, clock=lambda: now[0])
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    ingress.addHandler(handler)
    ingress.propagate = False
    for step in range(1000):  # 1,000 bad requests over 100 s: two summaries, not 1,000 lines
        now[0] = step * 0.1
        ingress.exception("Error handling request", exc_info=ValueError("x"))  # server fault
        ingress.count("bad_header")
    errors = [r for r in records if r.levelno >= logging.ERROR]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(errors) == 1000  # a server fault stays an ERROR with its traceback
    assert all(r.exc_info for r in errors)
    assert len(warnings) == 1
    assert "bad_header=600" in warnings[0].getMessage()


# ---------------------------------------------------------------------- connections
async def _open(port: int, first: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if first:
        writer.write(first)
        await writer.drain()
    return reader, writer


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(), seconds)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.")


async def _served(port: int, keep: list[asyncio.StreamWriter] | None = None) -> bool:
    """Whether a new client gets an answer (its connection kept open in ``keep``)."""
    reader, writer = await _open(
        port, f"GET /peer/v1/records/{DISPENSARY} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
    except (TimeoutError, ConnectionError):
        return False
    finally:
        if keep is None:
            writer.close()
        else:
            keep.append(writer)
    return line.startswith(b"HTTP/1.1 404")


async def test_slow_headers_and_idle_connections_are_closed() -> None:
    limits_ = ConnectionLimits(header_timeout=0.5, idle_timeout=1.0)
    async with PeerServer(limits=limits_) as server:
        slow = [await _open(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n") for _ in range(20)]
        idle = [await _open(server.port) for _ in range(20)]
        started = asyncio.get_running_loop().time()

        async def trickle() -> None:  # bytes keep coming: they must not extend the deadline
            for _ in range(10):
                await asyncio.sleep(0.1)
                for _, writer in slow:
                    if not writer.is_closing():
                        writer.write(b"X-A: b\r\n")

        trickler = asyncio.create_task(trickle())
        slow_closed = await asyncio.gather(*(_closed_within(r, 3) for r, _ in slow))
        slow_elapsed = asyncio.get_running_loop().time() - started
        idle_closed = await asyncio.gather(*(_closed_within(r, 3) for r, _ in idle))
        trickler.cancel()
        events = server.ingress.statistics().connections_by_event
        assert await _served(server.port)
    assert all(slow_closed)
    assert all(idle_closed)
    assert slow_elapsed < 1.5
    assert events.get("header_timeout") == 20


async def test_at_the_cap_idle_connections_are_shed_for_new_clients() -> None:
    limits_ = ConnectionLimits(max_connections=16, idle_timeout=60, exempt_loopback=True)
    async with PeerServer(limits=limits_) as server:
        idle = [await _open(server.port) for _ in range(16)]
        await eventually(lambda: server.ingress.statistics().open_connections == 16)
        kept: list[asyncio.StreamWriter] = []
        for _ in range(10):
            assert await _served(server.port, kept)
        events = server.ingress.statistics().connections_by_event
        shed = [await _closed_within(reader, 0.2) for reader, _ in idle]
    assert events.get("shed_idle") == 10
    assert shed[:10] == [True] * 10  # the oldest idle ones first
    assert shed[10:] == [False] * 6


async def test_the_per_ip_cap_refuses_when_nothing_is_idle() -> None:
    limits_ = ConnectionLimits(max_connections_per_ip=4, header_timeout=30, exempt_loopback=False)
    async with PeerServer(limits=limits_) as server:
        # four connections mid-headers: none idle, so a fifth is refused, not served
        busy = [await _open(server.port, b"GET / HTTP/1.1\r\n") for _ in range(4)]
        await eventually(lambda: server.ingress.statistics().open_connections == 4)
        assert not await _served(server.port)
        assert server.ingress.statistics().connections_by_event.get("refused_per_ip") == 1
        for _, writer in busy:
            writer.close()
        await eventually(lambda: server.ingress.statistics().open_connections == 0)
        assert await _served(server.port)


async def test_a_client_flooding_past_its_rate_loses_its_connections_for_a_while() -> None:
    from tests.api.support import ApiServer, ContextDouble, ServiceDouble
    from whnode.config import ApiConfig, Config

    config = Config(api=ApiConfig(requests_per_second=1, burst=1))
    async with ApiServer(ContextDouble(ServiceDouble(), config=config)) as server:
        ingress = ingress_of(server.app)
        ingress.penalty_threshold = 30
        ingress.penalty_seconds = 2.0
        port = int(server.url.rsplit(":", 1)[1])
        reader, writer = await _open(port)
        statuses = []
        for _ in range(40):  # one keep-alive connection, far over its rate
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            line = await reader.readline()
            if not line:
                break  # the connection was closed by the penalty
            statuses.append(line.split()[1])
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(h.split(b":")[1])
                for h in head.split(b"\r\n")
                if h.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
        # the burst, then 429s until the 30th refusal closes the connection
        assert statuses == [b"200"] + [b"429"] * 29
        # new connections get nowhere meanwhile: the kernel drops their SYNs (Linux)
        assert not await _served_public(port)
        events = ingress.statistics().connections_by_event
        assert events.get("penalized") == 1
        # the penalty ends (penalty_seconds, on the ingress's timer): served again
        await eventually(lambda: _served_public(port), timeout=30)


async def _served_public(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(
            _open(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0.8
        )
        line = await asyncio.wait_for(reader.readline(), 2)
    except (ConnectionError, TimeoutError):
        return False
    writer.close()
    return line.startswith(b"HTTP/1.1 ")
