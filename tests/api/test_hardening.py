"""Malformed and abusive requests get problem+json 4xx answers, never a 500.

Explicit cases first, then a hypothesis-driven fuzzer that sends arbitrary methods, paths,
query strings, headers and bodies over a real socket to a real server (run in a thread with
its own event loop, so that the fuzzer can use the blocking ``http.client``).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.support import (
    DISPENSARY,
    ApiServer,
    ContextDouble,
    ServiceDouble,
    make_menu,
    make_record,
    now_ms,
)
from whnode import limits
from whnode.config import ApiConfig, Config
from whnode.record.keys import SigningKey

MENU = f"/v1/menus/{DISPENSARY}"


async def _problem(
    server: ApiServer, method: str, path: str, **kwargs: object
) -> dict[str, object]:
    async with server.http.request(method, path, **kwargs) as response:  # type: ignore[arg-type]
        assert 400 <= response.status < 500, (method, path, response.status)
        assert response.content_type == "application/problem+json"
        body = await response.json()
        assert body["status"] == response.status
        assert isinstance(body, dict)
        return body


@pytest.mark.parametrize(
    "dispensary",
    [
        "nocolon",
        "UPPER:x",
        "weedmaps:",
        ":store",
        "weedmaps:" + "x" * 200,
        "weedmaps:a%20b",
        "weedmaps:%C3%A9",
        "weedmaps:..",
        "w:x",
        "weedmaps:a%2Fb",
    ],
)
async def test_invalid_dispensary_ids_are_400(server: ApiServer, dispensary: str) -> None:
    for suffix in ("", "/history", "/stats"):
        body = await _problem(server, "GET", f"/v1/menus/{dispensary}{suffix}")
        assert body["type"] == "urn:whnode:problem:invalid-dispensary-id", body


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("max_age=-1", "max_age"),
        ("max_age=nan", "max_age"),
        ("max_age=1e9", "max_age"),
        ("max_age=", "max_age"),
        ("at=yesterday", "at"),
        ("at=2024-01-01T00:00:00", "at"),
        ("at=1700000000000&max_age=5", "at"),
        ("max_age=1&max_age=2", "max_age"),
        ("maxage=5", "maxage"),
    ],
)
async def test_invalid_parameters_are_400(server: ApiServer, query: str, parameter: str) -> None:
    body = await _problem(server, "GET", f"{MENU}?{query}")
    assert body["type"] == "urn:whnode:problem:invalid-parameter"
    assert body["parameter"] == parameter


async def test_invalid_history_limits_are_400(server: ApiServer) -> None:
    for value in ("0", "501", "x", "-3"):
        body = await _problem(server, "GET", f"{MENU}/history?limit={value}")
        assert body["parameter"] == "limit"


async def test_huge_query_strings_are_414(server: ApiServer) -> None:
    query = "max_age=" + "1" * limits.MAX_QUERY_STRING_BYTES
    body = await _problem(server, "GET", f"{MENU}?{query}")
    assert body["status"] == 414
    assert body["type"] == "urn:whnode:problem:query-too-long"


async def test_wrong_methods_are_405_with_allow(server: ApiServer) -> None:
    for method, path in (("POST", MENU), ("DELETE", "/v1/node"), ("PUT", "/healthz")):
        async with server.http.request(method, path) as response:
            assert response.status == 405
            assert response.content_type == "application/problem+json"
            assert "GET" in response.headers["Allow"]
            body = await response.json()
        assert body["type"] == "urn:whnode:problem:method-not-allowed"
        assert "GET" in body["allowed"]


async def test_unmatched_answers_under_v1_carry_cors_headers_others_do_not(
    server: ApiServer,
) -> None:
    for method, path, cors in (
        ("GET", "/v1/nothing", True),
        ("POST", MENU, True),
        ("POST", "/v1/menus/%0A", True),  # a newline in the decoded path
        ("GET", "/nothing", False),
        ("POST", "/healthz", False),
    ):
        async with server.http.request(method, path) as response:
            assert response.status in (404, 405)
            assert response.content_type == "application/problem+json"
            assert (response.headers.get("Access-Control-Allow-Origin") == "*") is cors, path


async def test_unknown_paths_are_404(server: ApiServer) -> None:
    for path in (
        "/v2/menus/x",
        "/v1/menus",
        "/v1/menus/",
        "/nothing",
        "/static/evil.js",
        "/v1/menus/weedmaps:x/other",
        "/%ff",
    ):
        body = await _problem(server, "GET", path)
        assert body["status"] == 404
        assert body["type"] == "urn:whnode:problem:not-found"


async def test_unacceptable_accept_is_406(server: ApiServer) -> None:
    body = await _problem(server, "GET", MENU, headers={"Accept": "text/html"})
    assert body["type"] == "urn:whnode:problem:not-acceptable"
    assert body["available"] == ["application/json", "application/cbor", "application/cose"]


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; return the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def _port(server: ApiServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def test_bodies_on_get_are_refused(server: ApiServer) -> None:
    for framing in (
        b"Content-Length: 5\r\n\r\nhello",
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ):
        request = (f"GET {MENU} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n").encode() + framing
        status, headers, body = await asyncio.to_thread(_raw, _port(server), request)
        assert status == 400
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["type"] == "urn:whnode:problem:body-not-allowed"


async def test_broken_http_is_a_4xx_not_a_500(server: ApiServer) -> None:
    for request in (
        b"GET " + b"/x" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
        b"GET / HTTP/9.9\r\n\r\n",
        b"FROB / HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        status, _, _ = await asyncio.to_thread(_raw, _port(server), request)
        assert 400 <= status < 500, request[:40]


async def test_rate_limit_answers_429_with_retry_after(service: ServiceDouble) -> None:
    config = Config(api=ApiConfig(requests_per_second=0.5, burst=3))
    async with ApiServer(ContextDouble(service, config=config)) as server:
        for _ in range(3):
            async with server.http.get(MENU) as response:
                assert response.status == 200
        async with server.http.get(MENU) as response:
            assert response.status == 429
            assert response.content_type == "application/problem+json"
            assert response.headers["Retry-After"] == "2"
            body = await response.json()
        assert body["type"] == "urn:whnode:problem:rate-limited"
        assert body["retry_after"] == 2
        # every public route counts, unknown paths, wrong methods and the status page too
        for method, path in (
            ("GET", "/metrics"),
            ("GET", "/nothing"),
            ("POST", MENU),
            ("GET", "/"),
        ):
            async with server.http.request(method, path) as response:
                assert response.status == 429, (method, path)
                assert response.content_type == "application/problem+json"


# ---------------------------------------------------------------------- fuzzer
@pytest.fixture(scope="module")
def threaded_server() -> Iterator[int]:
    """A real API server on its own event loop in a thread; yields its port."""
    key = SigningKey.generate()
    service = ServiceDouble()
    service.add(make_record(make_menu(fetched_at_ms=now_ms() - 1000), key))
    context = ContextDouble(service)
    started = threading.Event()
    port: list[int] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        async with ApiServer(context) as server:
            port.append(_port(server))
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    yield port[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
_segment = st.one_of(
    st.sampled_from(
        [DISPENSARY, "jane:1547", "x", "", "..", "weedmaps:%2F", "%00", "%ZZ", "weedmaps:a%20b"]
    ),
    _text.map(lambda text: urllib.parse.quote(text, safe=":~")),
)
_path = st.one_of(
    st.builds(lambda s: f"/v1/menus/{s}", _segment),
    st.builds(lambda s: f"/v1/menus/{s}/history", _segment),
    st.builds(lambda s: f"/v1/menus/{s}/stats", _segment),
    st.sampled_from(
        [
            "/",
            "/v1/node",
            "/v1/node/history",
            "/v1/dispensaries",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/static/status.js",
            "//",
            "/v1//menus",
            "/peer/v1/x",
        ]
    ),
    st.lists(_segment, max_size=5).map(lambda parts: "/" + "/".join(parts)),
)
_query = st.lists(
    st.tuples(st.one_of(st.sampled_from(["max_age", "at", "limit"]), _text), _text), max_size=4
).map(lambda pairs: urllib.parse.urlencode(pairs))
_method = st.sampled_from(
    # Methods the HTTP parser knows; others never reach the application (aiohttp answers
    # 400 itself: test_broken_http_is_a_4xx_not_a_500).
    [
        "GET",
        "GET",
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "OPTIONS",
        "PATCH",
        "TRACE",
        "PROPFIND",
        "MKCOL",
        "PURGE",
        "SEARCH",
    ]
)
_headers = st.dictionaries(
    st.sampled_from(["Accept", "If-None-Match", "If-Modified-Since", "Accept-Encoding", "X-A"]),
    _header_text,
    max_size=4,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=_method, path=_path, query=_query, headers=_headers, body=st.binary(max_size=64))
def test_fuzzed_requests_never_give_500(
    threaded_server: int,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    target = path + ("?" + query if query else "")
    connection = http.client.HTTPConnection("127.0.0.1", threaded_server, timeout=10)
    try:
        connection.request(method, target, body=body or None, headers=headers)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    assert response.status < 500, (method, target, headers, data[:300])
    if response.status >= 400:
        assert response.getheader("Content-Type") == "application/problem+json", data[:200]
        if method != "HEAD":
            document = json.loads(data)
            assert document["status"] == response.status
            assert document["type"].startswith(("urn:whnode:problem:", "about:blank"))
