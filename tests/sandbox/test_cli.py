"""``whnode sandbox``: arguments, and a real process that prints its dispensaries, serves, and
stops cleanly on Ctrl-C (SIGINT) and SIGTERM."""

from __future__ import annotations

import asyncio
import io
import signal
import sys

import aiohttp
import pytest

from whnode.sandbox import FaultKind
from whnode.sandbox.cli import build_parser, config_from_args, main


def test_arguments_become_a_config() -> None:
    argv = "--host 0.0.0.0 --port 8000 --seed 9 --latency-ms 250 --rate 5"
    args = build_parser().parse_args(
        [*argv.split(), "--fault", "server_error:0.25", "--fault", "timeout"]
    )
    config = config_from_args(args)
    assert (config.host, config.port, config.seed) == ("0.0.0.0", 8000, 9)
    assert (config.latency, config.rate, config.catalog, config.population) == (
        0.25,
        5.0,
        True,
        0,
    )
    assert [(r.kind, r.probability) for r in config.faults] == [
        (FaultKind.SERVER_ERROR, 0.25),
        (FaultKind.TIMEOUT, 1.0),
    ]
    generated = config_from_args(build_parser().parse_args(["--dispensaries", "30"]))
    assert (generated.catalog, generated.population) == (False, 30)
    assert build_parser().parse_args([]).port == 8600


def test_invalid_arguments() -> None:
    assert main(["--max-items", "1"], out=io.StringIO()) == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--fault", "gremlins"])


async def _run(stop: signal.Signals) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "whnode",
        "sandbox",
        "--port",
        "0",
        "--dispensaries",
        "6",
        "--max-items",
        "10",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        printed: list[str] = []
        async with asyncio.timeout(30):
            while not (line := (await process.stdout.readline()).decode()).startswith("sandbox"):
                assert line, "the sandbox exited early"
                printed.append(line.strip())
        url = line.rsplit(" ", 1)[1].strip()
        assert printed == [
            "weedmaps:store-0001",
            "dutchie:store-0002",
            "jane:store-0003",
            "leafly:store-0004",
            "weedmaps:store-0005",
            "dutchie:store-0006",
        ]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/healthz") as response:
                assert response.status == 200
            async with session.get(f"{url}/_sandbox/stats") as response:
                assert (await response.json())["dispensaries"] == printed
        process.send_signal(stop)
        async with asyncio.timeout(15):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_sandbox_process_stops_on_ctrl_c() -> None:
    await _run(signal.SIGINT)


async def test_a_sandbox_process_stops_on_sigterm() -> None:
    await _run(signal.SIGTERM)
