"""Handlers of ``/v1/menus/{dispensary}`` and its ``history`` and ``stats`` sub-resources.

Thin: check the request (path, query, Accept), ask the service, and answer with the rendered
representation and its validators. The service verified every record it returns.

Representations of a menu: JSON (default; rendered from the record and cached), the canonical
CBOR of the menu (``Accept: application/cbor``) and the signed record itself
(``Accept: application/cose``: COSE_Sign1 bytes that clients verify on their own). JSON and
CBOR are sent compressed when the request's Accept-Encoding allows (``whnode.api.encoding``:
br, zstd, gzip), compressed once per record and kept; the signed record is sent as it is (its
payload is lz4-compressed already).
"""

from __future__ import annotations

import email.utils
import functools
import time
from collections.abc import Awaitable
from typing import Final

import cbor2
from aiohttp import hdrs, web
from multidict import CIMultiDict

from whnode.api.context import ApiContext, service_of
from whnode.api.encoding import IDENTITY, negotiate_coding
from whnode.api.exceptions import InvalidParameter
from whnode.api.params import (
    MediaType,
    negotiate,
    parse_at,
    parse_limit,
    parse_max_age,
    single_values,
)
from whnode.api.render import RenderCache, RenderFormat, dumps, history_entry
from whnode.record.model import parse_dispensary_id
from whnode.record.signed import SignedRecord
from whnode.service.exceptions import MenuNotFound
from whnode.service.types import AnswerPath, MenuAnswer

__all__ = [
    "CBOR",
    "CORS_HEADERS",
    "COSE",
    "JSON",
    "MenuHandlers",
    "answer_headers",
    "entity_tag",
]

JSON: Final = MediaType("application/json", "application/json")
CBOR: Final = MediaType("application/cbor", "application/cbor")
COSE: Final = MediaType("application/cose", 'application/cose; cose-type="cose-sign1"')
MENU_TYPES: Final = (JSON, CBOR, COSE)
HISTORY_TYPES: Final = (JSON, CBOR)
STATS_TYPES: Final = (JSON,)

DEFAULT_HISTORY_LIMIT: Final = 20
"""Snapshots listed by ``/history`` when no ``limit`` is given."""
MAX_HISTORY_RESPONSE_BYTES: Final = 64 * 1024 * 1024
"""Most record bytes sent in one CBOR history answer; older snapshots beyond are left out."""

HEADER_PATH: Final = "X-Whnode-Path"
HEADER_PUBLISHER: Final = "X-Whnode-Publisher"
HEADER_CONTENT_HASH: Final = "X-Whnode-Content-Hash"
HEADER_FETCHED_AT: Final = "X-Whnode-Fetched-At"
HEADER_FRESH_UNTIL: Final = "X-Whnode-Fresh-Until"
HEADER_STALE: Final = "X-Whnode-Stale"
EXPOSED_HEADERS: Final = (
    "ETag",
    "Last-Modified",
    "Retry-After",
    HEADER_PATH,
    HEADER_PUBLISHER,
    HEADER_CONTENT_HASH,
    HEADER_FETCHED_AT,
    HEADER_FRESH_UNTIL,
    HEADER_STALE,
)
"""Headers a browser script may read cross-origin (Access-Control-Expose-Headers)."""
CORS_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": ", ".join(EXPOSED_HEADERS),
}
"""What every public ``/v1/`` answer carries: any origin may read it, and these headers."""

MAX_PARSED_QUERIES: Final = 1024
"""Distinct menu query strings, Accept and Accept-Encoding headers, whose parse is kept (each
table is cleared when full)."""
MENU_VARY: Final = "Accept, Accept-Encoding"
MAX_KEPT_RESPONSES: Final = 4096
"""Hot answers whose response (headers and body) is kept for the current second (the table
is cleared when full)."""

_VARIANT_OF: Final = {JSON.name: "json", CBOR.name: "cbor", COSE.name: "cose"}


def entity_tag(record: SignedRecord, variant: str, coding: str = IDENTITY) -> str:
    """Strong ETag of one representation of a record: content hash, fetch time, variant and,
    when compressed, content coding (each coding is a different sequence of bytes)."""
    suffix = variant if coding == IDENTITY else f"{variant}+{coding}"
    return f'"{bytes(record.content_hash).hex()[:24]}-{record.fetched_at_ms}-{suffix}"'


def _tags(header: str) -> list[str]:
    """Entity tags of an If-None-Match header, weak prefixes removed (weak comparison)."""
    tags: list[str] = []
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def not_modified(request: web.Request, etag: str, fetched_at_ms: int) -> bool:
    """True when the request's validators match (RFC 9110 section 13.2.2 order)."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = _tags(if_none_match)
        return "*" in tags or etag in tags
    since = request.if_modified_since
    return since is not None and fetched_at_ms // 1000 <= since.timestamp()


@functools.lru_cache(maxsize=1024)
def _http_date(millis: int) -> str:
    return email.utils.formatdate(millis / 1000, usegmt=True)


class MenuHandlers:
    """The menu endpoints over one ApiContext and one render cache."""

    def __init__(self, context: ApiContext, renders: RenderCache) -> None:
        self._context = context
        self._renders = renders
        self._queries: dict[str, tuple[float | None, int | None]] = {}
        # (id of answer, media type, coding, Unix second) -> (answer, headers, body)
        self._responses: dict[
            tuple[int, str, str, int], tuple[MenuAnswer, CIMultiDict[str], bytes]
        ] = {}
        self._representations: dict[str, MediaType] = {}
        self._codings: dict[str, str] = {}

    def menu(self, request: web.Request) -> web.StreamResponse | Awaitable[web.StreamResponse]:
        """GET /v1/menus/{dispensary}: a response at once, or an awaitable of one.

        A hot hit (fresh record in the hot cache, representation already rendered) is
        answered synchronously, without creating a coroutine: this is the path most
        requests take. Its headers and body are kept for the rest of the current second, so
        repeated hot hits of one record cost a few dictionary lookups. Anything else (a miss,
        ``at``, a representation not rendered yet) returns an awaitable.
        """
        raw_id = request.match_info["dispensary"]
        # the parse of each distinct query string and Accept header is kept: clients repeat
        parsed = self._queries.get(request.rel_url.raw_query_string)
        if parsed is None:
            try:
                parsed = self._menu_query(request)
            except Exception:
                parse_dispensary_id(raw_id)  # a bad dispensary id is reported first
                raise
        max_age, at_ms = parsed
        request_headers = request.headers
        accept = request_headers.get(hdrs.ACCEPT)
        representation = JSON if accept is None else self._representation(accept)
        coding = IDENTITY
        if representation is not COSE:
            accept_encoding = request_headers.get(hdrs.ACCEPT_ENCODING)
            if accept_encoding is not None:
                coding = self._coding(accept_encoding)
        service = service_of(self._context)
        # A held id was validated when its record was accepted: an invalid or unknown id
        # is not held and goes through parse_dispensary_id.
        answer = None if at_ms is not None else service.answer_hot(raw_id, max_age)
        if answer is None:
            dispensary_id = parse_dispensary_id(raw_id)
            return self._menu_awaited(
                request, representation, coding, dispensary_id, max_age, at_ms
            )
        conditional = (
            hdrs.IF_NONE_MATCH in request_headers or hdrs.IF_MODIFIED_SINCE in request_headers
        )
        second = int(time.time())
        if not conditional:
            # only hot answers are kept: the service hands out one answer object per record
            kept = self._responses.get((id(answer), representation.name, coding, second))
            # the table holds the answer, so no other object can have its id meanwhile
            if kept is not None and kept[0] is answer:
                if representation is not COSE:
                    self._renders.note_hit()  # the kept body is the rendered one
                return web.Response(body=kept[2], headers=kept[1])  # aiohttp copies them
        return self._respond(request, answer, representation, coding, conditional, second)

    async def _menu_awaited(
        self,
        request: web.Request,
        representation: MediaType,
        coding: str,
        dispensary_id: str,
        max_age: float | None,
        at_ms: int | None,
    ) -> web.StreamResponse:
        """A menu answer the service must look for (store, network, upstream)."""
        answer = await service_of(self._context).get_menu(
            dispensary_id, max_age=max_age, at_ms=at_ms
        )
        request_headers = request.headers
        conditional = (
            hdrs.IF_NONE_MATCH in request_headers or hdrs.IF_MODIFIED_SINCE in request_headers
        )
        response = self._respond(
            request, answer, representation, coding, conditional, int(time.time())
        )
        if not isinstance(response, web.StreamResponse):
            response = await response
        return response

    def _respond(
        self,
        request: web.Request,
        answer: MenuAnswer,
        representation: MediaType,
        coding: str,
        conditional: bool,
        second: int,
    ) -> web.StreamResponse | Awaitable[web.StreamResponse]:
        """The response to ``answer`` at Unix second ``second``; an awaitable only when the
        representation must be rendered (or compressed) first."""
        headers = self._response_headers(answer, representation, coding, second)
        if conditional and not_modified(request, headers["ETag"], answer.record.fetched_at_ms):
            unchanged = {
                k: v for k, v in headers.items() if k not in ("Content-Type", "Content-Encoding")
            }
            return web.Response(status=304, headers=unchanged)
        if representation is COSE:
            return self._complete(
                answer, representation, coding, second, headers, answer.record.encoded
            )
        render_format = RenderFormat.JSON if representation is JSON else RenderFormat.CBOR
        body = self._renders.peek(answer.record, render_format, coding)
        if body is None:
            return self._render_then_complete(answer, representation, coding, second, headers)
        return self._complete(answer, representation, coding, second, headers, body)

    async def _render_then_complete(
        self,
        answer: MenuAnswer,
        representation: MediaType,
        coding: str,
        second: int,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        render_format = RenderFormat.JSON if representation is JSON else RenderFormat.CBOR
        body = await self._renders.get(answer.record, render_format, coding)
        return self._complete(answer, representation, coding, second, headers, body)

    def _complete(
        self,
        answer: MenuAnswer,
        representation: MediaType,
        coding: str,
        second: int,
        headers: dict[str, str],
        body: bytes,
    ) -> web.Response:
        if answer.path is AnswerPath.HOT:
            if len(self._responses) >= MAX_KEPT_RESPONSES:
                self._responses.clear()
            # kept as a CIMultiDict: aiohttp copies one faster than a dict
            kept = (answer, CIMultiDict(headers), body)
            self._responses[(id(answer), representation.name, coding, second)] = kept
        return web.Response(body=body, headers=headers)

    def _representation(self, accept: str) -> MediaType:
        """The menu representation an Accept header asks for; the answer for each distinct
        header is kept (clients repeat theirs), only when one is acceptable."""
        found = self._representations.get(accept)
        if found is None:
            found = negotiate(accept, MENU_TYPES)
            if len(self._representations) >= MAX_PARSED_QUERIES:
                self._representations.clear()
            self._representations[accept] = found
        return found

    def _coding(self, accept_encoding: str) -> str:
        """The content coding an Accept-Encoding header asks for; kept per distinct header."""
        found = self._codings.get(accept_encoding)
        if found is None:
            found = negotiate_coding(accept_encoding)
            if len(self._codings) >= MAX_PARSED_QUERIES:
                self._codings.clear()
            self._codings[accept_encoding] = found
        return found

    async def stats(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/menus/{dispensary}/stats"""
        dispensary_id = parse_dispensary_id(request.match_info["dispensary"])
        max_age, at_ms = self._menu_query(request)
        negotiate(request.headers.get("Accept"), STATS_TYPES)
        answer = await service_of(self._context).get_menu(
            dispensary_id, max_age=max_age, at_ms=at_ms
        )
        headers = answer_headers(answer, "stats")
        if not_modified(request, headers["ETag"], answer.record.fetched_at_ms):
            return web.Response(status=304, headers=headers)
        body = await self._renders.get(answer.record, RenderFormat.STATS)
        headers["Content-Type"] = JSON.content_type
        return web.Response(body=body, headers=headers)

    async def history(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/menus/{dispensary}/history"""
        dispensary_id = parse_dispensary_id(request.match_info["dispensary"])
        query = single_values(request.query, ("limit",))
        limit = parse_limit(query.get("limit"), default=DEFAULT_HISTORY_LIMIT)
        representation = negotiate(request.headers.get("Accept"), HISTORY_TYPES)
        records = await service_of(self._context).history(dispensary_id, limit)
        if not records:
            raise MenuNotFound(
                f"no snapshot of {dispensary_id} is held", dispensary_id=dispensary_id
            )
        records = sorted(records, key=lambda record: record.fetched_at_ms, reverse=True)[:limit]
        headers = {"Cache-Control": "no-cache", "Vary": "Accept"}
        if representation is CBOR:
            kept: list[bytes] = []
            total = 0
            for record in records:
                total += len(record.encoded)
                if kept and total > MAX_HISTORY_RESPONSE_BYTES:
                    break
                kept.append(record.encoded)
            headers["Content-Type"] = CBOR.content_type
            return web.Response(body=cbor2.dumps(kept), headers=headers)
        document = {
            "dispensary_id": dispensary_id,
            "snapshots": [history_entry(record) for record in records],
        }
        headers["Content-Type"] = JSON.content_type
        return web.Response(body=dumps(document), headers=headers)

    def _menu_query(self, request: web.Request) -> tuple[float | None, int | None]:
        """(max_age, at_ms) of a menu request; the parse of each distinct query string is
        kept (clients repeat theirs), only when it is valid."""
        raw = request.rel_url.raw_query_string
        parsed = self._queries.get(raw)
        if parsed is not None:
            return parsed
        query = single_values(request.query, ("max_age", "at"))
        max_age = parse_max_age(query["max_age"]) if "max_age" in query else None
        at_ms = parse_at(query["at"]) if "at" in query else None
        if max_age is not None and at_ms is not None:
            raise InvalidParameter("at", "cannot be combined with max_age")
        if len(self._queries) >= MAX_PARSED_QUERIES:
            self._queries.clear()
        self._queries[raw] = (max_age, at_ms)
        return max_age, at_ms

    def _response_headers(
        self, answer: MenuAnswer, representation: MediaType, coding: str, second: int
    ) -> dict[str, str]:
        """Every header of a menu answer, CORS included (the guard then adds nothing).
        Cache-Control's max-age is counted from the end of ``second`` (Unix seconds), so that
        an answer kept for the rest of that second never overstates it."""
        end_of_second_ms = (second + 1) * 1000
        headers = answer_headers(
            answer, _VARIANT_OF[representation.name], end_of_second_ms, coding=coding
        )
        headers["Content-Type"] = representation.content_type
        headers["Vary"] = MENU_VARY
        if coding != IDENTITY:
            headers["Content-Encoding"] = coding
        headers.update(CORS_HEADERS)
        return headers


def answer_headers(
    answer: MenuAnswer,
    variant: str,
    now_ms: int | None = None,
    *,
    coding: str = IDENTITY,
) -> dict[str, str]:
    """Response headers of an answer: the record's own and its freshness at ``now_ms``."""
    record = answer.record
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    max_age = 0 if answer.stale else max(0, (answer.fresh_until_ms - now_ms) // 1000)
    return {
        "ETag": entity_tag(record, variant, coding),
        "Last-Modified": _http_date(record.fetched_at_ms),
        "Cache-Control": f"max-age={max_age}",
        "Vary": "Accept",
        HEADER_PATH: answer.path.value,
        HEADER_PUBLISHER: bytes(record.publisher).hex(),
        HEADER_CONTENT_HASH: bytes(record.content_hash).hex(),
        HEADER_FETCHED_AT: str(record.fetched_at_ms),
        HEADER_FRESH_UNTIL: str(answer.fresh_until_ms),
        HEADER_STALE: "1" if answer.stale else "0",
    }
