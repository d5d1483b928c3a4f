"""Product queries, changes, change streams and search on a real node (sandbox upstream,
SQLite store and search index, process pool): the node wires them to what it fills."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from whnode.testing.clock import eventually
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle


async def test_a_filled_menu_is_queried_diffed_streamed_and_searched(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with (
        LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster,
        aiohttp.ClientSession() as session,
    ):
        node = cluster.nodes[0]
        base = node.http_url
        async with session.get(f"{base}/v1/menus/{dispensary}") as response:
            assert response.status == 200
            menu = await response.json()
        async with session.get(f"{base}/v1/menus/{dispensary}/products?sort=-price") as response:
            assert response.status == 200
            page = await response.json()
        assert page["total"] == menu["product_count"]
        assert page["record"]["content_hash"] == menu["record"]["content_hash"]
        # the fill reached the search index: the search finds the same products
        search = node.search_feed
        assert search is not None
        await eventually(lambda: search.index.indexed_at(dispensary) == menu["fetched_at_ms"])
        async with session.get(f"{base}/v1/search", params={"limit": "500"}) as response:
            assert response.status == 200
            found = await response.json()
        assert sorted(r["product"]["source_id"] for r in found["results"]) == sorted(
            p["source_id"] for p in menu["products"]
        )
        assert found["records"][dispensary]["content_hash"] == menu["record"]["content_hash"]
        # since the fill, nothing changed
        since = str(menu["fetched_at_ms"])
        async with session.get(f"{base}/v1/menus/{dispensary}/changes?since={since}") as r:
            assert r.status == 200
            assert (await r.json())["summary"]["changed"] == 0
        # a change stream starts with the current snapshot; a refill is told to it
        async with session.get(f"{base}/v1/menus/{dispensary}/events") as stream:
            assert stream.status == 200
            first = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
            while b"event: snapshot" not in first:
                first = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
            refreshed = await node.service.get_menu(dispensary, max_age=0)
            event = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
            while b"event: snapshot" not in event:
                event = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
        data = json.loads(event.decode().split("data: ", 1)[1])
        assert data["snapshot"]["fetched_at_ms"] == refreshed.record.fetched_at_ms
        assert data["previous"]["content_hash"] == menu["record"]["content_hash"]
