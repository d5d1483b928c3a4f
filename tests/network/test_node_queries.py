"""``whnode.Node`` products, changes, events and search in-process, against a real node
(sandbox upstream): each answers what the HTTP route answers for the same menu (the client
over HTTP is the reference), and events() yields a new snapshot when the node learns one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from whnode.api.exceptions import InvalidParameter
from whnode.client import Client
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle


async def test_node_queries_answer_as_the_http_routes(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        node = cluster.nodes[0]
        async with Client([node.http_url]) as client:
            first = await client.get_menu(dispensary)
            # products: the same documents, in the same order, from the same snapshot
            product_filters: list[dict[str, Any]] = [
                {"sort": "-price"},
                {"max_price": "1000", "sort": "thc"},
                {},
            ]
            for filters in product_filters:
                local = await node.products(dispensary, **filters)
                remote = await client.products(dispensary, **filters)
                assert local.products == remote.products
                assert local.menu is not None
                assert remote.menu is not None
                assert local.menu.record.encoded == remote.menu.record.encoded
            with pytest.raises(InvalidParameter):
                await node.products(dispensary, colour="green")

            # events: the current snapshot first, then the next one the node learns
            stream = node.events(dispensary)
            current = await asyncio.wait_for(anext(stream), 10)
            assert current.record.fetched_at_ms == first.record.fetched_at_ms
            following = asyncio.ensure_future(anext(stream))
            await node.service.get_menu(dispensary, max_age=0)  # a refill: a new snapshot
            newer = await asyncio.wait_for(following, 10)
            assert newer.record.fetched_at_ms > first.record.fetched_at_ms
            assert newer.menu.dispensary_id == dispensary
            await stream.aclose()

            # changes: both snapshots and the diff as the route names and computes them
            since = first.record.fetched_at_ms
            local_changes = await node.changes(dispensary, since)
            remote_changes = await client.changes(dispensary, since)
            assert local_changes.old.record.encoded == remote_changes.old.record.encoded
            assert local_changes.new.record.encoded == remote_changes.new.record.encoded
            assert local_changes.summary == remote_changes.summary
            assert local_changes.diff == remote_changes.diff
            with pytest.raises(InvalidParameter):
                await node.changes(dispensary, "yesterday-ish")

            # search: the same results, totals and records, checked against the records
            assert node.search_feed is not None
            await node.search_feed.ensure(newer.record)
            search_filters: list[dict[str, Any]] = [
                {"sort": "price"},
                {"q": "kush"},
                {"category": "flower"},
            ]
            for filters in search_filters:
                local_found = await node.search(limit=500, **filters)
                remote_found = await client.search(limit=500, **filters)
                assert local_found.results == remote_found.results
                assert local_found.total == remote_found.total
                assert local_found.total_exact == remote_found.total_exact
                assert local_found.verified
            assert (await node.search(limit=500)).results, "the held menu is searched"
