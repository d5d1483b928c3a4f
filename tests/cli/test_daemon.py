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


def node_config(data_dir: Path, **flags: str) -> Config:
    base = {"node.data_dir": str(data_dir), "node.port": "0", "pool.workers": "1"}
    return build_config(environ={}, flags={**base, **flags})


async def test_sighup_reloads_and_sigterm_stops(tmp_path: Path) -> None:
    config = node_config(tmp_path)
    running: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    reloads: list[Config] = []
    fail_next = [False]

    def reload() -> Config:
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
    for _ in range(100):
        if reloads:
            break
        await asyncio.sleep(0.02)
    assert len(reloads) == 1
    fail_next[0] = True
    os.kill(os.getpid(), signal.SIGHUP)  # an invalid file is logged; the node keeps serving
    await asyncio.sleep(0.2)
    assert not serving.done()

    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(serving, 20) == 0
    assert not node.healthy()
