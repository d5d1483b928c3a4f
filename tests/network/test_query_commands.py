"""``whnode search``, ``whnode changes`` and ``whnode watch`` as real processes against a real
node (sandbox upstream)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle


async def whnode(*argv: str) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WHNODE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "whnode", *argv, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_search_changes_and_watch_commands(tmp_path: Path, sandbox: SandboxHandle) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        node = cluster.nodes[0]
        first = await node.service.get_menu(dispensary)
        assert node.search_feed is not None
        await node.search_feed.ensure(first.record)
        code, out, err = await whnode("search", "--node", node.http_url, "--format", "json")
        assert code == 0, err
        answer = json.loads(out)
        assert answer["verified"] is True
        assert {r["dispensary_id"] for r in answer["results"]} == {dispensary}
        code, out, err = await whnode("search", "--node", node.http_url, "--sort=-price")
        assert code == 0, err
        assert "matches; checked against the signed records" in out
        code, out, err = await whnode("search", "--node", node.http_url, "--category", "fruit")
        assert code != 0
        assert "category" in err
        assert "Traceback" not in err
        # watch: the first line is the current snapshot, the next a refill's changes
        environ = {k: v for k, v in os.environ.items() if not k.startswith("WHNODE_")}
        watcher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "whnode", "watch", dispensary, "--node", node.http_url,
            env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert watcher.stdout is not None
        line = await asyncio.wait_for(watcher.stdout.readline(), 30)
        assert b"watching from" in line
        second = await node.service.get_menu(dispensary, max_age=0)
        line = await asyncio.wait_for(watcher.stdout.readline(), 30)
        assert f"-> {second.record.fetched_at_ms}".encode() in line
        watcher.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(watcher.wait(), 30) == 0
        code, out, err = await whnode(
            "changes", dispensary, "--node", node.http_url,
            "--since", str(first.record.fetched_at_ms),
        )  # fmt: skip
        assert code == 0, err
        assert out.startswith(f"{dispensary}: {first.record.fetched_at_ms} -> ")
