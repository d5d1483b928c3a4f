"""``whnode bench http``: hot-hit throughput of the public API, and a node's memory.

1. Starts one node (with the sandbox upstream) in a server process, fills one realistic menu,
   and beside it, in the same process, a bare aiohttp handler on the same route that
   returns the same bytes (body and headers; aiohttp adds Date, Server and Content-Length to
   both), asked with the same path and query. A real load generator (``wrk`` when
   installed, else a Python client in another process) then hits ``GET /v1/menus/{id}``
   and the bare handler, one after the other, with the same connections and duration, in
   several rounds that alternate which goes first. The figure is the median ratio of
   requests per second; beside it, the server process's CPU time per answered request of
   each side (from /proc), a figure less sensitive to the load generator sharing the CPUs.
2. Reports the RSS of an idle node and of a node holding N records (signed snapshots put into
   its store and hot cache through the node-to-node PUT path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

SERVER = r"""
import asyncio, json, sys, tempfile
from pathlib import Path
from aiohttp import web
from whnode.node import Node
from whnode.sandbox import SandboxConfig, SizeClass, run_sandbox
from whnode.record.model import Vendor
from whnode.testing.cluster import cluster_config

async def main():
    with tempfile.TemporaryDirectory() as directory:
        async with run_sandbox(SandboxConfig()) as sandbox:
            dispensary = sandbox.named(SizeClass.REALISTIC, Vendor.WEEDMAPS)
            config = cluster_config(Path(directory) / "node", sandbox_url=sandbox.base_url)
            import dataclasses
            config = dataclasses.replace(config, api=dataclasses.replace(
                config.api, requests_per_second=1e9, burst=10**9))
            async with Node(config) as node:
                await node.service.get_menu(dispensary, max_age=86400)
                import aiohttp
                async with aiohttp.ClientSession() as session:
                    url = f"{node.http_url}/v1/menus/{dispensary}?max_age=86400"
                    async with session.get(url) as response:
                        body = await response.read()
                        headers = {k: v for k, v in response.headers.items()
                                   if k not in ("Date", "Server", "Content-Length")}
                async def bare(request):
                    return web.Response(body=body, headers=headers)
                app = web.Application()
                app.router.add_get("/v1/menus/{dispensary}", bare)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                bare_port = runner.addresses[0][1]
                bare_url = f"http://127.0.0.1:{bare_port}/v1/menus/{dispensary}?max_age=86400"
                print(json.dumps({"api": url, "bare": bare_url,
                                  "bytes": len(body)}), flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
                await runner.cleanup()

from whnode.daemon import loop_factory  # uvloop when installed, as the daemon runs
with asyncio.Runner(loop_factory=loop_factory()) as runner:
    runner.run(main())
"""

PY_LOAD = r"""
import asyncio, sys, time, aiohttp
url, connections, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
async def worker(session, stop, counts):
    while time.monotonic() < stop:
        async with session.get(url) as response:
            await response.read()
            counts[0] += 1
async def main():
    counts = [0]
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        stop = time.monotonic() + duration
        await asyncio.gather(*(worker(session, stop, counts) for _ in range(connections)))
    print(counts[0] / duration)
from whnode.daemon import loop_factory  # uvloop when installed, as the daemon runs
with asyncio.Runner(loop_factory=loop_factory()) as runner:
    runner.run(main())
"""


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(url: str, connections: int, duration: float) -> tuple[float, int, str]:
    """(requests per second, requests answered, tool) of one load run against ``url``."""
    wrk = shutil.which("wrk")
    if wrk:
        output = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        match = re.search(r"Requests/sec:\s+([\d.]+)", output)
        answered = re.search(r"(\d+) requests in", output)
        latency = re.search(r"99%\s+(\S+)", output)
        assert match is not None, output
        assert answered is not None, output
        tool = f"wrk, p99 {latency.group(1) if latency else '?'}"
        return float(match.group(1)), int(answered.group(1)), tool
    output = subprocess.run(
        [sys.executable, "-c", PY_LOAD, url, str(connections), str(duration)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(output.strip())
    return rate, int(rate * duration), "python aiohttp client"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _memory(records: int) -> tuple[int, int]:
    from whnode.node import Node
    from whnode.record.codec import content_hash, encode_menu
    from whnode.record.keys import SigningKey
    from whnode.record.signed import sign_record
    from whnode.store.types import StoredRecord
    from whnode.testing.cluster import cluster_config
    from whnode.testing.factories import make_menu

    with tempfile.TemporaryDirectory() as directory:
        config = cluster_config(Path(directory) / "node", sandbox_url=None)
        async with Node(config) as node:
            await asyncio.sleep(1.0)
            idle = _rss_kib(os.getpid())
            key = SigningKey.generate()
            now = int(time.time() * 1000)
            menus = [make_menu(f"weedmaps:bench-{i % 64}", 250, seed=i) for i in range(8)]
            payloads = [(encode_menu(menu), content_hash(menu)) for menu in menus]
            for index in range(records):
                payload, digest = payloads[index % len(payloads)]
                record = sign_record(
                    payload=payload,
                    dispensary_id=f"weedmaps:bench-{index:05d}",
                    fetched_at_ms=now - index,
                    content_hash=digest,
                    signing_key=key,
                )
                stored = StoredRecord(
                    record.dispensary_id, record.fetched_at_ms, record.content_hash, record.encoded
                )
                await node.store.put(stored)
                node.hot.put(stored)
            await asyncio.sleep(0.5)
            loaded = _rss_kib(os.getpid())
            return idle, loaded


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench http", description=__doc__)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of each side")
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args(argv)

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        urls = json.loads(server.stdout.readline())
        print(
            f"hot-hit GET of a 250-product menu ({urls['bytes']:,} bytes of JSON), "
            f"{args.connections} connections, {args.duration:g} s per run"
        )
        _load(urls["api"], args.connections, 2.0)  # warm up
        _load(urls["bare"], args.connections, 2.0)
        ratios: list[float] = []
        cpu_ratios: list[float] = []
        for round_number in range(1, args.rounds + 1):
            # alternate which side goes first: a drift in machine load hits both equally
            order = ("api", "bare") if round_number % 2 else ("bare", "api")
            rates: dict[str, tuple[float, float, str]] = {}
            for side in order:
                cpu_before = _cpu_seconds(server.pid)
                rate, answered, tool = _load(urls[side], args.connections, args.duration)
                cpu = (_cpu_seconds(server.pid) - cpu_before) / max(answered, 1)
                rates[side] = (rate, cpu, tool)
            (api, api_cpu, tool), (bare, bare_cpu, _) = rates["api"], rates["bare"]
            ratios.append(api / bare)
            cpu_ratios.append(bare_cpu / api_cpu)
            print(
                f"  round {round_number}: whnode GET /v1/menus/{{id}} {api:>8,.0f} req/s "
                f"({tool}); bare aiohttp handler {bare:>8,.0f} req/s; ratio {api / bare:.2f}; "
                f"server CPU per request {api_cpu * 1e6:.0f} vs {bare_cpu * 1e6:.0f} us"
            )
        print(f"  median ratio over {args.rounds} rounds: {statistics.median(ratios):.2f}")
        print(
            "  median ratio of server CPU per request (bare / whnode): "
            f"{statistics.median(cpu_ratios):.2f}"
        )
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    idle, loaded = asyncio.run(_memory(args.records))
    print(
        f"RSS of a node: idle {idle / 1024:.0f} MiB; holding {args.records:,} records "
        f"{loaded / 1024:.0f} MiB (hot cache budget included)"
    )
    return 0
