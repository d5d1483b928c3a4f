"""Compressed menus: Accept-Encoding negotiation, bodies decoded and compared byte for byte,
one ETag per coding, one compression per record, representation and coding.

The server is a real aiohttp server over ``ServiceDouble`` (tests/api/support.py); the
client does not decompress (``auto_decompress=False``), so the bytes on the wire are checked.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable

import aiohttp
import brotli
import pytest
from backports import zstd
from multidict import CIMultiDict

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
from whnode.api.encoding import IDENTITY, OFFERED, compress, negotiate_coding
from whnode.record.keys import SigningKey
from whnode.record.signed import SignedRecord

MENU = f"/v1/menus/{DISPENSARY}"
DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "br": brotli.decompress,
    "zstd": zstd.decompress,
    "gzip": gzip.decompress,
}
REPRESENTATIONS = ("application/json", "application/cbor")


@pytest.mark.parametrize(
    ("header", "offered", "expected"),
    [
        (None, OFFERED, IDENTITY),
        ("", OFFERED, IDENTITY),
        ("gzip", OFFERED, "gzip"),
        ("gzip, deflate, br", OFFERED, "br"),  # equal q: the node's order
        ("gzip;q=1.0, br;q=0.5", OFFERED, "gzip"),  # the client's q first
        ("GZip ; Q=0.9", OFFERED, "gzip"),  # names and parameters are case-insensitive
        ("*", OFFERED, "br"),
        ("*;q=0", OFFERED, IDENTITY),
        ("br;q=0, *", OFFERED, "zstd"),
        ("br;q=0, zstd;q=0, *;q=0.1", OFFERED, "gzip"),
        ("identity, gzip;q=0.5", OFFERED, IDENTITY),  # the client prefers plain bodies
        ("deflate, compress", OFFERED, IDENTITY),  # nothing offered is acceptable
        ("gzip;q=abc", OFFERED, IDENTITY),  # a malformed q refuses
        ("gzip;q=2", OFFERED, IDENTITY),  # so does one out of range
        ("br, gzip", ("gzip",), "gzip"),  # a coding not installed is not offered
        ("br", ("gzip",), IDENTITY),
    ],
)
def test_negotiation(header: str | None, offered: tuple[str, ...], expected: str) -> None:
    assert negotiate_coding(header, offered) == expected


def test_every_coding_is_offered_and_round_trips() -> None:
    assert OFFERED == ("br", "zstd", "gzip")
    data = b'{"products":[' + b'{"name":"Blue Dream","price_cents":2500},' * 500 + b"{}]}"
    for coding in OFFERED:
        packed = compress(data, coding)
        assert len(packed) < len(data) // 10
        assert DECODERS[coding](packed) == data
        assert compress(data, coding) == packed  # the same bytes every time: one ETag
    assert compress(data, IDENTITY) is data


@pytest.fixture
async def raw(server: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url, auto_decompress=False) as session:
        yield session


async def _get(
    session: aiohttp.ClientSession, accept: str, encoding: str, **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    request_headers = {"Accept": accept, "Accept-Encoding": encoding, **headers}
    async with session.get(MENU, headers=request_headers) as response:
        return response.status, CIMultiDict(response.headers), await response.read()


async def test_compressed_bodies_decode_to_the_plain_ones_byte_for_byte(
    server: ApiServer, raw: aiohttp.ClientSession
) -> None:
    for accept in REPRESENTATIONS:
        status, plain_headers, plain = await _get(raw, accept, IDENTITY)
        assert status == 200
        assert "Content-Encoding" not in plain_headers
        tags = {plain_headers["ETag"]}
        for coding in OFFERED:
            status, headers, body = await _get(raw, accept, coding)
            assert status == 200
            assert headers["Content-Encoding"] == coding
            assert headers["Content-Type"] == plain_headers["Content-Type"]
            assert headers["Vary"] == "Accept, Accept-Encoding"
            assert int(headers["Content-Length"]) == len(body) < len(plain)
            assert DECODERS[coding](body) == plain
            assert headers["ETag"].endswith(f'+{coding}"')
            tags.add(headers["ETag"])
        assert len(tags) == 1 + len(OFFERED)  # one entity tag per sequence of bytes


async def test_each_body_is_compressed_once(server: ApiServer, raw: aiohttp.ClientSession) -> None:
    cache = public_api(server.app).renders
    for _ in range(3):
        for accept in REPRESENTATIONS:
            for coding in OFFERED:
                _, _, first = await _get(raw, accept, coding)
                _, _, again = await _get(raw, accept, coding)
                assert again == first
    assert cache.statistics().compressions == len(REPRESENTATIONS) * len(OFFERED)


async def test_a_validator_matches_only_its_own_coding(
    server: ApiServer, raw: aiohttp.ClientSession
) -> None:
    _, headers, _ = await _get(raw, "application/json", "br")
    br_tag = headers["ETag"]
    status, not_modified, body = await _get(
        raw, "application/json", "br", **{"If-None-Match": br_tag}
    )
    assert (status, body) == (304, b"")
    assert not_modified["ETag"] == br_tag
    assert "Content-Encoding" not in not_modified
    # the gzip bytes are not the br bytes: a br validator does not make them unchanged
    status, headers, body = await _get(raw, "application/json", "gzip", **{"If-None-Match": br_tag})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body)


async def test_the_signed_record_is_never_compressed_again(
    server: ApiServer, raw: aiohttp.ClientSession, record: SignedRecord
) -> None:
    status, headers, body = await _get(raw, "application/cose", "br, gzip, zstd")
    assert status == 200
    assert "Content-Encoding" not in headers
    assert body == record.encoded


async def test_a_large_menu_is_compressed_once_for_concurrent_requests(
    signing_key: SigningKey,
) -> None:
    big = make_record(make_menu(fetched_at_ms=now_ms() - 1000, products=4000), signing_key)
    service = ServiceDouble()
    service.add(big)
    async with (
        ApiServer(ContextDouble(service)) as server,
        aiohttp.ClientSession(base_url=server.url, auto_decompress=False) as session,
    ):
        _, _, plain = await _get(session, "application/json", IDENTITY)
        bodies = await asyncio.gather(
            *(_get(session, "application/json", "zstd") for _ in range(8))
        )
        stats = public_api(server.app).renders.statistics()
    assert {body for _, _, body in bodies} == {bodies[0][2]}
    assert zstd.decompress(bodies[0][2]) == plain
    assert len(bodies[0][2]) * 5 < len(plain)
    assert stats.compressions == 1
    assert stats.misses == 1  # the plain rendering was made once and compressed from
