"""A seed and three nodes as real processes started through the CLI.

What only real processes show: the CLI entry points, SIGTERM draining one node while clients
keep asking every node, the exit code, and a restart on the same data directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

import whnode
from whnode.demo import Child, LocalNetwork
from whnode.record.acceptance import TrustPolicy, accept_record

pytestmark = pytest.mark.slow

SIGTERM_EXIT_DEADLINE = 10.0


@dataclass(frozen=True)
class Sent:
    node: str
    dispensary_id: str
    started: float
    status: int
    error: str = ""


async def whnode_cli(*argv: str) -> tuple[int, str, str]:
    code, out, err = await whnode_cli_bytes(*argv)
    return code, out.decode(), err


async def whnode_cli_bytes(*argv: str) -> tuple[int, bytes, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "whnode",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("WHNODE_")},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out, err.decode()


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition`` becomes true within ``timeout`` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def get_menu(network: LocalNetwork, node: Child, dispensary_id: str) -> tuple[int, str]:
    async with network.session.get(f"{node.url}/v1/menus/{dispensary_id}") as response:
        body = await response.read()
        if response.status == 200:
            assert json.loads(body)["dispensary_id"] == dispensary_id
        return response.status, response.headers.get("X-Whnode-Path", "")


async def load_loop(
    network: LocalNetwork, dispensaries: list[str], stop: asyncio.Event, sent: list[Sent], lane: int
) -> None:
    """Ask every node in turn, until ``stop``; record every outcome."""
    index = lane
    timeout = aiohttp.ClientTimeout(total=15)
    while not stop.is_set():
        for node in list(network.nodes):
            dispensary_id = dispensaries[index % len(dispensaries)]
            index += 1
            started = time.monotonic()
            try:
                async with network.session.get(
                    f"{node.url}/v1/menus/{dispensary_id}", timeout=timeout
                ) as response:
                    await response.read()
                    sent.append(Sent(node.name, dispensary_id, started, response.status))
            except (aiohttp.ClientError, TimeoutError) as exc:
                sent.append(Sent(node.name, dispensary_id, started, 0, type(exc).__name__))
        await asyncio.sleep(0.01)


async def test_seed_and_three_nodes_serve_drain_and_rejoin(tmp_path: Path) -> None:
    async with LocalNetwork(tmp_path, environ=os.environ) as network:
        await network.start(3)
        assert await network.wait_meshed(timeout=15), "nodes did not find each other"
        first, second, third = network.nodes
        dispensaries = network.dispensaries[:8]

        # menus through the HTTP API: each dispensary is fetched upstream once, network-wide
        paths = [await get_menu(network, first, d) for d in dispensaries]
        assert all(status == 200 for status, _ in paths), paths
        assert {path for _, path in paths} <= {"fill", "owner"}
        again = [await get_menu(network, node, d) for node in (second, third) for d in dispensaries]
        assert all(status == 200 for status, _ in again), again
        assert all(path != "fill" for _, path in again), again
        stats = await network.sandbox_stats()
        assert stats["menu_fetches"] == len(dispensaries), stats

        # menus through whnode.Client, which verifies each record's signature itself
        async with whnode.Client([third.url, first.url]) as client:
            verified = await client.get_menu(dispensaries[0], max_age=3600)
        assert verified.menu.dispensary_id == dispensaries[0]
        assert verified.node == third.url
        assert verified.path in {"hot", "store", "owner"}
        assert verified.menu.products

        # the CLI commands against a running node, and with a node embedded in the command
        embedded_dir = tmp_path / "embedded"
        embedded_dir.mkdir()
        (embedded_dir / "whnode.toml").write_text(network.node_config_text(0), encoding="utf-8")
        summary, status, peers, missing, signed, embedded = await asyncio.gather(
            whnode_cli("get", dispensaries[1], "--node", second.url, "--format", "summary"),
            whnode_cli("status", "--node", first.url),
            whnode_cli("peers", "--node", first.url, "--json"),
            whnode_cli("get", dispensaries[1], "--node", first.url, "--at", "2001-01-01T00:00Z"),
            whnode_cli_bytes("get", dispensaries[2], "--node", third.url, "--format", "cose"),
            whnode_cli(
                "get", dispensaries[4], "--embedded", "--data-dir", str(embedded_dir),
                "--log-level", "WARNING",
            ),
        )  # fmt: skip
        assert signed[0] == 0, signed[2]
        record = accept_record(
            signed[1],
            now_ms=int(time.time() * 1000),
            policy=TrustPolicy.open(),
            expected_dispensary=dispensaries[2],
        )
        assert record.dispensary_id == dispensaries[2]
        assert embedded[0] == 0, embedded[2]
        assert json.loads(embedded[1])["dispensary_id"] == dispensaries[4]
        assert summary[0] == 0, summary[2]
        assert summary[1].startswith(dispensaries[1])
        assert status[0] == 0, status[2]
        assert "node id" in status[1]
        assert peers[0] == 0, peers[2]
        assert {peer["port"] for peer in json.loads(peers[1])} >= {second.port, third.port}
        assert missing[0] == 3, missing[2]  # no snapshot was current then

        # SIGHUP rereads whnode.toml without stopping the node
        assert first.process is not None
        first.process.send_signal(signal.SIGHUP)
        assert await eventually(lambda: "SIGHUP: reloaded" in first.log_tail(50))
        assert first.running
        assert (await get_menu(network, first, dispensaries[2]))[0] == 200

        # SIGTERM to one node while clients keep asking every node
        stop = asyncio.Event()
        sent: list[Sent] = []
        loops = [
            asyncio.create_task(load_loop(network, network.dispensaries[:12], stop, sent, lane))
            for lane in range(4)
        ]
        await asyncio.sleep(1.0)
        assert second.process is not None
        signalled = time.monotonic()
        second.process.send_signal(signal.SIGTERM)
        code_after_sigterm = await asyncio.wait_for(
            second.process.wait(), SIGTERM_EXIT_DEADLINE + 1
        )
        exited_after = time.monotonic() - signalled

        def answered_after_exit(node: Child) -> bool:
            return any(
                item.node == node.name
                and item.status == 200
                and item.started > signalled + exited_after
                for item in sent
            )

        # the others keep answering without it
        assert await eventually(lambda: answered_after_exit(first) and answered_after_exit(third))
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*loops)

        assert code_after_sigterm == 0, second.log_tail()
        assert exited_after < SIGTERM_EXIT_DEADLINE
        failed = [item for item in sent if item.status != 200]
        assert all(item.node == second.name for item in failed), failed
        assert sum(item.status == 200 for item in sent) > 50

        # restarted on the same data directory (same identity and port), it rejoins
        await network.restart(second)
        deadline = time.monotonic() + 10
        known: list[dict[str, object]] = []
        while time.monotonic() < deadline and not known:
            known = (await network.node_info(second))["peers"]
            await asyncio.sleep(0.2)
        assert known, "the restarted node has no peers"
        assert {peer["port"] for peer in known} & {first.port, third.port}
        assert (await get_menu(network, second, dispensaries[3]))[0] == 200
        assert (await get_menu(network, second, network.dispensaries[16]))[0] == 200
