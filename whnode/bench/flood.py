"""``whnode bench flood``: one IP floods a node; do other clients still get through?

UDP: a DHT node's socket listens on 127.0.0.1; flooder processes send junk datagrams from
127.0.0.2 as fast as they can; legitimate peers, each on an address of its own
(127.0.0.3, 127.0.0.4, ...), ping the node at a steady rate and count the replies. The loss
of the legitimate peers is printed before the flood and during it (goal: under 5 % during).

Node: a whole node (sandbox upstream, a hot menu) is flooded from 127.0.0.2 on its HTTP API
(keep-alive GETs over many connections) and its UDP port at once, while a client on
127.0.0.3 GETs the menu at a steady rate: its p99 before and during is printed (goal: within
2x), and the legitimate UDP peers' loss meanwhile.

Loopback addresses stand for remote ones here: the node's loopback exemptions are off.

Every figure is printed with the load average; ``--stress N`` runs N CPU burners beside.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from whnode.bench.cluster import cpu_burners, load_average

__all__ = ["main"]

NODE_HOST = "127.0.0.1"
FLOOD_HOST = "127.0.0.2"
PEER_HOST_BASE = 3
"""Legitimate peer i sends from 127.0.0.(3 + i)."""


def _flooder(port: int, seconds: float, size: int, hop_ports: bool) -> None:
    """Send junk datagrams to ``port`` for ``seconds``; print how many were sent."""
    payload = bytes([0]) + os.urandom(size - 1)  # a request frame byte, then garbage
    sockets = []
    for _ in range(64 if hop_ports else 1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((FLOOD_HOST, 0))
        sock.setblocking(False)
        sockets.append(sock)
    target = (NODE_HOST, port)
    sent = 0
    end = time.monotonic() + seconds
    index = 0
    while True:
        for _ in range(256):
            try:
                sockets[index % len(sockets)].sendto(payload, target)
                sent += 1
            except (BlockingIOError, ConnectionRefusedError):
                pass
            index += 1
        if time.monotonic() >= end:
            break
    print(json.dumps({"sent": sent, "seconds": seconds}), flush=True)


def _peers(port: int, peers: int, rate: float, phases: list[float]) -> None:
    """``peers`` legitimate peers ping the node at ``rate`` each; per phase: sent, answered."""
    from whnode.dht.contact import PublicKey, node_id_for
    from whnode.dht.wire import MSG_ID_BYTES, Hello, RpcName, encode_request

    sockets = []
    hellos = []
    for index in range(peers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"127.0.0.{PEER_HOST_BASE + index}", 0))
        sock.setblocking(False)
        sockets.append(sock)
        key = PublicKey(os.urandom(32))
        # routing-only: the pinging peers are never owners (no HTTP side to fetch from)
        hellos.append(Hello(node_id_for(key), key, routing_only=True))
    results = []
    interval = 1.0 / (rate * peers)
    for seconds in phases:
        pending: dict[bytes, float] = {}
        sent = answered = 0
        rtts: list[float] = []
        start = time.monotonic()
        next_send = start
        turn = 0
        while True:
            now = time.monotonic()
            if now >= start + seconds:
                break
            if now >= next_send:
                index = turn % peers
                msg_id = os.urandom(MSG_ID_BYTES)
                datagram = encode_request(msg_id, RpcName.PING, hellos[index].encode())
                sockets[index].sendto(datagram, (NODE_HOST, port))
                pending[msg_id] = now
                sent += 1
                turn += 1
                next_send += interval
            for sock in sockets:
                while True:
                    try:
                        data = sock.recv(2048)
                    except BlockingIOError:
                        break
                    sent_at = pending.pop(data[1 : 1 + MSG_ID_BYTES], None)
                    if sent_at is not None:
                        answered += 1
                        rtts.append(time.monotonic() - sent_at)
            time.sleep(min(0.0005, max(0.0, next_send - time.monotonic())))
        # replies still in flight get a grace period of one second
        grace = time.monotonic() + 1.0
        while pending and time.monotonic() < grace:
            for sock in sockets:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    continue
                if pending.pop(data[1 : 1 + MSG_ID_BYTES], None) is not None:
                    answered += 1
            time.sleep(0.001)
        rtts.sort()
        p99 = rtts[int(0.99 * (len(rtts) - 1))] if rtts else float("nan")
        results.append({"sent": sent, "answered": answered, "p99_ms": p99 * 1000})
    print(json.dumps(results), flush=True)


@dataclass(frozen=True, slots=True)
class UdpFlood:
    baseline_loss: float
    flood_loss: float
    baseline_p99_ms: float
    flood_p99_ms: float
    flood_rate: float
    """Datagrams per second the flooders sent."""
    received: int
    dropped_by_source: int
    receive_buffer: int


def _cpus() -> tuple[set[int] | None, set[int] | None]:
    """(node CPUs, flooder CPUs): separate ones when there are two or more, so that the
    flooders' own CPU use (which a real attacker spends on its own machine) does not starve
    the node; None when they must share."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if len(cpus) < 2:
        return None, None
    return set(cpus[:1]), set(cpus[1:])


def _spawn(code: str) -> subprocess.Popen[str]:
    _, load = _cpus()
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
        preexec_fn=None if load is None else (lambda: os.sched_setaffinity(0, load)),
    )


async def udp_flood(
    *, seconds: float, flooders: int, peers: int, rate: float, size: int, hop_ports: bool
) -> UdpFlood:
    from whnode.dht import DhtConfig, DhtNode
    from whnode.dht.contact import PublicKey

    config = DhtConfig(ip_limit_exempts_loopback=False)
    with tempfile.TemporaryDirectory() as directory:
        node = DhtNode(PublicKey(os.urandom(32)), config, peers_file=Path(directory) / "p.json")
        port = await node.listen(NODE_HOST, 0)
        try:
            baseline = min(5.0, seconds)
            peer_code = (
                "from whnode.bench.flood import _peers; "
                f"_peers({port}, {peers}, {rate}, [{baseline}, {seconds}])"
            )
            peer_process = _spawn(peer_code)
            await asyncio.sleep(baseline + 1.2)  # the baseline phase and its grace second
            flood_code = (
                "from whnode.bench.flood import _flooder; "
                f"_flooder({port}, {seconds}, {size}, {hop_ports})"
            )
            flood_processes = [_spawn(flood_code) for _ in range(flooders)]
            outputs = await asyncio.gather(
                *(asyncio.to_thread(process.communicate) for process in flood_processes)
            )
            sent = sum(json.loads(out)["sent"] for out, _ in outputs)
            peer_out, _ = await asyncio.to_thread(peer_process.communicate)
            phases = json.loads(peer_out)
            stats = node.statistics()
        finally:
            await node.aclose()

    def loss(phase: dict[str, float]) -> float:
        return 1.0 - phase["answered"] / max(1, phase["sent"])

    return UdpFlood(
        baseline_loss=loss(phases[0]),
        flood_loss=loss(phases[1]),
        baseline_p99_ms=phases[0]["p99_ms"],
        flood_p99_ms=phases[1]["p99_ms"],
        flood_rate=sent / seconds,
        received=stats.datagrams_received,
        dropped_by_source=stats.rate_limited_drops,
        receive_buffer=stats.receive_buffer_bytes,
    )


# ---------------------------------------------------------------------- HTTP and UDP at once
def _http_flooder(url: str, seconds: float, connections: int) -> None:
    """GET ``url`` over ``connections`` keep-alive connections from FLOOD_HOST."""
    import aiohttp

    async def flood() -> int:
        sent = 0
        end = time.monotonic() + seconds
        connector = aiohttp.TCPConnector(limit=connections, local_addr=(FLOOD_HOST, 0))
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> None:
                nonlocal sent
                while time.monotonic() < end:
                    try:
                        async with session.get(url) as response:
                            await response.read()
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.01)
                    sent += 1

            await asyncio.gather(*(one() for _ in range(connections)))
        return sent

    sent = asyncio.run(flood())
    print(json.dumps({"sent": sent, "seconds": seconds}), flush=True)


def _client(port: int, path: str, seconds: float, rate: float) -> None:
    """Another client, in a process of its own on ``127.0.0.3``: GET ``path`` at ``rate`` per
    second for ``seconds`` over one keep-alive connection (a new one after an error); print
    the (offset, latency, status) of each request as JSON. Synchronous sockets: what it
    measures is the node's answer time, not an event loop of its own."""
    import http.client

    def connect() -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(
            NODE_HOST, port, timeout=10, source_address=(f"127.0.0.{PEER_HOST_BASE}", 0)
        )
        connection.connect()
        return connection

    connection = connect()
    samples: list[tuple[float, float, int]] = []
    start = time.monotonic()
    next_send = start
    while (now := time.monotonic()) < start + seconds:
        if now < next_send:
            time.sleep(next_send - now)
        next_send += 1.0 / rate
        sent = time.perf_counter()
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
            connection.close()
            connection = connect()
        samples.append((time.monotonic() - start, time.perf_counter() - sent, status))
    connection.close()
    print(json.dumps(samples), flush=True)


async def _latencies(
    port: int, path: str, seconds: float, rate: float
) -> tuple[list[float], int, list[tuple[float, float]]]:
    """Run ``_client``: sorted latencies of the answers 200, failures, and the timeline
    (offset, latency) of the answers."""
    process = subprocess.Popen(  # noqa: ASYNC220 - started once per phase, not per request
        [
            sys.executable,
            "-c",
            f"from whnode.bench.flood import _client; _client({port}, {path!r}, {seconds}, {rate})",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    out, _ = await asyncio.to_thread(process.communicate)
    samples = json.loads(out)
    answered = [(at, latency) for at, latency, status in samples if status == 200]
    failures = len(samples) - len(answered)
    return sorted(latency for _, latency in answered), failures, answered


def _by_second(timeline: list[tuple[float, float]]) -> list[tuple[int, float]]:
    """(second, p99 ms) of a timeline of (offset, latency)."""
    seconds: dict[int, list[float]] = {}
    for at, latency in timeline:
        seconds.setdefault(int(at), []).append(latency)
    return [(second, _p99(sorted(seconds[second]))) for second in sorted(seconds)]


def _p99(values: list[float]) -> float:
    return values[int(0.99 * (len(values) - 1))] * 1000 if values else float("nan")


@dataclass(frozen=True, slots=True)
class NodeFlood:
    before_p99_ms: float
    during_p99_ms: float
    before_failures: int
    during_failures: int
    http_rate: float
    udp_rate: float
    udp_loss: float
    refused_http: int
    flood_blocks: int
    shaped: int
    """The flooder's requests delayed for their fair turn (whnode.api.fairness)."""
    contended_periods: int
    during_p50_ms: float
    by_second: list[tuple[int, float]]
    """(second, p99 ms) of the other client during the flood."""


async def node_flood(
    *,
    seconds: float,
    flooders: int,
    connections: int,
    rate: float,
    api_rate: float | None,
    peers: int,
) -> NodeFlood:
    """A real node (sandbox upstream); a client's GET latency before and during a flood of
    the same node's HTTP API and UDP port from one IP; legitimate UDP peers' loss meanwhile."""
    from whnode.api.app import public_api
    from whnode.node import Node
    from whnode.sandbox import SandboxConfig, run_sandbox
    from whnode.testing.cluster import cluster_config

    with tempfile.TemporaryDirectory() as directory:
        async with run_sandbox(SandboxConfig()) as sandbox:
            config = cluster_config(Path(directory), sandbox_url=sandbox.base_url)
            if api_rate is not None:  # the operator's per-client budget (api.requests_per_second)
                api = dataclasses.replace(
                    config.api, requests_per_second=api_rate, burst=max(1, int(2 * api_rate))
                )
                config = dataclasses.replace(config, api=api)
            async with Node(config) as node:
                # loopback stands for remote addresses here: no exemption (bench only)
                protocol = node.dht._protocol
                assert protocol is not None
                protocol._loopback_exempt = False
                dispensary = sandbox.dispensaries[0]
                path = f"/v1/menus/{dispensary}?max_age=3600"
                url = f"{node.http_url}{path}"
                await _latencies(node.port, path, 1.0, 20)  # fill, then hot
                before, before_failures, _ = await _latencies(
                    node.port, path, min(10.0, seconds), rate
                )
                peer_code = (
                    "from whnode.bench.flood import _peers; "
                    f"_peers({node.port}, {peers}, 50.0, [{seconds}])"
                )
                peer_process = _spawn(peer_code) if peers else None
                http_code = (
                    "from whnode.bench.flood import _http_flooder; "
                    f"_http_flooder({url!r}, {seconds}, {connections})"
                )
                udp_code = (
                    "from whnode.bench.flood import _flooder; "
                    f"_flooder({node.port}, {seconds}, 120, False)"
                )
                floods = [_spawn(http_code)] + [_spawn(udp_code) for _ in range(flooders)]
                await asyncio.sleep(1.0)  # the flood is under way
                during, during_failures, timeline = await _latencies(
                    node.port, path, seconds - 2.0, rate
                )
                outputs = [
                    json.loads(out)
                    for out, _ in await asyncio.gather(
                        *(asyncio.to_thread(process.communicate) for process in floods)
                    )
                ]
                phase = {"sent": 0, "answered": 0}
                if peer_process is not None:
                    peer_out, _ = await asyncio.to_thread(peer_process.communicate)
                    phase = json.loads(peer_out)[0]
                refused = public_api(node.app).limiter.statistics().refused
                fairness = public_api(node.app).fairness.statistics()
                blocks = node.dht.statistics().flood_blocks
    return NodeFlood(
        before_p99_ms=_p99(before),
        during_p99_ms=_p99(during),
        before_failures=before_failures,
        during_failures=during_failures,
        http_rate=outputs[0]["sent"] / seconds,
        udp_rate=sum(o["sent"] for o in outputs[1:]) / seconds,
        udp_loss=1.0 - phase["answered"] / max(1, phase["sent"]),
        refused_http=refused,
        flood_blocks=blocks,
        shaped=fairness.shaped,
        contended_periods=fairness.contended_periods,
        during_p50_ms=during[len(during) // 2] * 1000 if during else float("nan"),
        by_second=_by_second(timeline),
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench flood", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="flood duration")
    parser.add_argument("--flooders", type=int, default=2, help="UDP flooding processes (one IP)")
    parser.add_argument("--connections", type=int, default=64, help="HTTP flood connections")
    parser.add_argument("--peers", type=int, default=8, help="legitimate UDP peers")
    parser.add_argument("--rate", type=float, default=50.0, help="pings/s per peer, GETs/s")
    parser.add_argument("--size", type=int, default=120, help="flood datagram bytes")
    parser.add_argument("--hop-ports", action="store_true", help="UDP flood from 64 ports")
    parser.add_argument(
        "--only", choices=("udp", "node"), help="run one part: the DHT alone, or a whole node"
    )
    parser.add_argument(
        "--api-rate",
        type=float,
        help="the node's api.requests_per_second (burst twice that); default: the default",
    )
    parser.add_argument("--stress", type=int, default=0, help="CPU burners beside the run")
    args = parser.parse_args(argv)
    from whnode.daemon import loop_factory

    node_cpus, load_cpus = _cpus()
    if node_cpus is not None:
        os.sched_setaffinity(0, node_cpus)  # the node here; flooders and peers elsewhere
        print(
            f"node pinned to CPU {sorted(node_cpus)}, flooders and peers to CPU"
            f" {sorted(load_cpus or ())}; CPU burners (--stress) unpinned"
        )
    with cpu_burners(args.stress), asyncio.Runner(loop_factory=loop_factory()) as runner:
        if args.only in (None, "udp"):
            udp = runner.run(
                udp_flood(
                    seconds=args.seconds,
                    flooders=args.flooders,
                    peers=args.peers,
                    rate=args.rate,
                    size=args.size,
                    hop_ports=args.hop_ports,
                )
            )
            load = load_average()
            print(
                f"UDP flood from one IP at a DHT node ({args.flooders} processes,"
                f" {udp.flood_rate:,.0f} datagrams/s of {args.size} bytes, {args.seconds:g} s);"
                f" {args.peers} legitimate peers at {args.rate:g} pings/s each;"
                f" --stress {args.stress}; load average {load}"
            )
            print(f"  SO_RCVBUF granted: {udp.receive_buffer:,} bytes")
            print(
                f"  legitimate loss before the flood: {udp.baseline_loss:.2%}"
                f" (p99 {udp.baseline_p99_ms:.1f} ms)"
            )
            print(
                f"  legitimate loss during the flood: {udp.flood_loss:.2%}"
                f" (p99 {udp.flood_p99_ms:.1f} ms; goal < 5 %)"
            )
            print(
                f"  node read {udp.received:,} datagrams, refused {udp.dropped_by_source:,} by"
                " source before decoding; the rest was dropped in the kernel"
            )
        if args.only in (None, "node"):
            node = runner.run(
                node_flood(
                    seconds=args.seconds,
                    flooders=args.flooders,
                    connections=args.connections,
                    rate=args.rate,
                    api_rate=args.api_rate,
                    peers=args.peers,
                )
            )
            load = load_average()
            ratio = node.during_p99_ms / node.before_p99_ms
            print(
                f"HTTP + UDP flood from one IP at a node ({node.http_rate:,.0f} requests/s over"
                f" {args.connections} connections, {node.udp_rate:,.0f} datagrams/s,"
                f" {args.seconds:g} s); api.requests_per_second"
                f" {args.api_rate or 'default'}; --stress {args.stress}; load average {load}"
            )
            print(
                f"  another client's GET p99: {node.before_p99_ms:.1f} ms before,"
                f" {node.during_p99_ms:.1f} ms during ({ratio:.2f}x; goal <= 2x);"
                f" p50 during {node.during_p50_ms:.1f} ms;"
                f" failures {node.before_failures} / {node.during_failures}"
            )
            print(
                f"  fair shares: {node.shaped:,} of the flooder's requests waited for their"
                f" turn; the event loop lagged > 5 ms in {node.contended_periods} periods of 0.2 s"
            )
            print(
                "  the other client's p99 by second of the flood: "
                + ", ".join(f"{second}: {p99:.0f} ms" for second, p99 in node.by_second)
            )
            print(
                f"  legitimate UDP peers' loss during the flood: {node.udp_loss:.2%} (goal < 5 %);"
                f" flooder's HTTP requests refused 429: {node.refused_http:,};"
                f" kernel blocks: {node.flood_blocks}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
