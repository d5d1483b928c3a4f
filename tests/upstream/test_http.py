"""The upstream HTTP client against small real aiohttp servers on loopback (port 0)."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
import pickle
import random
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

import whnode.upstream
from whnode.errors import ConfigError, RemoteError, UsageError
from whnode.upstream.breaker import Admission, BreakerState, CircuitBreaker
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamBadResponse,
    UpstreamCircuitOpen,
    UpstreamError,
    UpstreamParseError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from whnode.upstream.http import (
    DEFAULT_USER_AGENT,
    UpstreamHttp,
    UpstreamHttpConfig,
    parse_retry_after,
)
from whnode.upstream.ratelimit import HostPace

DISPENSARY = "weedmaps:test-store"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"data": []}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class ScriptedUpstream:
    """Answers each request with the next scripted reply (then ``default``); records arrivals."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self.arrivals: list[float] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.url = ""
        self.streamed = 0
        self.gate: asyncio.Event | None = None
        self._arrival = asyncio.Event()

    def hold(self) -> asyncio.Event:
        """Hold every reply from now on until the returned event is set."""
        self.gate = asyncio.Event()
        return self.gate

    async def wait_for_requests(self, count: int) -> None:
        """Return once ``count`` requests have arrived."""
        while self.count < count:
            self._arrival.clear()
            await self._arrival.wait()

    @property
    def count(self) -> int:
        return len(self.arrivals)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append(asyncio.get_running_loop().time())
        self._arrival.set()
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if request.path == "/stream":
                return await self._stream(request)
            reply = self.replies.popleft() if self.replies else self.default
            if reply.delay:
                await asyncio.sleep(reply.delay)
            return web.Response(
                status=reply.status,
                body=reply.body,
                content_type=reply.content_type,
                headers=reply.headers,
            )
        finally:
            self.in_flight -= 1

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b"[" + b"1," * 32 * 1024
        try:
            for _ in range(320):  # 20 MB if nobody stops us
                await response.write(chunk)
                self.streamed += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response


@pytest.fixture
async def upstream() -> AsyncIterator[ScriptedUpstream]:
    server = ScriptedUpstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


ClientFactory = Callable[..., UpstreamHttp]


class BreakerClock:
    """The circuit breakers' clock, moved by hand (``UpstreamHttp(breaker_clock=...)``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[UpstreamHttp] = []

    def make(**overrides: Any) -> UpstreamHttp:
        settings: dict[str, Any] = {
            "requests_per_second": 1000.0,
            "burst": 1000,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
            "request_timeout": 5.0,
        }
        breaker_clock = overrides.pop("breaker_clock", None)
        settings.update(overrides)
        client = UpstreamHttp(
            UpstreamHttpConfig(**settings), rng=random.Random(7), breaker_clock=breaker_clock
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def get(client: UpstreamHttp, url: str, **kwargs: Any) -> bytes:
    return await client.request("GET", url, source="weedmaps", dispensary_id=DISPENSARY, **kwargs)


# --------------------------------------------------------------------------- answers
async def test_returns_the_body_and_introduces_itself(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.script(Reply(body=b'{"data": [1, 2, 3]}'))
    client = make_client()
    body = await get(client, f"{upstream.url}/menu", headers={"X-Api-Key": "k"})
    assert body == b'{"data": [1, 2, 3]}'
    sent = upstream.headers[0]
    assert sent["User-Agent"] == DEFAULT_USER_AGENT
    assert DEFAULT_USER_AGENT.startswith("whnode/")
    assert "+https://" in DEFAULT_USER_AGENT
    assert "peer-to-peer menu cache" in DEFAULT_USER_AGENT
    assert sent["Accept"] == "application/json"
    assert sent["X-Api-Key"] == "k"
    stats = client.statistics()
    assert (stats.requests, stats.ok, stats.retries) == (1, 1, 0)
    assert stats.bytes_received == len(body)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.requests = 5  # type: ignore[misc]


async def test_user_agent_is_configurable(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    client = make_client(user_agent="whnode/9 (+https://example.org; test)")
    await get(client, f"{upstream.url}/menu")
    assert upstream.headers[0]["User-Agent"] == "whnode/9 (+https://example.org; test)"


async def test_server_errors_are_retried_then_succeed(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.script(Reply(status=500), Reply(status=502), Reply(body=b'{"ok": 1}'))
    client = make_client(max_retries=3)
    assert await get(client, f"{upstream.url}/menu") == b'{"ok": 1}'
    assert upstream.count == 3
    stats = client.statistics()
    assert (stats.requests, stats.retries, stats.bad_responses, stats.ok) == (3, 2, 2, 1)


async def test_server_errors_give_up_after_max_retries(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(status=503)
    client = make_client(max_retries=2)
    with pytest.raises(UpstreamBadResponse) as caught:
        await get(client, f"{upstream.url}/menu")
    assert caught.value.status == 503
    assert upstream.count == 3


@pytest.mark.parametrize("status", [400, 404, 410, 422])
async def test_client_errors_are_not_retried(
    upstream: ScriptedUpstream, make_client: ClientFactory, status: int
) -> None:
    upstream.default = Reply(status=status)
    client = make_client()
    with pytest.raises(UpstreamBadResponse) as caught:
        await get(client, f"{upstream.url}/menu")
    assert caught.value.status == status
    assert upstream.count == 1
    assert client.statistics().hosts[0].consecutive_failures == 0


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=403, body=b"<html>denied</html>", content_type="text/html"),
        Reply(status=406, body=b"Not Acceptable", content_type="text/plain"),
        Reply(status=401, body=b"{}"),
        Reply(
            status=200,
            body=b"<!DOCTYPE html><title>Just a moment</title>",
            content_type="text/html",
        ),
        Reply(status=200, body=b"\n  <html><body>captcha</body></html>"),  # says JSON, is HTML
    ],
    ids=["403", "406", "401", "html-200", "html-as-json"],
)
async def test_block_pages_are_refusals_and_not_retried(
    upstream: ScriptedUpstream, make_client: ClientFactory, reply: Reply
) -> None:
    upstream.default = reply
    client = make_client(max_retries=3)
    with pytest.raises(UpstreamRefused) as caught:
        await get(client, f"{upstream.url}/menu")
    assert upstream.count == 1
    error = caught.value
    assert (error.source, error.dispensary_id) == ("weedmaps", DISPENSARY)
    assert error.host == upstream.url.removeprefix("http://")
    assert "weedmaps" in str(error)
    assert DISPENSARY in str(error)
    assert client.statistics().refused == 1
    assert client.statistics().hosts[0].consecutive_failures == 1


async def test_redirects_are_not_followed(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(status=302, headers={"Location": "https://consent.example/x"})
    client = make_client()
    with pytest.raises(UpstreamBadResponse, match=r"consent\.example"):
        await get(client, f"{upstream.url}/menu")
    assert upstream.count == 1


async def test_empty_body_is_a_bad_response(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(body=b"  \n")
    client = make_client(max_retries=1)
    with pytest.raises(UpstreamBadResponse, match="empty body"):
        await get(client, f"{upstream.url}/menu")
    assert upstream.count == 2


# --------------------------------------------------------------------------- size, truncation
async def test_declared_oversize_body_is_refused_without_reading(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(body=b"[" + b"0," * 50_000 + b"0]")
    client = make_client(max_response_bytes=10_000)
    with pytest.raises(UpstreamBadResponse, match="cap"):
        await get(client, f"{upstream.url}/menu")
    assert upstream.count == 1  # not retried
    assert client.statistics().bytes_received == 0


async def test_streamed_body_stops_at_the_cap(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    client = make_client(max_response_bytes=256 * 1024)
    started = time.monotonic()
    with pytest.raises(UpstreamBadResponse, match="cap"):
        await get(client, f"{upstream.url}/stream")
    assert time.monotonic() - started < 2.0
    await asyncio.sleep(0.2)
    # The server could push what the socket buffers hold, far from its 20 MB.
    assert upstream.streamed < 12 * 1024 * 1024


async def test_truncated_body_is_a_clear_error() -> None:
    """The server promises 5000 bytes, sends 20 and hangs up."""
    hits = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hits
        hits += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000\r\n\r\n" + b'{"data": [1, 2, 3, '
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = UpstreamHttp(UpstreamHttpConfig(max_retries=1, backoff_base=0.01))
    try:
        with pytest.raises(UpstreamBadResponse, match="cut short") as caught:
            await get(client, f"http://127.0.0.1:{port}/menu")
        assert caught.value.host == f"127.0.0.1:{port}"
        assert hits == 2  # retried once: a cut is usually transient
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_connection_refused_is_unavailable(make_client: ClientFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(max_retries=1)
    with pytest.raises(UpstreamUnavailable) as caught:
        await get(client, f"http://127.0.0.1:{port}/menu")
    assert not isinstance(caught.value, UpstreamCircuitOpen)
    assert client.statistics().unavailable == 2


# --------------------------------------------------------------------------- time
async def test_request_timeout_is_retried_then_raised(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(delay=2.0)
    client = make_client(request_timeout=0.15, max_retries=1)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match=r"within 0\.15 s"):
        await get(client, f"{upstream.url}/menu")
    assert time.monotonic() - started < 1.0
    assert upstream.count == 2
    assert client.statistics().timeouts == 2


async def test_requests_never_run_past_the_deadline(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(delay=3.0)
    client = make_client(request_timeout=10.0, max_retries=5)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.3
    with pytest.raises(UpstreamTimeout, match="deadline"):
        await get(client, f"{upstream.url}/menu", deadline=deadline)
    assert loop.time() - deadline < 0.15
    assert upstream.count == 1
    # A deadline already passed sends nothing.
    with pytest.raises(UpstreamTimeout):
        await get(client, f"{upstream.url}/menu", deadline=loop.time() - 1)
    assert upstream.count == 1


async def test_deadline_scope_bounds_requests_in_child_tasks(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(delay=3.0)
    client = make_client(request_timeout=10.0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.3
    with client.deadline_scope(deadline):
        tasks = [asyncio.create_task(get(client, f"{upstream.url}/p{i}")) for i in range(3)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, UpstreamTimeout) for result in results)
    assert loop.time() - deadline < 0.15


async def test_backoff_never_sleeps_past_the_deadline(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(status=500)
    client = make_client(backoff_base=5.0, backoff_max=5.0, max_retries=5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamBadResponse):
        await get(client, f"{upstream.url}/menu", deadline=started + 0.2)
    assert loop.time() - started < 0.3


# --------------------------------------------------------------------------- pace
def assert_paced(arrivals: list[float], *, rate: float, burst: int, slack: float = 0.02) -> None:
    """Over any window of T seconds at most burst + rate*T requests arrived."""
    times = sorted(arrivals)
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            window = times[j] - start
            assert j - i + 1 <= burst + rate * (window + slack), (i, j, window)


async def test_per_host_rate_is_never_exceeded(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    client = make_client(requests_per_second=10.0, burst=3, concurrency_per_host=16)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(get(client, f"{upstream.url}/p{i}") for i in range(12)))
    assert upstream.count == 12
    # Arrivals are stamped by the server: allow 0.1 s of scheduling jitter (one request).
    assert_paced(upstream.arrivals, rate=10.0, burst=3, slack=0.1)
    assert loop.time() - started >= (12 - 3) / 10.0 - 0.02


async def test_pace_wait_past_the_deadline_fails_at_once(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    client = make_client(requests_per_second=1.0, burst=1)
    loop = asyncio.get_running_loop()
    await get(client, f"{upstream.url}/a")
    started = loop.time()
    with pytest.raises(UpstreamRateLimited) as caught:
        await get(client, f"{upstream.url}/b", deadline=started + 0.3)
    assert loop.time() - started < 0.1
    assert caught.value.retry_after is not None
    assert 0.5 < caught.value.retry_after <= 1.0
    assert upstream.count == 1


async def test_concurrency_per_host_is_capped(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(delay=0.1)
    client = make_client(concurrency_per_host=2)
    await asyncio.gather(*(get(client, f"{upstream.url}/p{i}") for i in range(6)))
    assert upstream.peak_in_flight == 2
    assert client.statistics().hosts[0].peak_in_flight == 2


async def test_429_retry_after_seconds_is_honoured(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.script(Reply(status=429, headers={"Retry-After": "1"}))
    client = make_client()
    assert await get(client, f"{upstream.url}/menu") == upstream.default.body
    assert upstream.count == 2
    assert upstream.arrivals[1] - upstream.arrivals[0] >= 1.0
    stats = client.statistics()
    assert (stats.rate_limited, stats.retries, stats.ok) == (1, 1, 1)


async def test_retry_after_pauses_every_request_to_the_host(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.script(Reply(status=429, headers={"Retry-After": "1"}))
    client = make_client()
    first = asyncio.create_task(get(client, f"{upstream.url}/a"))
    while upstream.count < 1:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await get(client, f"{upstream.url}/b")
    await first
    assert upstream.count == 3
    assert min(upstream.arrivals[1:]) - upstream.arrivals[0] >= 1.0


async def test_429_retry_after_http_date_is_honoured(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    upstream.script(
        Reply(status=429, headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)})
    )
    client = make_client()
    await get(client, f"{upstream.url}/menu")
    assert upstream.count == 2
    assert 1.0 <= upstream.arrivals[1] - upstream.arrivals[0] < 2.5


async def test_retry_after_beyond_the_deadline_fails_at_once(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.script(Reply(status=429, headers={"Retry-After": "30"}))
    client = make_client()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamRateLimited) as caught:
        await get(client, f"{upstream.url}/menu", deadline=started + 5.0)
    assert loop.time() - started < 0.5
    assert caught.value.retry_after == 30.0
    assert caught.value.status == 429
    assert upstream.count == 1


async def test_retry_after_beyond_the_cap_fails_without_deadline(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.script(Reply(status=503, headers={"Retry-After": "600"}))
    client = make_client(max_retry_after=60.0)
    with pytest.raises(UpstreamUnavailable) as caught:
        await get(client, f"{upstream.url}/menu")
    assert caught.value.retry_after == 600.0
    assert upstream.count == 1


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after(date, now) == pytest.approx(90.0, abs=1.0)
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2020"):
        assert parse_retry_after(bad, now) is None


# --------------------------------------------------------------------------- breaker
async def test_breaker_opens_refuses_without_sending_then_recovers(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(status=500)
    clock = BreakerClock()
    client = make_client(
        max_retries=0, breaker_failures=3, breaker_cooldown=30.0, breaker_clock=clock
    )
    url = f"{upstream.url}/menu"
    for _ in range(3):
        with pytest.raises(UpstreamBadResponse):
            await get(client, url)
    assert client.statistics().hosts[0].breaker is BreakerState.OPEN
    with pytest.raises(UpstreamCircuitOpen) as caught:
        await get(client, url)
    assert caught.value.retry_after == 30.0
    assert upstream.count == 3  # nothing sent while open
    assert client.statistics().circuit_open == 1
    clock.now += 29.9
    with pytest.raises(UpstreamCircuitOpen):
        await get(client, url)
    assert upstream.count == 3

    clock.now += 0.1  # the cooldown is over
    upstream.default = Reply(body=b'{"back": true}')
    assert await get(client, url) == b'{"back": true}'  # the probe
    host = client.statistics().hosts[0]
    assert (host.breaker, host.consecutive_failures, host.breaker_opened) == (
        BreakerState.CLOSED,
        0,
        1,
    )


async def test_failed_probe_reopens_the_breaker(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(status=403)
    clock = BreakerClock()
    client = make_client(breaker_failures=1, breaker_cooldown=20.0, breaker_clock=clock)
    url = f"{upstream.url}/menu"
    with pytest.raises(UpstreamRefused):
        await get(client, url)
    clock.now += 20.0
    with pytest.raises(UpstreamRefused):
        await get(client, url)  # the probe, refused again
    with pytest.raises(UpstreamCircuitOpen):
        await get(client, url)
    assert upstream.count == 2
    assert client.statistics().hosts[0].breaker_opened == 2


async def test_half_open_lets_exactly_one_probe_through(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(status=500)
    clock = BreakerClock()
    client = make_client(
        max_retries=0, breaker_failures=1, breaker_cooldown=10.0, breaker_clock=clock
    )
    url = f"{upstream.url}/menu"
    with pytest.raises(UpstreamBadResponse):
        await get(client, url)
    clock.now += 10.0
    upstream.default = Reply()
    held = upstream.hold()
    probe = asyncio.create_task(get(client, url))
    await upstream.wait_for_requests(2)  # the probe reached the server and is held there
    with pytest.raises(UpstreamCircuitOpen, match="probe"):
        await get(client, url)
    held.set()
    await probe
    await get(client, url)
    assert upstream.count == 3


async def test_a_failure_streak_on_retries_opens_the_breaker_mid_call(
    upstream: ScriptedUpstream, make_client: ClientFactory
) -> None:
    upstream.default = Reply(status=502)
    client = make_client(max_retries=10, breaker_failures=3, breaker_cooldown=30.0)
    with pytest.raises(UpstreamCircuitOpen) as caught:
        await get(client, f"{upstream.url}/menu")
    assert upstream.count == 3
    assert isinstance(caught.value.__cause__, UpstreamBadResponse)
    assert caught.value.__cause__.status == 502


def state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state


def test_breaker_rules_in_memory() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown=10.0)
    first = breaker.admit(0.0)
    breaker.failure(first, 0.0)
    breaker.success(breaker.admit(0.5))  # a success resets the streak
    for at in (1.0, 2.0):
        breaker.failure(breaker.admit(at), at)
    assert state(breaker) is BreakerState.OPEN
    assert breaker.admit(5.0) == Admission(allowed=False, retry_after=7.0)
    probe = breaker.admit(12.0)
    assert probe.probe
    assert state(breaker) is BreakerState.HALF_OPEN
    assert not breaker.admit(12.1).allowed  # one probe at a time
    breaker.abandon(probe)  # no verdict: the next caller probes
    probe = breaker.admit(12.2)
    assert probe.probe
    breaker.success(probe)
    assert state(breaker) is BreakerState.CLOSED


def test_pace_in_memory() -> None:
    pace = HostPace(rate=2.0, burst=2, now=0.0)
    pace.take(0.0)
    pace.take(0.0)
    assert pace.delay(0.0) == pytest.approx(0.5)
    assert pace.delay(0.25) == pytest.approx(0.25)
    assert pace.delay(0.5) == 0.0
    pace.take(0.5)
    assert pace.delay(0.5) == pytest.approx(0.5)
    assert pace.delay(100.0) == 0.0  # tokens accrue up to the burst only
    pace.take(100.0)
    pace.take(100.0)
    assert pace.delay(100.0) == pytest.approx(0.5)
    pace.pause(110.0)
    assert pace.delay(109.0) == pytest.approx(1.0)  # tokens accrued, but paused
    assert pace.delay(110.0) == 0.0


# --------------------------------------------------------------------------- secrets, api
async def test_credentials_never_reach_logs_or_errors(
    upstream: ScriptedUpstream, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.default = Reply(status=500)
    client = make_client(max_retries=2)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UpstreamBadResponse) as caught:
        await get(
            client,
            f"{upstream.url}/menu",
            params={"apikey": "QUERY-SECRET"},
            headers={"x-algolia-api-key": "HEADER-SECRET"},
        )
    assert upstream.headers[0]["x-algolia-api-key"] == "HEADER-SECRET"
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("whnode")]
    assert ours, "retries are logged"
    text = "\n".join([*ours, caplog.text, str(caught.value), repr(caught.value)])
    assert "SECRET" not in text


async def test_invalid_url_and_closed_client_are_usage_errors(make_client: ClientFactory) -> None:
    client = make_client()
    with pytest.raises(UsageError):
        await get(client, "ftp://example.org/menu")
    await client.aclose()
    with pytest.raises(UsageError):
        await get(client, "http://127.0.0.1:9/menu")


def test_config_is_validated() -> None:
    for bad in (
        {"requests_per_second": 0},
        {"burst": 0},
        {"concurrency_per_host": 0},
        {"request_timeout": float("nan")},
        {"max_retries": -1},
        {"user_agent": " "},
    ):
        with pytest.raises(ConfigError):
            UpstreamHttpConfig(**bad)


def test_exception_tree_and_pickling() -> None:
    for cls in (
        UpstreamRefused,
        UpstreamRateLimited,
        UpstreamTimeout,
        UpstreamBadResponse,
        UpstreamParseError,
        UpstreamUnavailable,
        UnknownDispensary,
    ):
        assert issubclass(cls, UpstreamError)
    assert issubclass(UpstreamError, RemoteError)
    assert issubclass(UpstreamCircuitOpen, UpstreamUnavailable)
    error = UpstreamRateLimited(
        "HTTP 429", source="jane", dispensary_id="jane:1547", host="h", status=429, retry_after=3
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is UpstreamRateLimited
    assert (copy.source, copy.dispensary_id, copy.host, copy.status, copy.retry_after) == (
        "jane",
        "jane:1547",
        "h",
        429,
        3,
    )
    assert str(copy) == str(error) == "jane (h) jane:1547: HTTP 429"


def test_public_names_are_pinned() -> None:
    assert sorted(whnode.upstream.__all__) == [
        "ADAPTERS",
        "Adapter",
        "Fetcher",
        "FetcherStatistics",
        "ParsePool",
        "ParsePoolStatistics",
        "ParsedMenu",
        "SourceConfig",
        "SourcesConfig",
        "UnknownDispensary",
        "UpstreamBadResponse",
        "UpstreamCircuitOpen",
        "UpstreamError",
        "UpstreamHttp",
        "UpstreamHttpConfig",
        "UpstreamHttpStatistics",
        "UpstreamParseError",
        "UpstreamRateLimited",
        "UpstreamRefused",
        "UpstreamTimeout",
        "UpstreamUnavailable",
        "compute_statistics",
    ]
    for name in whnode.upstream.__all__:
        assert getattr(whnode.upstream, name) is not None
