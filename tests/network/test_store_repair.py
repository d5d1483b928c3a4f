"""A damaged row in a node's SQLite store is moved aside and the menu refilled.

A real node over the sandbox: a menu is filled, then its blob in the store file is
overwritten with one over MAX_RECORD_BYTES (as a disk or an older version could leave it).
The node used to answer 503 (public API) and 500 (peer GET) for that dispensary forever.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp

from whnode.limits import MAX_RECORD_BYTES
from whnode.sandbox import SandboxConfig, run_sandbox
from whnode.testing.cluster import LocalCluster


async def test_an_oversize_blob_is_quarantined_and_the_menu_refilled(tmp_path: Path) -> None:
    async with (
        run_sandbox(SandboxConfig()) as sandbox,
        LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster,
        aiohttp.ClientSession() as http,
    ):
        node = cluster.nodes[0]
        dispensary = sandbox.dispensaries[0]
        url = f"{node.http_url}/v1/menus/{dispensary}"
        async with http.get(url, params={"max_age": "600"}) as response:
            assert response.status == 200
        assert sandbox.calls(dispensary) >= 1
        calls = sandbox.calls(dispensary)
        with sqlite3.connect(node.store.path) as connection:
            connection.execute(
                "UPDATE blobs SET data = zeroblob(?) WHERE id IN"
                " (SELECT id FROM snapshots WHERE dispensary_id = ?)",
                (MAX_RECORD_BYTES + 1, dispensary),
            )
        node.hot.discard(dispensary)
        peer_url = f"{node.http_url}/peer/v1/records/{dispensary}"
        async with http.get(peer_url) as response:
            assert response.status == 404  # moved aside, not a 500
        async with http.get(url, params={"max_age": "600"}) as response:
            assert response.status == 200, await response.text()
            assert response.headers["X-Whnode-Path"] == "fill"
        assert sandbox.calls(dispensary) > calls  # refilled from upstream
        assert node.store.statistics().quarantined == 1
        async with http.get(peer_url) as response:
            assert response.status == 200
