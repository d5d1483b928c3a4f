"""Anti-amplification: an address that never answered us gets at most 3x what it sent.

Real sockets on loopback; the node treats loopback like any remote address here
(``ip_limit_exempts_loopback`` off: loopback is exempt by default, as no remote host can
forge a loopback source).
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack

import umsgpack  # type: ignore[import-untyped]

from tests.dht.support import (
    LOOPBACK,
    RawPeer,
    answer_pings,
    fast,
    fleet,
    raw_peer,
    start_node,
    wait_for_condition,
)
from whnode.dht.wire import FrameKind, RpcName, encode_frame

CONFIG = fast(ip_limit_exempts_loopback=False)


class _Counting(RawPeer):
    """A raw peer that also counts the bytes it receives."""

    received_bytes: int = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received_bytes += len(data)
        super().datagram_received(data, addr)


def _find_node(peer: RawPeer, port: int) -> tuple[bytes, int]:
    msg_id = os.urandom(20)
    datagram = (
        b"\x00" + msg_id + umsgpack.packb(["find_node", [*peer.hello.encode(), os.urandom(20)]])
    )
    assert peer.transport is not None
    peer.transport.sendto(datagram, (LOOPBACK, port))
    return msg_id, len(datagram)


async def _reply(peer: RawPeer, msg_id: bytes) -> object:
    async with asyncio.timeout(2):
        while True:
            reply_id, body, _ = await peer.replies.get()
            if reply_id == msg_id:
                return body


async def _populated_node(stack: AsyncExitStack, contacts: int):  # type: ignore[no-untyped-def]
    node = await start_node(CONFIG)
    for _ in range(contacts):
        peer = await stack.enter_async_context(raw_peer(answer_pings))
        await peer.ask("ping", peer.hello.encode(), (LOOPBACK, node.port))
    await wait_for_condition(lambda: len(node.contacts()) >= 20)
    return node


async def _counting_peer(stack: AsyncExitStack, handler=None) -> _Counting:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(
        lambda: _Counting(handler), local_addr=(LOOPBACK, 0)
    )
    stack.callback(peer.close)
    return peer


async def test_a_forged_source_draws_at_most_three_times_its_bytes() -> None:
    async with AsyncExitStack() as stack, fleet() as nodes:
        node = await _populated_node(stack, 30)
        nodes.append(node)
        victim = await _counting_peer(stack)  # never answers: it did not ask for anything
        base = node.statistics()
        probes = base.verification_pings
        sent = 0
        for count in range(1, 21):  # one at a time: each is handled before the next goes
            _msg_id, size = _find_node(victim, node.port)
            sent += size

            def handled(count: int = base.rpcs_received + count) -> bool:
                return bool(node.statistics().rpcs_received == count)

            await wait_for_condition(handled)
        stats = node.statistics()
        # every reply the node sent (those not dropped) and its probe have arrived
        replies = 20 - (stats.amplification_dropped - base.amplification_dropped)
        pings = stats.verification_pings - probes
        await wait_for_condition(
            lambda: victim.replies.qsize() == replies and len(victim.requests) == pings
        )
        assert victim.received_bytes <= 3 * sent
        assert victim.received_bytes > sent  # answered, with fewer contacts
        stats = node.statistics()
        assert stats.amplification_trimmed >= 1
        assert stats.verification_pings == probes + 1  # one probe per 30 s, within allowance
        assert [name for name, _, _ in victim.requests] == ["ping"]


async def test_an_address_that_answers_gets_full_replies() -> None:
    async with AsyncExitStack() as stack, fleet() as nodes:
        node = await _populated_node(stack, 30)
        nodes.append(node)
        peer = await _counting_peer(stack, answer_pings)
        msg_id, size = _find_node(peer, node.port)
        first = await _reply(peer, msg_id)
        assert isinstance(first, list)
        assert len(first[-1]) < 20
        assert len(encode_frame(FrameKind.REPLY, msg_id, first)) <= 3 * size
        # the node pinged the requester; the answer verified its address
        await wait_for_condition(lambda: [n for n, _, _ in peer.requests] == ["ping"])
        # its answer to the ping reached the node: the address is verified (the node's own
        # guard says so; read on the node's own clock)
        protocol = node._protocol
        assert protocol is not None
        assert peer.transport is not None
        address = (LOOPBACK, peer.transport.get_extra_info("sockname")[1])
        await wait_for_condition(
            lambda: protocol.amplification.is_verified(address, protocol._now())
        )
        msg_id, size = _find_node(peer, node.port)
        second = await _reply(peer, msg_id)
        assert isinstance(second, list)
        assert len(second[-1]) == 20
        assert node.statistics().amplification_trimmed == 1


async def test_pings_from_unverified_addresses_are_answered_in_full() -> None:
    async with AsyncExitStack() as stack, fleet() as nodes:
        node = await start_node(CONFIG)
        nodes.append(node)
        peer = await stack.enter_async_context(raw_peer())
        reply = await peer.ask(RpcName.PING.value, peer.hello.encode(), (LOOPBACK, node.port))
        assert reply[0] == node.node_id
        assert node.statistics().amplification_dropped == 0
