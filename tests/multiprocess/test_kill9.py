"""kill -9 of a real node process: nothing it started may outlive it.

The node (``whnode run``) parses in a process pool: a fork server, its workers and
multiprocessing's resource tracker. Killed with SIGKILL, the node runs no cleanup at all; the
pool's processes must notice and exit by themselves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from whnode.demo import LocalNetwork
from whnode.testing.processes import descendants, living

pytestmark = pytest.mark.slow

EXIT_DEADLINE = 5.0
"""Seconds the node's children get to exit after the node is killed."""


async def test_parse_pool_processes_die_with_a_killed_node(tmp_path: Path) -> None:
    async with LocalNetwork(tmp_path, environ=os.environ) as network:
        await network.start(1)
        (node,) = network.nodes
        # a fill parses in the pool: the fork server, a worker and the tracker exist now
        async with network.session.get(f"{node.url}/v1/menus/{network.dispensaries[0]}") as r:
            assert r.status == 200, await r.text()
        assert node.process is not None
        pid = node.process.pid
        children = descendants(pid)
        commands = " | ".join(command for _, command in children)
        assert len(children) >= 3, commands  # fork server, resource tracker, >= 1 worker
        assert "forkserver" in commands, commands
        assert "resource_tracker" in commands, commands

        os.kill(pid, signal.SIGKILL)
        await node.process.wait()
        deadline = time.monotonic() + EXIT_DEADLINE
        left = living(child for child, _ in children)
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            left = living(left)
        assert not left, f"still running {EXIT_DEADLINE} s after kill -9 of the node: " + str(
            [command for child, command in children if child in left]
        )
