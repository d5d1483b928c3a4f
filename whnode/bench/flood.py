"""``whnode bench flood``: one IP floods a node; do other clients still get through?

UDP: a node's DHT socket listens on 127.0.0.1; flooder processes send junk datagrams from
127.0.0.2 as fast as they can; legitimate peers, each on an address of its own
(127.0.0.3, 127.0.0.4, ...), ping the node at a steady rate and count the replies. The loss
of the legitimate peers is printed before the flood and during it (goal: under 5 % during).
The node treats loopback like any remote address here (``ip_limit_exempts_loopback`` off).

Every figure is printed with the load average; ``--stress N`` runs N CPU burners beside.
"""

from __future__ import annotations

import argparse
import asyncio
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
        hellos.append(Hello(node_id_for(key), key))
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


def _spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
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
            await node.stop()

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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench flood", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="flood duration")
    parser.add_argument("--flooders", type=int, default=2, help="flooding processes (one IP)")
    parser.add_argument("--peers", type=int, default=8, help="legitimate peers")
    parser.add_argument("--rate", type=float, default=50.0, help="pings per second per peer")
    parser.add_argument("--size", type=int, default=120, help="flood datagram bytes")
    parser.add_argument("--hop-ports", action="store_true", help="flood from 64 source ports")
    parser.add_argument("--stress", type=int, default=0, help="CPU burners beside the run")
    args = parser.parse_args(argv)
    from whnode.daemon import loop_factory

    with cpu_burners(args.stress), asyncio.Runner(loop_factory=loop_factory()) as runner:
        result = runner.run(
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
        f"UDP flood from one IP ({args.flooders} processes, {result.flood_rate:,.0f} datagrams/s"
        f" of {args.size} bytes, {args.seconds:g} s); {args.peers} legitimate peers at"
        f" {args.rate:g} pings/s each; --stress {args.stress}; load average {load}"
    )
    print(f"  SO_RCVBUF granted: {result.receive_buffer:,} bytes")
    print(
        f"  legitimate loss before the flood: {result.baseline_loss:.2%}"
        f" (p99 {result.baseline_p99_ms:.1f} ms)"
    )
    print(
        f"  legitimate loss during the flood: {result.flood_loss:.2%}"
        f" (p99 {result.flood_p99_ms:.1f} ms; goal < 5 %)"
    )
    print(
        f"  node read {result.received:,} datagrams, dropped {result.dropped_by_source:,} by"
        f" source before decoding"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
