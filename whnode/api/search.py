"""``GET /v1/search``: products across the menus a node holds, or across listed dispensaries.

The filters and order are those of ``GET /v1/menus/{id}/products`` (``whnode.record.query``),
answered from the node's search index (``whnode.store.search``: SQLite, FTS5 for words),
which holds the products of the newest snapshot of every dispensary the node stores.

- ``dispensaries=a,b,...`` (at most ``MAX_DISPENSARIES``): only those. Each is first asked
  of the network as ``GET /v1/menus/{id}`` would (hot cache, store, owners, one upstream fill
  for the network), ``SEARCH_CONCURRENCY`` at a time, within ``SEARCH_DEADLINE_SECONDS``;
  the answer lists each dispensary's status (``ok``, or the problem it met, or ``timeout``)
  and is ``partial`` when any failed: the hits come from those that answered.
- Without it: every dispensary whose indexed snapshot was fetched within ``max_age`` seconds
  (default ``DEFAULT_MAX_AGE_SECONDS``: menus older than that are not offered to a search).

``total`` counts the matches up to ``whnode.store.search_query.TOTAL_CAP`` (1,000):
beyond, ``total_exact`` is false and ``total`` is that cap (an app shows "1,000+"); whether a
next page exists is always known (``next_cursor``).

Each hit names its dispensary, and the answer names, per dispensary, the record its hits come
from (publisher, content hash, fetch time), so a light client can fetch and check it. Pages:
``limit`` and an opaque ``cursor`` (position and a digest of the query); pages are read from
the index as it is at each request, so a snapshot that arrives between two pages may shift
them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from whnode.api.context import ApiContext, service_of
from whnode.api.cursors import MAX_OFFSET, pack_cursor, unpack_cursor
from whnode.api.exceptions import InvalidParameter, NodeNotReady
from whnode.api.menus import JSON
from whnode.api.params import negotiate, parse_max_age, single_values
from whnode.api.problems import problem_for
from whnode.api.products import PRODUCT_FILTERS, parse_limit_of, product_query_of
from whnode.api.render import dumps
from whnode.record.model import parse_dispensary_id
from whnode.record.query import ProductQuery
from whnode.store.search import SearchHit

__all__ = ["MAX_DISPENSARIES", "PARAMETERS", "Search", "SearchHandlers", "parse_search"]

MAX_DISPENSARIES: Final = 50
SEARCH_CONCURRENCY: Final = 8
SEARCH_DEADLINE_SECONDS: Final = 10.0
DEFAULT_MAX_AGE_SECONDS: Final = 86_400.0
PARAMETERS: Final = (*PRODUCT_FILTERS, "dispensaries", "max_age", "limit", "cursor")


def _digest(values: dict[str, str]) -> str:
    shown = {name: values[name] for name in sorted(values) if name not in ("cursor", "limit")}
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()[:16]


def _cursor(offset: int, digest: str) -> str:
    return pack_cursor(offset, digest)


def _offset(text: str, digest: str) -> int:
    offset, _ = unpack_cursor(text, (int, str), digest, "search")
    if offset > MAX_OFFSET:
        raise InvalidParameter("cursor", "not a cursor of this search (start again without it)")
    return int(offset)


@dataclass(frozen=True, slots=True)
class Search:
    """A search's parameters, checked."""

    query: ProductQuery
    limit: int
    offset: int
    digest: str
    max_age: float | None
    listed: list[str] | None
    """The ``dispensaries=`` listed, without repeats; None: the held menus."""


def parse_search(values: dict[str, str]) -> Search:
    """The parameters of ``GET /v1/search`` (each given once); raises InvalidParameter."""
    query = product_query_of(values)
    limit = parse_limit_of(values)
    digest = _digest(values)
    offset = _offset(values["cursor"], digest) if "cursor" in values else 0
    max_age = parse_max_age(values["max_age"]) if "max_age" in values else None
    listed: list[str] | None = None
    if "dispensaries" in values:
        items = [item.strip() for item in values["dispensaries"].split(",") if item.strip()]
        if not items or len(items) > MAX_DISPENSARIES:
            raise InvalidParameter(
                "dispensaries", f"expected 1 to {MAX_DISPENSARIES} dispensary ids"
            )
        try:
            listed = list(dict.fromkeys(parse_dispensary_id(item) for item in items))
        except Exception as exc:
            raise InvalidParameter("dispensaries", str(exc)) from None
    return Search(query, limit, offset, digest, max_age, listed)


_RESULTS: Final = "\x00results\x00"
"""Stands for the results in the answer's JSON until the hits' own JSON text replaces it."""
_RESULTS_JSON: Final = b'"results":"\\u0000results\\u0000"'


def _with_results(body: bytes, hits: list[SearchHit]) -> bytes:
    """``body`` with the placeholder replaced by the hits: each hit's product JSON is the
    index's text as stored, never decoded and encoded again. Only numbers precede
    ``results`` in the answer, so its first occurrence is the placeholder."""
    results = b",".join(
        b'{"dispensary_id":%s,"product":%s}'
        % (json.dumps(hit.dispensary_id).encode(), hit.document.encode())
        for hit in hits
    )
    return body.replace(_RESULTS_JSON, b'"results":[' + results + b"]", 1)


class SearchHandlers:
    def __init__(self, context: ApiContext) -> None:
        self._context = context
        self.searches = 0
        self.seconds: list[float] = []
        """Durations of the latest searches (for the latency figures), at most 1,024."""

    def _feed(self) -> Any:
        feed = getattr(self._context, "search_feed", None)
        if feed is None:
            raise NodeNotReady("this node keeps no search index (a routing-only node)")
        return feed

    async def search(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/search"""
        started = time.perf_counter()
        search = parse_search(single_values(request.query, PARAMETERS))
        negotiate(request.headers.get("Accept"), (JSON,))
        document, hits = await self.run(search)
        self.seconds.append(time.perf_counter() - started)
        del self.seconds[:-1024]
        return web.Response(
            body=_with_results(dumps(document), hits),
            headers={"Content-Type": JSON.content_type, "Cache-Control": "no-cache"},
        )

    async def run(self, search: Search) -> tuple[dict[str, Any], list[SearchHit]]:
        """The answer to ``search`` (its ``results`` a placeholder for the hits), and the
        hits: what ``GET /v1/search`` answers, for the route and for ``whnode.Node``."""
        feed = self._feed()
        statuses: list[dict[str, Any]] | None = None
        among: list[str] | None
        if search.listed is not None:
            statuses = await self._gather(feed, search.listed, search.max_age)
            among = [entry["dispensary_id"] for entry in statuses if entry["status"] == "ok"]
        else:
            now_ms = int(time.time() * 1000)
            max_age = DEFAULT_MAX_AGE_SECONDS if search.max_age is None else search.max_age
            among = feed.index.fresh_since(now_ms - max_age * 1000)
            if len(among) == len(feed.index):
                among = None  # every indexed dispensary: no list to pass
        page = await feed.index.search(
            search.query, dispensaries=among, limit=search.limit, offset=search.offset
        )
        end = search.offset + len(page.hits)
        document: dict[str, Any] = {
            "total": page.total,
            "total_exact": page.total_exact,
            "count": len(page.hits),
            "results": _RESULTS,
            "records": page.snapshots,
            "next_cursor": _cursor(end, search.digest) if page.more else None,
            "partial": statuses is not None and any(s["status"] != "ok" for s in statuses),
        }
        if statuses is not None:
            document["dispensaries"] = statuses
        self.searches += 1
        return document, page.hits

    async def _gather(
        self, feed: Any, listed: list[str], max_age: float | None
    ) -> list[dict[str, Any]]:
        """Each listed dispensary through the network, bounded; its status."""
        service = service_of(self._context)
        gate = asyncio.Semaphore(SEARCH_CONCURRENCY)

        async def one(dispensary_id: str) -> dict[str, Any]:
            async with gate:
                answer = await service.get_menu(dispensary_id, max_age=max_age)
            await feed.ensure(answer.record)
            return {"dispensary_id": dispensary_id, "status": "ok"}

        tasks = [asyncio.ensure_future(one(dispensary_id)) for dispensary_id in listed]
        await asyncio.wait(tasks, timeout=SEARCH_DEADLINE_SECONDS)
        statuses = []
        for dispensary_id, task in zip(listed, tasks, strict=True):
            if not task.done():
                task.cancel()
                statuses.append({"dispensary_id": dispensary_id, "status": "timeout"})
            elif (error := task.exception()) is not None:
                problem = problem_for(error)
                slug = problem.type.slug if problem.type is not None else "failed"
                statuses.append(
                    {"dispensary_id": dispensary_id, "status": slug, "detail": problem.detail}
                )
            else:
                statuses.append(task.result())
        return statuses
