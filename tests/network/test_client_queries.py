"""``whnode.Client`` products, changes, events and search against a real node (sandbox
upstream), and a lying node (a real aiohttp proxy in front of it that alters answers) caught
by the checks against the signed records."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from whnode.client import Client, NodeBadAnswer
from whnode.testing.clock import eventually
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle


@asynccontextmanager
async def lying_proxy(target: str) -> AsyncIterator[str]:
    """A proxy that drops the last product of every product page and search page."""

    async def relay(request: web.Request) -> web.StreamResponse:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                target + request.path_qs,
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            ) as upstream,
        ):
            body = await upstream.read()
            headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
            }
            if upstream.status == 200 and request.path.endswith(("/products", "/search")):
                document = json.loads(body)
                key = "products" if "products" in document else "results"
                document[key] = document[key][:-1]
                body = json.dumps(document).encode()
            return web.Response(status=upstream.status, body=body, headers=headers)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", relay)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_client_queries_are_checked_against_the_signed_records(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        node = cluster.nodes[0]
        async with Client([node.http_url]) as client:
            whole = await client.get_menu(dispensary)
            answer = await client.products(dispensary, sort="-price", page_size=2)
            assert answer.menu is not None
            assert len(answer.products) == len(whole.menu.products)
            prices = [min(o["price_cents"] for o in p["price_options"]) for p in answer.products]
            assert prices == sorted(prices, reverse=True)
            # changes since the first snapshot, after a refill: computed here, agreed by the node
            await node.service.get_menu(dispensary, max_age=0)
            changed = await client.changes(dispensary, whole.record.fetched_at_ms)
            assert changed.old.record.fetched_at_ms == whole.record.fetched_at_ms
            assert changed.new.record.fetched_at_ms > whole.record.fetched_at_ms
            search = node.search_feed
            assert search is not None
            await eventually(lambda: bool(search.index.indexed_at(dispensary)))
            found = await client.search(limit=500)
            assert found.verified
            assert {d for d, _ in found.results} == {dispensary}
            # events: the stream starts with the current snapshot, verified
            stream = client.events(dispensary)
            first = await asyncio.wait_for(anext(stream), 10)
            assert first.record.fetched_at_ms == changed.new.record.fetched_at_ms
            await stream.aclose()
        async with lying_proxy(node.http_url) as liar, Client([liar]) as fooled:
            with pytest.raises(NodeBadAnswer, match="not the query's"):
                await fooled.products(dispensary)
            unchecked = await fooled.products(dispensary, verify=False)
            assert len(unchecked.products) == len(whole.menu.products) - 1
