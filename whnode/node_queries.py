"""What ``whnode.Node`` answers in-process beyond whole menus: product queries, changes,
change streams and search, as ``whnode.Client`` asks them over HTTP.

The same code answers both ways: the filters are parsed by the API's parsers
(``product_query_of``, ``parse_search``, ``parse_since``), products are selected by
``whnode.record.query.select``, diffs are ``whnode.record.diff.diff_menus`` between the two
snapshots ``snapshots_since`` picks, and a search is ``SearchHandlers.run`` over the node's
search index. Every answer comes from records the node verified when it accepted them (its
store, an owner, a fill: ``MenuService.get_menu``), opened and checked against their signed
header again (``OpenedMenus``); ``search(verify=True)`` also checks each result against the
snapshot its dispensary's record names, as the client does. The answers are the client's
types (``ProductAnswer``, ``ChangeAnswer``, ``SearchAnswer``, ``VerifiedMenu``) with
``node`` set to this node's URL, so code written against one works with the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Final

from multidict import MultiDict

from whnode.api.changes import parse_since, snapshots_since, summary_of
from whnode.api.context import service_of
from whnode.api.opened import OpenedMenus
from whnode.api.params import single_values
from whnode.api.products import PRODUCT_FILTERS, match_document, product_query_of
from whnode.api.search import SearchHandlers, parse_search
from whnode.client import NodeBadAnswer, VerifiedMenu
from whnode.client_queries import (
    ChangeAnswer,
    ProductAnswer,
    SearchAnswer,
    filter_params,
    results_belong,
)
from whnode.record.diff import diff_menus
from whnode.record.model import parse_dispensary_id
from whnode.record.query import select
from whnode.record.signed import SignedRecord
from whnode.service.events import RefreshAhead
from whnode.service.types import MenuAnswer

if TYPE_CHECKING:
    from whnode.node import Node

__all__ = ["EVENTS_KEPT", "NodeQueries"]

EVENTS_KEPT: Final = 64
"""New snapshots an ``events()`` consumer may fall behind by; beyond, the oldest waiting
are skipped (the consumer still gets the newest)."""


class NodeQueries:
    """``products``, ``changes``, ``events`` and ``search`` of one node, in-process."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._opened = OpenedMenus()
        self._searches = SearchHandlers(node)
        self._refresh: RefreshAhead | None = None
        self.skipped = 0
        """Snapshots ``events()`` consumers fell too far behind to be given."""

    async def _verified(self, record: SignedRecord, answer: MenuAnswer | None) -> VerifiedMenu:
        opened = await self._opened.get(record)
        return VerifiedMenu(
            menu=opened.menu,
            record=record,
            node=self._node.http_url,
            path=None if answer is None else answer.path.value,
            fresh_until_ms=None if answer is None else answer.fresh_until_ms,
        )

    async def products(
        self, dispensary_id: str, *, max_age: float | None = None, **filters: Any
    ) -> ProductAnswer:
        """Every product of ``dispensary_id``'s menu that matches ``filters`` (the query
        parameters of ``GET /v1/menus/{id}/products``), from its current snapshot."""
        dispensary_id = parse_dispensary_id(dispensary_id)
        values = single_values(MultiDict(filter_params(filters)), PRODUCT_FILTERS)
        query = product_query_of(values)
        answer = await service_of(self._node).get_menu(dispensary_id, max_age=max_age)
        menu = await self._verified(answer.record, answer)
        opened = await self._opened.get(answer.record)
        matches = await asyncio.to_thread(select, opened.menu, query, opened.texts)
        return ProductAnswer(dispensary_id, [match_document(match) for match in matches], menu)

    async def changes(
        self, dispensary_id: str, since: int | str, *, max_age: float | None = None
    ) -> ChangeAnswer:
        """What changed in ``dispensary_id``'s menu since ``since`` (epoch ms, an ISO-8601
        time or an ETag), between the snapshot current then and the current one."""
        dispensary_id = parse_dispensary_id(dispensary_id)
        service = service_of(self._node)
        current, old = await snapshots_since(
            service, dispensary_id, parse_since(str(since)), max_age
        )
        before = await self._verified(old, None)
        after = await self._verified(current.record, current)
        diff = await asyncio.to_thread(diff_menus, before.menu, after.menu)
        return ChangeAnswer(before, after, diff, summary_of(diff))

    async def events(self, dispensary_id: str) -> AsyncGenerator[VerifiedMenu, None]:
        """The current snapshot of ``dispensary_id``, then each newer one as this node
        learns it (fill, replica, republish), as ``GET /v1/menus/{id}/events`` sends them;
        the dispensary is kept fresh (refresh-ahead) while someone iterates."""
        dispensary_id = parse_dispensary_id(dispensary_id)
        service = service_of(self._node)
        current = await service.get_menu(dispensary_id)  # the menu must exist
        waiting: deque[SignedRecord] = deque()
        arrived = asyncio.Event()

        def on_snapshot(record: SignedRecord) -> None:
            if len(waiting) >= EVENTS_KEPT:
                waiting.popleft()
                self.skipped += 1
            waiting.append(record)
            arrived.set()

        stop = service.events.listen(dispensary_id, on_snapshot)
        if self._refresh is None:
            self._refresh = RefreshAhead(lambda dispensary: service.get_menu(dispensary))
        refresh = self._refresh
        refresh.watch(dispensary_id)
        try:
            latest = current.record
            yield await self._verified(latest, current)
            while True:
                await arrived.wait()
                arrived.clear()
                while waiting:
                    record = waiting.popleft()
                    if record.fetched_at_ms > latest.fetched_at_ms:
                        latest = record
                        yield await self._verified(record, None)
        finally:
            stop()
            refresh.unwatch(dispensary_id)

    async def search(
        self,
        *,
        dispensaries: list[str] | None = None,
        max_age: float | None = None,
        verify: bool = True,
        limit: int = 100,
        **filters: Any,
    ) -> SearchAnswer:
        """The first ``limit`` products across dispensaries that match ``filters``, as
        ``GET /v1/search`` answers them; with ``verify``, each checked against the snapshot
        of its dispensary that the answer names."""
        values = single_values(MultiDict(filter_params(filters)), PRODUCT_FILTERS)
        values["limit"] = str(limit)
        if dispensaries is not None:
            values["dispensaries"] = ",".join(dispensaries)
        if max_age is not None:
            values["max_age"] = str(max_age)
        document, hits = await self._searches.run(parse_search(values))
        results = [(hit.dispensary_id, hit.product) for hit in hits]
        if verify:
            service, url = service_of(self._node), self._node.http_url
            for dispensary_id, named in document["records"].items():
                record = (
                    await service.get_menu(dispensary_id, at_ms=int(named["fetched_at_ms"]))
                ).record
                if bytes(record.content_hash).hex() != named["content_hash"]:
                    raise NodeBadAnswer("a snapshot named is not the one held", node=url)
                menu = (await self._opened.get(record)).menu
                if not results_belong(results, dispensary_id, menu):
                    raise NodeBadAnswer(f"a result is not a product of {dispensary_id}", node=url)
        return SearchAnswer(
            results=results,
            total=document["total"],
            partial=document["partial"],
            statuses=list(document.get("dispensaries", [])),
            verified=verify,
            total_exact=document["total_exact"],
        )

    async def aclose(self) -> None:
        if self._refresh is not None:
            with contextlib.suppress(Exception):
                await self._refresh.aclose()
