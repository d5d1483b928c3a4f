"""The daemon in this process: SIGHUP reloads the sources, SIGTERM drains and returns 0."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp

from whnode import daemon
from whnode.config import Config, build_config
from whnode.errors import ConfigError
from whnode.testing.clock import eventually


def node_config(data_dir: Path, **flags: str) -> Config:
    base = {"node.data_dir": str(data_dir), "node.port": "0", "pool.workers": "1"}
    return build_config(environ={}, flags={**base, **flags})


async def test_sighup_reloads_and_sigterm_stops(tmp_path: Path) -> None:
    config = node_config(tmp_path)
    running: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    reloads: list[Config] = []
    fail_next = [False]
    attempts = [0]

    def reload() -> Config:
        attempts[0] += 1
        if fail_next[0]:
            raise ConfigError("broken file")
        fresh = node_config(tmp_path, **{"upstream.dispensaries": "jane:1"})
        reloads.append(fresh)
        return fresh

    serving = asyncio.create_task(daemon.serve(config, reload=reload, started=running.set_result))
    node = await asyncio.wait_for(running, 30)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{node.http_url}/healthz") as response,
    ):
        assert response.status == 200

    os.kill(os.getpid(), signal.SIGHUP)
    await eventually(lambda: bool(reloads))
    assert len(reloads) == 1
    fail_next[0] = True
    os.kill(os.getpid(), signal.SIGHUP)  # an invalid file is logged; the node keeps serving
    await eventually(lambda: attempts[0] == 2)  # the reload was tried (and failed)
    for _ in range(10):  # give the daemon's reload loop turns to (wrongly) stop
        await asyncio.sleep(0)
    assert not serving.done()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{node.http_url}/healthz") as response,
    ):
        assert response.status == 200  # still serving after the failed reload

    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(serving, 20) == 0
    assert not node.healthy()
