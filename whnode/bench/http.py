"""``whnode bench http``: hot-hit throughput of the public API, and a node's memory.

1. Starts one node (with the sandbox upstream) in a server process, fills a realistic
   (250-product) and a large (2,500-product) menu and prints the bytes on the wire of each
   representation in each content coding (identity, br, zstd, gzip). Beside the node, in the
   same process, a bare aiohttp handler per measured coding (``--encodings``, default
   identity and br) on the same route returns the same bytes (body and headers; aiohttp adds
   Date, Server and Content-Length to both), asked with the same path, query and
   Accept-Encoding. A real load generator (``wrk`` when
   installed, else a Python client in another process) then hits ``GET /v1/menus/{id}``
   and the bare handler, one after the other, with the same connections and duration, in
   many short rounds that alternate which goes first (1 s each by default: the machine's
   speed may drift within seconds, and short alternating runs compare both sides under the
   same conditions). The figure is the median ratio of requests per second; beside it, the
   server process's CPU time per answered request of each side (from /proc) and how busy
   the server was (near 100% of a CPU: the server, not the load generator, set the pace).
   With two CPUs or more, the server process and the load generator are pinned to separate
   CPUs (``Placement``).
2. Reports the RSS of an idle node and of a node holding N records (signed snapshots put into
   its store and hot cache through the node-to-node PUT path).

``--stress N`` runs N CPU-burning processes beside it (not pinned: they compete with the
server and the load generator alike); the load average is printed with the figures. .ci/run
installs Debian's ``wrk``; without it the Python client is used and said so (it may not keep
the server busy: read the "server busy" figure).
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
from collections.abc import Callable
from dataclasses import dataclass
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
from whnode.api.encoding import OFFERED

ENCODINGS = sys.argv[1].split(",")

async def main():
    with tempfile.TemporaryDirectory() as directory:
        async with run_sandbox(SandboxConfig()) as sandbox:
            dispensary = sandbox.named(SizeClass.REALISTIC, Vendor.WEEDMAPS)
            large = sandbox.named(SizeClass.LARGE, Vendor.WEEDMAPS)
            config = cluster_config(Path(directory) / "node", sandbox_url=sandbox.base_url)
            import dataclasses
            config = dataclasses.replace(config, api=dataclasses.replace(
                config.api, requests_per_second=1e9, burst=10**9))
            async with Node(config) as node:
                import aiohttp
                sizes = {}
                async with aiohttp.ClientSession(auto_decompress=False) as session:
                    for name, target in (("realistic", dispensary), ("large", large)):
                        await node.service.get_menu(target, max_age=86400)
                        url = f"{node.http_url}/v1/menus/{target}?max_age=86400"
                        for accept in ("application/json", "application/cbor"):
                            for coding in ("identity", *OFFERED):
                                headers = {"Accept": accept, "Accept-Encoding": coding}
                                async with session.get(url, headers=headers) as response:
                                    assert response.headers.get(
                                        "Content-Encoding", "identity") == coding
                                    body = await response.read()
                                sizes[f"{name} {accept.split('/')[1]} {coding}"] = len(body)
                    url = f"{node.http_url}/v1/menus/{dispensary}?max_age=86400"
                    sides = {}
                    runners = []
                    for coding in ENCODINGS:
                        asked = {"Accept-Encoding": coding}
                        async with session.get(url, headers=asked) as response:
                            body = await response.read()
                            headers = {k: v for k, v in response.headers.items()
                                       if k not in ("Date", "Server", "Content-Length")}
                        async def bare(request, body=body, headers=headers):
                            return web.Response(body=body, headers=headers)
                        app = web.Application()
                        app.router.add_get("/v1/menus/{dispensary}", bare)
                        runner = web.AppRunner(app, access_log=None)
                        await runner.setup()
                        site = web.TCPSite(runner, "127.0.0.1", 0)
                        await site.start()
                        runners.append(runner)
                        bare_port = runner.addresses[0][1]
                        bare_url = (f"http://127.0.0.1:{bare_port}"
                                    f"/v1/menus/{dispensary}?max_age=86400")
                        sides[coding] = {"api": url, "bare": bare_url, "bytes": len(body)}
                print(json.dumps({"sides": sides, "sizes": sizes}), flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
                for runner in runners:
                    await runner.cleanup()

from whnode.daemon import loop_factory  # uvloop when installed, as the daemon runs
with asyncio.Runner(loop_factory=loop_factory()) as runner:
    runner.run(main())
"""

PY_LOAD = r"""
import asyncio, sys, time, aiohttp
url, connections, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
headers = {"Accept-Encoding": sys.argv[4]}
async def worker(session, stop, counts):
    while time.monotonic() < stop:
        async with session.get(url, headers=headers) as response:
            await response.read()
            counts[0] += 1
async def main():
    counts = [0]
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
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


@dataclass(frozen=True)
class Placement:
    """CPUs of the server process and of the load generator. With two CPUs or more they
    get separate ones, so that the two never compete for a CPU: each run then measures the
    server's own cost per request, not how the scheduler shared the CPUs."""

    server: frozenset[int] | None
    load: frozenset[int] | None

    @property
    def load_threads(self) -> int:
        return len(self.load) if self.load else 2

    @classmethod
    def choose(cls) -> Placement:
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return cls(None, None)
        if len(cpus) < 2:
            return cls(None, None)
        return cls(frozenset(cpus[:1]), frozenset(cpus[1:]))

    def describe(self) -> str:
        if self.server is None or self.load is None:
            return "server and load generator share the CPUs"
        return (
            f"server pinned to CPU {','.join(map(str, sorted(self.server)))}, "
            f"load generator to CPU {','.join(map(str, sorted(self.load)))}"
        )


def _pinned(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


@dataclass(frozen=True)
class Run:
    """One load run against one side."""

    rate: float
    """Requests answered per second."""
    cpu_per_request: float
    """Server process CPU seconds (user + system) per answered request."""
    busy: float
    """Server process CPU seconds per second of the run (1.0: one CPU saturated)."""
    tool: str


def _load(
    url: str,
    connections: int,
    duration: float,
    placement: Placement,
    pid: int,
    coding: str = "identity",
) -> Run:
    """One load run against ``url`` asking for content coding ``coding``, with the server
    process's CPU time over it."""
    cpu_before, started = _cpu_seconds(pid), time.monotonic()
    wrk = shutil.which("wrk")
    if wrk:
        output = subprocess.run(
            [
                wrk,
                f"-t{placement.load_threads}",
                f"-c{connections}",
                f"-d{duration:g}s",
                "--latency",
                "-H",
                f"Accept-Encoding: {coding}",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=_pinned(placement.load),
        ).stdout
        match = re.search(r"Requests/sec:\s+([\d.]+)", output)
        answered_match = re.search(r"(\d+) requests in", output)
        latency = re.search(r"99%\s+(\S+)", output)
        assert match is not None, output
        assert answered_match is not None, output
        rate, answered = float(match.group(1)), int(answered_match.group(1))
        tool = f"wrk, p99 {latency.group(1) if latency else '?'}"
    else:
        output = subprocess.run(
            [sys.executable, "-c", PY_LOAD, url, str(connections), str(duration), coding],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=_pinned(placement.load),
        ).stdout
        rate = float(output.strip())
        answered, tool = int(rate * duration), "python aiohttp client"
    cpu = _cpu_seconds(pid) - cpu_before
    wall = time.monotonic() - started
    return Run(rate, cpu / max(answered, 1), cpu / wall, tool)


def _quartiles(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    low, _, high = statistics.quantiles(values, n=4)
    return f"{low:.2f}-{high:.2f}"


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


def _throughput(
    args: argparse.Namespace, side: dict[str, str], coding: str, placement: Placement, pid: int
) -> None:
    """Alternating load runs against whnode and the bare handler, for one content coding."""
    print(
        f"hot-hit GET of a 250-product menu, Accept-Encoding: {coding} ({int(side['bytes']):,} "
        f"bytes on the wire), {args.connections} connections, {args.duration:g} s per run"
    )
    warm_up = min(2.0, max(1.0, args.duration))
    for name in ("api", "bare"):
        _load(side[name], args.connections, warm_up, placement, pid, coding)
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    busy: list[float] = []
    for round_number in range(1, args.rounds + 1):
        # alternate which side goes first: a drift in machine speed hits both equally
        order = ("api", "bare") if round_number % 2 else ("bare", "api")
        runs = {
            name: _load(side[name], args.connections, args.duration, placement, pid, coding)
            for name in order
        }
        api, bare = runs["api"], runs["bare"]
        ratios.append(api.rate / bare.rate)
        cpu_ratios.append(bare.cpu_per_request / max(api.cpu_per_request, 1e-9))
        busy.extend((api.busy, bare.busy))
        print(
            f"  round {round_number}: whnode GET /v1/menus/{{id}} {api.rate:>8,.0f} req/s "
            f"({api.cpu_per_request * 1e6:.0f} us CPU each); bare aiohttp handler "
            f"{bare.rate:>8,.0f} req/s ({bare.cpu_per_request * 1e6:.0f} us); "
            f"ratio {api.rate / bare.rate:.2f} ({api.tool})"
        )
    print(
        f"  {coding}: median ratio over {args.rounds} rounds: {statistics.median(ratios):.2f} "
        f"(quartiles {_quartiles(ratios)}); of server CPU per request (bare / whnode): "
        f"{statistics.median(cpu_ratios):.2f}; server busy {statistics.median(busy):.0%} "
        "of a CPU (median over runs)"
    )


def _print_sizes(sizes: dict[str, int]) -> None:
    """Bytes on the wire per menu, representation and content coding, side by side."""
    rows: dict[str, dict[str, int]] = {}
    codings: list[str] = []
    for label, size in sizes.items():
        menu, representation, coding = label.split(" ")
        rows.setdefault(f"{menu} {representation}", {})[coding] = size
        if coding not in codings:
            codings.append(coding)
    names = {"realistic": "250 products", "large": "2,500 products"}
    print("bytes on the wire per content coding (GET /v1/menus/{id}, compressed once, kept):")
    print(f"  {'menu':<26}" + "".join(f"{coding:>18}" for coding in codings))
    for row, by_coding in rows.items():
        menu, representation = row.split(" ")
        plain = by_coding["identity"]
        cells = "".join(
            f"{by_coding[coding]:>10,} ({plain / by_coding[coding]:4.1f}x)"
            if coding != "identity"
            else f"{plain:>18,}"
            for coding in codings
        )
        print(f"  {names[menu] + ', ' + representation:<26}{cells}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench http", description=__doc__)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=21, help="alternating runs of each side")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--stress", type=int, default=0, help="CPU burners beside the bench")
    parser.add_argument(
        "--encodings",
        default="identity,br",
        help="content codings whose hot-hit throughput is measured (comma-separated)",
    )
    args = parser.parse_args(argv)
    encodings = [coding.strip() for coding in args.encodings.split(",") if coding.strip()]

    from whnode.bench.cluster import cpu_burners

    with cpu_burners(args.stress):
        print(
            f"whnode bench http: {args.stress} CPU burners; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; load generator: "
            + ("wrk" if shutil.which("wrk") else "python aiohttp client (wrk not installed)")
        )
        _measure(args, encodings)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    idle, loaded = asyncio.run(_memory(args.records))
    print(
        f"RSS of a node: idle {idle / 1024:.0f} MiB; holding {args.records:,} records "
        f"{loaded / 1024:.0f} MiB (hot cache budget included)"
    )
    return 0


def _measure(args: argparse.Namespace, encodings: list[str]) -> None:
    placement = Placement.choose()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, ",".join(encodings)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_pinned(placement.server),
    )
    try:
        assert server.stdout is not None
        started = json.loads(server.stdout.readline())
        _print_sizes(started["sizes"])
        print(placement.describe())
        for coding in encodings:
            _throughput(args, started["sides"][coding], coding, placement, server.pid)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
