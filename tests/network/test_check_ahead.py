"""The owner cross-check's history requests go out with the fill (whnode.peer.prefetch),
on real nodes over loopback with the sandbox upstream: the check then costs no round trip
of its own after the owner's answer, and it judges the same way.

Slow paths are made by injected delays in front of the owner's fill handler and the
checkers' history handler (loopback has no delay of its own).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from whnode.node import Node
from whnode.peer.client import PeerClient
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.timeout(120)


def delay(node: Node, name: str, seconds: float) -> None:
    """Make ``node`` answer its peer endpoint ``name`` (peer_fill, peer_history) late."""
    handler = getattr(node.service, name)

    async def slow(*args: Any, **options: Any) -> Any:
        await asyncio.sleep(seconds)
        return await handler(*args, **options)

    setattr(node.service, name, slow)


async def test_the_cross_check_takes_the_history_asked_beside_the_fill(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(5, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        owners = cluster.owners(dispensary, 3)
        held = await owners[0].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()  # replicated: the checkers hold the same menu
        requester = next(node for node in cluster.nodes if node not in owners)
        for node in owners:
            delay(node, "peer_fill", 1.0)
            delay(node, "peer_history", 1.0)
        started = time.monotonic()
        answer = await requester.service.get_menu(dispensary, max_age=600)
        elapsed = time.monotonic() - started
        assert answer.record.encoded == held.record.encoded
        checks = requester.service.crosscheck.statistics()
        assert checks.outcomes == {"agreed": 1}, checks
        peers = requester.service._peers
        assert isinstance(peers, PeerClient)
        # both other owners' histories went out with the fill; the check took what it used
        assert peers.prefetch.started == 2
        assert peers.prefetch.taken >= 1
        # the fill and the history went out together: 1 s, not 1 s + 1 s one after the other
        assert elapsed < 1.8, f"the history was asked after the answer ({elapsed:.2f} s)"
