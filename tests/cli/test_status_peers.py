"""``whnode status`` and ``whnode peers`` against an HTTP server on loopback (port 0)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from .conftest import Cli

NODE_INFO: dict[str, Any] = {
    "node_id": "ab" * 20,
    "public_key": "cd" * 32,
    "address": "127.0.0.1:8468",
    "uptime_seconds": 12.5,
    "routing_only": False,
    "peers": [
        {"node_id": "01" * 20, "host": "127.0.0.1", "port": 9001},
        {"node_id": "02" * 20, "host": "127.0.0.1", "port": 9002},
    ],
    "hot_cache": {"hits": 1200, "misses": 3, "evictions": 0, "bytes": 4096, "entries": 2},
    "service": {"requests": 1203, "answers_by_path": {"hot": 1200, "fill": 3}},
}


@pytest.fixture
async def node_url() -> AsyncIterator[str]:
    async def node(request: web.Request) -> web.Response:
        return web.json_response(NODE_INFO)

    async def broken(request: web.Request) -> web.Response:
        return web.json_response(
            {"title": "boom", "detail": "store closed"},
            status=503,
            content_type="application/problem+json",
        )

    app = web.Application()
    app.router.add_get("/v1/node", node)
    app.router.add_get("/broken/v1/node", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_status_is_human_readable(cli: Cli, node_url: str) -> None:
    outcome = await asyncio.to_thread(cli, "status", "--node", node_url)
    assert outcome.code == 0, outcome.err
    lines = outcome.out.splitlines()
    assert lines[0] == f"whnode node at {node_url}"
    assert lines[1].split() == ["node", "id", "ab" * 20]
    assert any(line.split() == ["peers", "2"] for line in lines)
    assert any(line.split() == ["hits", "1,200"] for line in lines)
    assert "answers_by_path:" in outcome.out


async def test_status_json_is_the_node_document(cli: Cli, node_url: str) -> None:
    outcome = await asyncio.to_thread(cli, "status", "--node", node_url + "/", "--json")
    assert outcome.code == 0, outcome.err
    assert json.loads(outcome.out) == NODE_INFO


async def test_peers_table(cli: Cli, node_url: str) -> None:
    outcome = await asyncio.to_thread(cli, "peers", "--node", node_url)
    assert outcome.code == 0, outcome.err
    lines = outcome.out.splitlines()
    assert lines[0].split() == ["NODE_ID", "HOST", "PORT"]
    assert lines[1].split() == ["01" * 20, "127.0.0.1", "9001"]
    assert lines[-1] == "2 peers"
    as_json = await asyncio.to_thread(cli, "peers", "--node", node_url, "--json")
    assert json.loads(as_json.out) == NODE_INFO["peers"]


async def test_node_errors_map_to_exit_codes(cli: Cli, node_url: str) -> None:
    failed = await asyncio.to_thread(cli, "status", "--node", node_url + "/broken")
    assert failed.code == 4
    assert failed.err == f"whnode: error: {node_url}/broken: store closed\n"
    missing = await asyncio.to_thread(cli, "peers", "--node", node_url + "/nothing")
    assert missing.code == 4
    assert missing.err == f"whnode: error: {node_url}/nothing: unexpected status 404\n"


async def test_unreachable_node_is_a_remote_error(cli: Cli) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    closed_port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    outcome = await asyncio.to_thread(cli, "status", "--node", f"http://127.0.0.1:{closed_port}")
    assert outcome.code == 4
    assert outcome.err.startswith(f"whnode: error: http://127.0.0.1:{closed_port}: ")
    assert "Traceback" not in outcome.err


async def test_default_node_url_comes_from_the_configuration(cli: Cli, node_url: str) -> None:
    port = node_url.rsplit(":", 1)[1]
    outcome = await asyncio.to_thread(
        cli, "peers", "--json", env={"WHNODE_NODE_PORT": port, "WHNODE_NODE_HOST": "0.0.0.0"}
    )
    assert outcome.code == 0, outcome.err
    assert len(json.loads(outcome.out)) == 2
