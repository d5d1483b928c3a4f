"""A user-space network impairment: delay, jitter, loss and partitions for IPv4 packets.

This kernel has no ``tc netem``; ``whnode.bench.netns`` therefore routes every packet
between node namespaces through a TUN device in a hub namespace, and this process (started
inside the hub: ``ip netns exec HUB python -m whnode.bench.impair ...``) reads each packet
from the device, drops it with probability ``--loss`` (or when a partition separates its
source and destination), and writes it back after ``--delay-ms`` plus or minus up to
``--jitter-ms`` (uniform, as netem's default jitter; packets may be reordered, as with
netem). The kernel then forwards it to its destination.

Control: SIGUSR1 starts the partition given by ``--partition`` (the addresses of one side,
comma-separated: packets between that side and any other address of ``--subnet`` are
dropped), SIGUSR2 heals it, SIGTERM ends the process. Counters are printed to stdout on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import ipaddress
import os
import random
import signal
import struct
import sys

__all__ = ["main", "open_tun"]

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET = 65_536


def open_tun(name: str) -> int:
    """Attach to (or create) TUN device ``name`` in this network namespace; its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class Impairment:
    def __init__(
        self,
        fd: int,
        *,
        delay: float,
        jitter: float,
        loss: float,
        side: frozenset[bytes],
        subnet: ipaddress.IPv4Network,
        seed: int,
    ) -> None:
        self.fd = fd
        self.delay = delay
        self.jitter = jitter
        self.loss = loss
        self.side = side
        self.subnet = subnet
        self.partitioned = False
        self.random = random.Random(seed)
        self.loop = asyncio.get_running_loop()
        self.counts = {"packets": 0, "lost": 0, "partitioned": 0, "forwarded": 0, "errors": 0}

    def _separated(self, packet: bytes) -> bool:
        source, destination = packet[12:16], packet[16:20]
        if (source in self.side) == (destination in self.side):
            return False
        other = destination if source in self.side else source
        return ipaddress.IPv4Address(other) in self.subnet

    def readable(self) -> None:
        while True:
            try:
                packet = os.read(self.fd, MAX_PACKET)
            except BlockingIOError:
                return
            except OSError:
                self.counts["errors"] += 1
                return
            self.counts["packets"] += 1
            if len(packet) < 20 or packet[0] >> 4 != 4:
                continue  # IPv4 only
            if self.partitioned and self._separated(packet):
                self.counts["partitioned"] += 1
                continue
            if self.random.random() < self.loss:
                self.counts["lost"] += 1
                continue
            wait = max(0.0, self.delay + self.random.uniform(-self.jitter, self.jitter))
            self.loop.call_later(wait, self._write, packet)

    def _write(self, packet: bytes) -> None:
        try:
            os.write(self.fd, packet)
            self.counts["forwarded"] += 1
        except OSError:
            self.counts["errors"] += 1


async def _run(args: argparse.Namespace) -> int:
    fd = open_tun(args.tun)
    side = frozenset(
        ipaddress.IPv4Address(item).packed for item in args.partition.split(",") if item
    )
    impairment = Impairment(
        fd,
        delay=args.delay_ms / 1000,
        jitter=args.jitter_ms / 1000,
        loss=args.loss,
        side=side,
        subnet=ipaddress.IPv4Network(args.subnet),
        seed=args.seed,
    )
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def partition(on: bool) -> None:
        impairment.partitioned = on
        print(f"partition {'on' if on else 'healed'}", flush=True)

    loop.add_signal_handler(signal.SIGUSR1, partition, True)
    loop.add_signal_handler(signal.SIGUSR2, partition, False)
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    loop.add_reader(fd, impairment.readable)
    print("ready", flush=True)
    await done.wait()
    loop.remove_reader(fd)
    os.close(fd)
    print(" ".join(f"{k}={v}" for k, v in impairment.counts.items()), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whnode.bench.impair", description=__doc__)
    parser.add_argument("--tun", required=True)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=20.0)
    parser.add_argument("--loss", type=float, default=0.02)
    parser.add_argument("--partition", default="", help="addresses of one side")
    parser.add_argument("--subnet", default="0.0.0.0/0", help="where the other side lives")
    parser.add_argument("--seed", type=int, default=1)
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
