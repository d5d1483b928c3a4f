"""Test kit for the DHT tests: fast configurations, node fleets, and a raw UDP peer that
speaks rpcudp's framing directly (to send garbage, forge replies or play dead)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import umsgpack  # type: ignore[import-untyped]

from whnode.dht import Contact, DhtConfig, DhtNode, NodeId, PublicKey, node_id_for
from whnode.dht.wire import FrameKind, Hello, decode_frame, decode_request
from whnode.testing.clock import eventually

LOOPBACK = "127.0.0.1"

FAST = DhtConfig(
    rpc_timeout=1.0,
    stall_timeout=0.25,
    lookup_deadline=5.0,
    bootstrap_attempts=6,
    bootstrap_backoff=0.05,
    bootstrap_backoff_max=0.5,
    maintenance_interval=5.0,
    owner_cache_seconds=0.0,
)
"""Timeouts suited to loopback: small, so that failure paths run quickly."""


def new_key() -> PublicKey:
    return PublicKey(os.urandom(32))


def fast(**changes: Any) -> DhtConfig:
    return replace(FAST, **changes)


async def start_node(
    config: DhtConfig = FAST, *, key: PublicKey | None = None, **kwargs: Any
) -> DhtNode:
    node = DhtNode(key or new_key(), config, **kwargs)
    await node.listen(LOOPBACK, 0)
    return node


@asynccontextmanager
async def fleet() -> AsyncIterator[list[DhtNode]]:
    """A list that tests append started nodes to; every node is stopped at the end."""
    nodes: list[DhtNode] = []
    try:
        yield nodes
    finally:
        await asyncio.gather(*(node.aclose() for node in nodes))


async def network(
    nodes: list[DhtNode],
    size: int,
    config: DhtConfig = FAST,
    *,
    seed_config: DhtConfig | None = None,
) -> tuple[DhtNode, list[DhtNode]]:
    """A routing-only seed and ``size`` nodes joined through it (appended to ``nodes``)."""
    seed = await start_node(seed_config or replace(config, routing_only=True))
    nodes.append(seed)
    members = [await start_node(config) for _ in range(size)]
    nodes.extend(members)
    for member in members:
        await member.bootstrap([(LOOPBACK, seed.port)])
    # a second pass lets early joiners learn about later ones
    await asyncio.gather(*(member.find_closest(member.node_id, 20) for member in members))
    return seed, members


def true_owners(candidates: list[DhtNode], key: bytes, count: int) -> list[bytes]:
    """Brute force: the ``count`` owner-capable node ids closest to ``key``."""
    ids: list[bytes] = [node.node_id for node in candidates if not node.routing_only]
    return sorted(
        ids, key=lambda node_id: int.from_bytes(node_id, "big") ^ int.from_bytes(key, "big")
    )[:count]


def id_near(key: bytes, flip_bit: int) -> bytes:
    """An id sharing ``key``'s first bits, differing at bit ``flip_bit`` from the end."""
    value = int.from_bytes(key, "big") ^ (1 << flip_bit)
    return value.to_bytes(20, "big")


# ----------------------------------------------------------------------------- raw peer
Handler = Callable[["RawPeer", bytes, str, list[Any], tuple[str, int]], None]


@dataclass
class RawPeer(asyncio.DatagramProtocol):
    """A UDP endpoint that decodes requests and lets the test decide what to send back."""

    handler: Handler | None = None
    key: PublicKey = field(default_factory=new_key)
    routing_only: bool = False
    transport: asyncio.DatagramTransport | None = None
    requests: list[tuple[str, list[Any], tuple[str, int]]] = field(default_factory=list)
    replies: asyncio.Queue[tuple[bytes, Any, tuple[str, int]]] = field(
        default_factory=asyncio.Queue
    )

    @property
    def node_id(self) -> NodeId:
        return node_id_for(self.key)

    @property
    def hello(self) -> Hello:
        return Hello(self.node_id, self.key, self.routing_only)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    @property
    def contact(self) -> Contact:
        return Contact(self.node_id, LOOPBACK, self.port, routing_only=self.routing_only)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        frame = decode_frame(data)
        if frame.kind is FrameKind.REPLY:
            self.replies.put_nowait((frame.msg_id, frame.body, addr))
            return
        request = decode_request(frame.body)
        self.requests.append((request.name, request.args, addr))
        if self.handler is not None:
            self.handler(self, frame.msg_id, request.name, request.args, addr)

    def send_raw(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    def reply(self, msg_id: bytes, body: Any, addr: tuple[str, int]) -> None:
        """Send any msgpack body (umsgpack: garbage may hold maps and floats)."""
        self.send_raw(b"\x01" + msg_id + umsgpack.packb(body), addr)

    def request(self, name: str, args: list[Any], addr: tuple[str, int]) -> bytes:
        msg_id = os.urandom(20)
        self.send_raw(b"\x00" + msg_id + umsgpack.packb([name, args]), addr)
        return msg_id

    async def ask(
        self, name: str, args: list[Any], addr: tuple[str, int], timeout: float = 1.0
    ) -> Any:
        """Send a request and return the reply body; raises TimeoutError without one."""
        msg_id = self.request(name, args, addr)
        async with asyncio.timeout(timeout):
            while True:
                reply_id, body, _ = await self.replies.get()
                if reply_id == msg_id:
                    return body

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def answer_pings(
    peer: RawPeer, msg_id: bytes, name: str, args: list[Any], addr: tuple[str, int]
) -> None:
    """A handler answering ping correctly and ignoring everything else."""
    if name == "ping":
        peer.reply(msg_id, peer.hello.encode(), addr)


@asynccontextmanager
async def raw_peer(handler: Handler | None = None, **kwargs: Any) -> AsyncIterator[RawPeer]:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(
        lambda: RawPeer(handler, **kwargs), local_addr=(LOOPBACK, 0)
    )
    try:
        yield peer
    finally:
        peer.close()


async def wait_for_condition(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds; ``timeout`` is a failure guard, not a measurement."""
    await eventually(predicate, timeout=timeout)
