"""The public API of real nodes: a LocalCluster of whnode.Node on loopback over the sandbox.

Everything is real here: UDP DHT, HTTP between nodes, SQLite stores, the parse process pool,
the sandbox's vendor APIs. These tests check that the API layer and the node fit together:
routes, representations, the answer path as the cache warms, problem documents for real
service errors, node info and metrics from real components, the status page, and the
light client against a real node.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

import whnode
from tests.api.test_openapi import _documented, _routes
from tests.api.test_status_page import run_chromium
from whnode.api.openapi import openapi_document
from whnode.record.acceptance import TrustPolicy, open_record
from whnode.sandbox import SandboxConfig, run_sandbox
from whnode.testing.cluster import LocalCluster


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("cluster")
    async with (
        run_sandbox(SandboxConfig()) as sandbox,
        LocalCluster(3, directory, sandbox_url=sandbox.base_url) as cluster,
        aiohttp.ClientSession() as http,
    ):
        for node in cluster.nodes:
            await node.wait_connected()
        yield {"sandbox": sandbox, "cluster": cluster, "http": http}


pytestmark = pytest.mark.asyncio(loop_scope="module")


def _node(network: dict[str, Any], index: int) -> whnode.Node:
    node: whnode.Node = network["cluster"].nodes[index]
    return node


async def test_routes_of_a_real_node_match_the_document(network: dict[str, Any]) -> None:
    app: web.Application = _node(network, 0).app
    assert _routes(app) == _documented(openapi_document())
    peer_routes = [
        r for r in app.router.routes() if r.resource and r.resource.canonical.startswith("/peer/")
    ]
    assert peer_routes  # the node-to-node API lives on the same application


async def test_menu_path_warms_from_fill_to_hot(network: dict[str, Any]) -> None:
    http: aiohttp.ClientSession = network["http"]
    dispensary = network["sandbox"].dispensaries[0]
    node = _node(network, 1)
    url = f"{node.http_url}/v1/menus/{dispensary}"
    async with http.get(url, params={"max_age": "600"}) as response:
        assert response.status == 200, await response.text()
        first = await response.json()
        first_path = response.headers["X-Whnode-Path"]
        etag = response.headers["ETag"]
    assert first_path in ("fill", "owner")
    assert first["dispensary_id"] == dispensary
    assert first["product_count"] == len(first["products"]) > 0
    async with http.get(url, params={"max_age": "600"}) as response:
        assert response.headers["X-Whnode-Path"] == "hot"
        assert response.headers["ETag"] == etag
    async with http.get(
        url, params={"max_age": "600"}, headers={"If-None-Match": etag}
    ) as response:
        assert response.status == 304
    async with http.get(url, headers={"Accept": "application/cose"}) as response:
        data = await response.read()
        publisher = response.headers["X-Whnode-Publisher"]
    owners = {n.public_key.hex() for n in network["cluster"].nodes}
    assert publisher in owners
    async with whnode.Client(node.http_url) as client:
        verified = await client.get_menu(dispensary, max_age=600)
    assert verified.record.encoded == data
    assert open_record(verified.record).name == first["name"]
    async with http.get(f"{url}/stats") as response:
        assert (await response.json())["product_count"] == first["product_count"]
    async with http.get(f"{url}/history") as response:
        assert len((await response.json())["snapshots"]) >= 1


async def test_real_service_errors_become_problems(network: dict[str, Any]) -> None:
    http: aiohttp.ClientSession = network["http"]
    node = _node(network, 2)
    async with http.get(f"{node.http_url}/v1/menus/weedmaps:no-such-store-anywhere") as response:
        assert response.status == 404
        body = await response.json()
    assert body["type"] == "urn:whnode:problem:unknown-dispensary"
    dispensary = network["sandbox"].dispensaries[0]
    async with http.get(f"{node.http_url}/v1/menus/{dispensary}", params={"at": "0"}) as response:
        assert response.status == 404
        assert (await response.json())["type"] == "urn:whnode:problem:menu-not-found"
    async with http.get(f"{node.http_url}/peer/v1/nothing") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"


async def test_node_info_health_and_metrics_from_real_components(
    network: dict[str, Any],
) -> None:
    http: aiohttp.ClientSession = network["http"]
    node = _node(network, 0)
    async with http.get(f"{node.http_url}/v1/node") as response:
        info = await response.json()
    assert info["node_id"] == node.node_id.hex()
    assert len(info["peers"]) >= 2
    async with http.get(f"{node.http_url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{node.http_url}/readyz") as response:
        assert response.status == 200
    async with http.get(f"{node.http_url}/metrics") as response:
        text = await response.text()
    assert "whnode_service_requests_total " in text
    assert "# TYPE whnode_service_requests_total counter" in text
    assert "whnode_hot_cache_max_bytes " in text
    assert "whnode_store_records " in text
    assert "whnode_node_healthy 1.0" in text


async def test_status_page_of_a_real_node(network: dict[str, Any], tmp_path: Path) -> None:
    node = _node(network, 1)
    dom = (
        await run_chromium(
            "--virtual-time-budget=3000",
            "--dump-dom",
            node.http_url + "/",
            profile=tmp_path / "profile",
        )
    ).decode()
    assert node.node_id.hex() in dom
    peers = len(node.dht.contacts())
    assert f'id="peers" data-value="{peers}"' in dom
    requests = node.service.statistics().requests
    assert f'id="requests" data-value="{requests}"' in dom


async def test_concurrent_clients_share_one_fill(network: dict[str, Any]) -> None:
    dispensary = network["sandbox"].dispensaries[-1]
    nodes = [n.http_url for n in network["cluster"].nodes]
    policy = TrustPolicy.open()
    async with whnode.Client(nodes, policy=policy) as client:
        answers = await asyncio.gather(*(client.get_menu(dispensary) for _ in range(10)))
    assert len({answer.record.encoded for answer in answers}) == 1
