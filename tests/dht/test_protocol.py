"""The hardened protocol on real loopback sockets: garbage in, counters up, service on."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from contextlib import AsyncExitStack
from typing import Any

import pytest
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
from whnode import limits
from whnode.dht import DhtNode
from whnode.dht.protocol import WhnodeProtocol
from whnode.dht.wire import FrameKind, encode_frame

QUIET = fast(bootstrap_attempts=1, bootstrap_backoff=30.0, bootstrap_backoff_max=30.0)
"""One bootstrap round and no background retry during the test."""


def hello_args(peer: RawPeer) -> list[Any]:
    return peer.hello.encode()


def test_only_the_intended_rpcs_are_remotely_callable() -> None:
    callable_rpcs = sorted(
        name
        for name in dir(WhnodeProtocol)
        if name.startswith("rpc_") and callable(getattr(WhnodeProtocol, name))
    )
    assert callable_rpcs == ["rpc_find_node", "rpc_ping", "rpc_store"]


async def test_unknown_attributes_are_not_remote_calls() -> None:
    async with fleet() as nodes:
        node = await start_node()
        nodes.append(node)
        protocol = node._protocol
        assert protocol is not None
        with pytest.raises(AttributeError):
            protocol.find_value  # noqa: B018  (rpcudp would have returned a remote call)


async def test_malformed_datagrams_are_counted_and_the_node_keeps_serving() -> None:
    async with fleet() as nodes, raw_peer() as peer:
        node = await start_node()
        nodes.append(node)
        target = (LOOPBACK, node.port)
        garbage = [  # (asyncio does not send empty datagrams; decode_frame tests cover them)
            b"\x00short",
            b"\x05" + os.urandom(20) + umsgpack.packb(["ping", []]),  # unknown kind
            b"\x00" + os.urandom(20) + b"\xc1\xc1",  # invalid msgpack
            b"\x00" + os.urandom(20) + umsgpack.packb({"ping": 1}),  # wrong request shape
            b"\x00" + os.urandom(20) + umsgpack.packb(["ping", "not a list"]),
            b"\x00" + os.urandom(20) + umsgpack.packb(["ping", [1, 2, 3]]),  # wrong arg types
            b"\x00" + os.urandom(20) + umsgpack.packb(["find_node", hello_args(peer)]),  # arity
            b"\x00" + os.urandom(20) + b"\x91" * 1300,  # nesting deeper than the recursion limit
        ]
        for datagram in garbage:
            peer.send_raw(datagram, target)
        peer.request("find_value", [*hello_args(peer), os.urandom(20)], target)
        peer.request("stun", [], target)
        peer.send_raw(b"\x00" + os.urandom(20) + bytes(limits.MAX_DATAGRAM_BYTES), target)
        reply = await peer.ask("ping", hello_args(peer), target)
        assert reply[0] == node.node_id
        stats = node.statistics()
        assert stats.malformed_datagrams == len(garbage)
        assert stats.unknown_rpcs == 2
        assert stats.oversize_datagrams == 1
        assert stats.handler_errors == 0
        assert stats.rpcs_received == 1
        assert [contact.node_id for contact in node.contacts()] == [peer.node_id]


async def test_wrong_length_ids_and_unbound_ids_are_refused() -> None:
    async with fleet() as nodes, raw_peer() as peer, raw_peer() as other:
        node = await start_node()
        nodes.append(node)
        target = (LOOPBACK, node.port)
        refused = [
            ("ping", [os.urandom(1), peer.key, 0]),
            ("ping", [os.urandom(64), peer.key, 0]),
            ("ping", [peer.node_id, other.key, 0]),  # id is not SHA-1 of the key
            ("find_node", [other.node_id, peer.key, 0, os.urandom(20)]),
            ("find_node", [*hello_args(peer), os.urandom(19)]),  # target of the wrong length
            ("ping", [node.node_id, node.public_key, 0]),  # claiming the node's own id
        ]
        for name, args in refused:
            with pytest.raises(TimeoutError):
                await peer.ask(name, args, target, timeout=0.2)
        assert node.statistics().rejected_ids == len(refused)
        assert node.contacts() == []
        # the same peer with a correct hello is answered and enters the table
        await peer.ask("ping", hello_args(peer), target)
        assert [contact.node_id for contact in node.contacts()] == [peer.node_id]


async def test_store_is_refused_and_stores_nothing() -> None:
    async with fleet() as nodes, raw_peer() as peer:
        node = await start_node()
        nodes.append(node)
        target = (LOOPBACK, node.port)
        reply = await peer.ask("store", [*hello_args(peer), os.urandom(20), b"x" * 500], target)
        assert reply is False
        reply = await peer.ask("store", [b"garbage"], target)
        assert reply is False
        assert node.statistics().store_refused == 2
        assert node.contacts() == []  # a store is not an introduction


async def test_reply_from_a_wrong_source_is_ignored() -> None:
    async with fleet() as nodes, raw_peer() as forger:
        forged: list[bytes] = []

        def forge_then_answer(
            peer: RawPeer, msg_id: bytes, name: str, args: list[Any], addr: tuple[str, int]
        ) -> None:
            # a third party races the real answer with a forged one for the same message id
            forger.reply(msg_id, forger.hello.encode(), addr)
            forged.append(msg_id)
            asyncio.get_running_loop().call_later(
                0.05, peer.reply, msg_id, peer.hello.encode(), addr
            )

        async with raw_peer(forge_then_answer) as honest:
            node = await start_node()
            nodes.append(node)
            assert await node.bootstrap([(LOOPBACK, honest.port)]) == 1
            assert forged
            assert [contact.node_id for contact in node.contacts()] == [honest.node_id]
            assert forger.node_id not in {contact.node_id for contact in node.contacts()}
            assert node.statistics().wrong_source_replies >= 1


async def test_only_a_forged_reply_means_a_timeout() -> None:
    async with fleet() as nodes, raw_peer() as forger:

        def forge_only(
            peer: RawPeer, msg_id: bytes, name: str, args: list[Any], addr: tuple[str, int]
        ) -> None:
            forger.reply(msg_id, forger.hello.encode(), addr)

        async with raw_peer(forge_only) as silent:
            node = await start_node(QUIET)
            nodes.append(node)
            assert await node.bootstrap([(LOOPBACK, silent.port)]) == 0
            stats = node.statistics()
            assert stats.wrong_source_replies == 1
            assert stats.rpc_timeouts == 1
            assert stats.outstanding_rpcs == 0


async def test_rate_limit_per_source_address() -> None:
    # a refill of one datagram per 1,000 s: however long the test takes, only the burst passes
    config = fast(datagrams_per_source_per_second=0.001, datagram_burst_per_source=10)
    async with fleet() as nodes, raw_peer() as flooder, raw_peer() as polite:
        node = await start_node(config)
        nodes.append(node)
        target = (LOOPBACK, node.port)
        for _ in range(60):
            flooder.request("ping", hello_args(flooder), target)
        await wait_for_condition(lambda: node.statistics().datagrams_received >= 60)
        await wait_for_condition(lambda: flooder.replies.qsize() >= 10)
        stats = node.statistics()
        assert stats.rate_limited_drops == 50
        assert flooder.replies.qsize() == 10  # every reply sent has arrived: nothing more comes
        # another source address keeps its own budget
        assert (await polite.ask("ping", hello_args(polite), target))[0] == node.node_id
        assert node.statistics().tracked_sources == 2


async def test_rate_limit_per_ip_address_whatever_the_source_port() -> None:
    """Port hopping buys no budget: 6 sockets of one IP, each within its own per-source
    budget, share one per-IP bucket. Loopback is exempt by default, so the test turns the
    exemption off to exercise the bucket over real loopback sockets."""
    config = fast(  # refills of one datagram per 1,000 s: only the bursts pass
        datagrams_per_source_per_second=0.001,
        datagram_burst_per_source=10,
        datagrams_per_ip_per_second=0.001,
        datagram_burst_per_ip=20,
        ip_limit_exempts_loopback=False,
    )
    async with AsyncExitStack() as stack, fleet() as nodes:
        node = await start_node(config)
        nodes.append(node)
        target = (LOOPBACK, node.port)
        peers = [await stack.enter_async_context(raw_peer()) for _ in range(6)]
        for peer in peers:
            for _ in range(5):  # half of each source's own burst
                peer.request("ping", hello_args(peer), target)
        await wait_for_condition(lambda: node.statistics().datagrams_received >= 30)
        await wait_for_condition(lambda: sum(peer.replies.qsize() for peer in peers) >= 20)
        stats = node.statistics()
        assert stats.ip_rate_limited_drops == 10
        assert stats.rate_limited_drops == 10
        assert sum(peer.replies.qsize() for peer in peers) == 20


async def test_loopback_sources_skip_the_per_ip_bucket_by_default() -> None:
    config = fast(datagrams_per_ip_per_second=1.0, datagram_burst_per_ip=5)
    async with AsyncExitStack() as stack, fleet() as nodes:
        node = await start_node(config)
        nodes.append(node)
        target = (LOOPBACK, node.port)
        peers = [await stack.enter_async_context(raw_peer()) for _ in range(4)]
        for peer in peers:
            for _ in range(5):
                peer.request("ping", hello_args(peer), target)
        await wait_for_condition(lambda: node.statistics().datagrams_received >= 20)
        await wait_for_condition(lambda: sum(p.replies.qsize() for p in peers) == 20)
        assert node.statistics().rate_limited_drops == 0


async def test_send_errors_are_surfaced() -> None:
    async with fleet() as nodes:
        node = await start_node(QUIET)
        nodes.append(node)
        # sending to the broadcast address without SO_BROADCAST fails with EACCES
        assert await node.bootstrap([("255.255.255.255", 9)]) == 0
        assert node.statistics().send_errors == 1


async def test_cancelled_request_leaves_nothing_behind_and_a_late_reply_is_harmless() -> None:
    held: list[tuple[bytes, tuple[str, int]]] = []

    def hold(
        peer: RawPeer, msg_id: bytes, name: str, args: list[Any], addr: tuple[str, int]
    ) -> None:
        held.append((msg_id, addr))

    async with fleet() as nodes, raw_peer(hold) as slow:
        node = await start_node(fast(rpc_timeout=5.0))
        nodes.append(node)
        task = asyncio.create_task(node.bootstrap([(LOOPBACK, slow.port)]))
        await wait_for_condition(lambda: bool(held))
        assert node.statistics().outstanding_rpcs == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert node.statistics().outstanding_rpcs == 0
        msg_id, addr = held[0]
        slow.reply(msg_id, slow.hello.encode(), addr)
        await wait_for_condition(lambda: node.statistics().unexpected_replies == 1)
        assert node.statistics().handler_errors == 0


async def test_misses_before_eviction() -> None:
    async with fleet() as nodes:
        config = fast(misses_before_eviction=3, maintenance_interval=60.0, suspect_seconds=0.0)
        node = await start_node(config)
        peer = await start_node()
        nodes.extend([node, peer])
        await node.bootstrap([(LOOPBACK, peer.port)])
        assert [contact.node_id for contact in node.contacts()] == [peer.node_id]
        await peer.aclose()
        await node.find_closest(os.urandom(20), 3)
        # the first miss is settled at once: pinged until it answers or misses enough
        assert [contact.node_id for contact in node.contacts()] == [peer.node_id]
        await wait_for_condition(lambda: node.contacts() == [], timeout=3 * config.rpc_timeout + 2)
        stats = node.statistics()
        assert stats.evictions == 1
        assert stats.rpc_timeouts == 3  # the lookup's request, then two pings


async def test_a_known_id_cannot_move_to_another_address() -> None:
    async with fleet() as nodes, raw_peer() as impostor:
        node = await start_node()
        victim = await start_node()
        nodes.extend([node, victim])
        await node.bootstrap([(LOOPBACK, victim.port)])
        # anyone can send the victim's public key; the known address stays
        reply = await impostor.ask(
            "ping", [victim.node_id, victim.public_key, 0], (LOOPBACK, node.port)
        )
        assert reply[0] == node.node_id
        assert [contact.address for contact in node.contacts()] == [(LOOPBACK, victim.port)]
        assert node.statistics().address_conflicts == 1


async def test_receive_buffer_is_enlarged() -> None:
    async with fleet() as nodes:
        node = await start_node()
        nodes.append(node)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
            default = plain.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert node.statistics().receive_buffer_bytes > default


async def test_reply_to_an_unknown_request_is_counted() -> None:
    async with fleet() as nodes, raw_peer() as peer:
        node = await start_node()
        nodes.append(node)
        peer.send_raw(encode_frame(FrameKind.REPLY, os.urandom(20), [1, 2]), (LOOPBACK, node.port))
        await wait_for_condition(lambda: node.statistics().unexpected_replies == 1)


async def test_find_node_answers_sorted_closest_contacts() -> None:
    async with fleet() as nodes, raw_peer(answer_pings) as asker:
        node = await start_node()
        nodes.append(node)
        members: list[DhtNode] = [await start_node() for _ in range(30)]
        nodes.extend(members)
        for member in members:
            await member.bootstrap([(LOOPBACK, node.port)])
        target = os.urandom(20)
        reply = await asker.ask("find_node", [*asker.hello.encode(), target], (LOOPBACK, node.port))
        listed = [item[0] for item in reply[3]]
        expected = sorted(
            (member.node_id for member in members),
            key=lambda node_id: int.from_bytes(node_id, "big") ^ int.from_bytes(target, "big"),
        )[:20]
        assert listed == expected
        assert asker.node_id not in listed


async def test_a_node_that_missed_is_not_waited_for_then_settled_by_maintenance() -> None:
    async with fleet() as nodes:
        config = fast(
            rpc_timeout=1.0,
            suspect_seconds=60.0,
            maintenance_interval=0.2,
            misses_before_eviction=2,
        )
        node = await start_node(config)
        dead, alive = await start_node(), await start_node()
        nodes.extend([node, dead, alive])
        await node.bootstrap([(LOOPBACK, dead.port), (LOOPBACK, alive.port)])
        assert len(node.contacts()) == 2
        await dead.aclose()
        found = await node.find_closest(os.urandom(20), 3)
        # not even the first miss is waited for: the request stalls (no answer within a few
        # round trips) and the lookup ends without it; the request times out later
        assert node.statistics().rpc_timeouts == 0
        assert node.statistics().outstanding_rpcs >= 1
        assert [contact.node_id for contact in found] == [alive.node_id]
        await wait_for_condition(lambda: node.statistics().rpc_timeouts == 1)
        # a suspect is still asked (it may have been busy) but lookups do not wait for it
        for _ in range(3):
            started = time.monotonic()
            found = await node.find_closest(os.urandom(20), 3)
            assert time.monotonic() - started < config.rpc_timeout
            assert [contact.node_id for contact in found] == [alive.node_id]
        # maintenance pings the suspect until it is evicted
        await wait_for_condition(lambda: node.statistics().evictions == 1, timeout=5.0)
        assert [contact.node_id for contact in node.contacts()] == [alive.node_id]


async def test_a_node_that_moved_is_let_in_once_its_old_address_fails() -> None:
    async with fleet() as nodes:
        config = fast(misses_before_eviction=2, suspect_seconds=0.0, maintenance_interval=60.0)
        node = await start_node(config)
        moving = await start_node()
        nodes.extend([node, moving])
        await node.bootstrap([(LOOPBACK, moving.port)])
        key = moving.public_key
        await moving.aclose()
        moved = await start_node(key=key)  # same identity, new port
        nodes.append(moved)
        for misses in (1, 2):
            await moved.bootstrap([(LOOPBACK, node.port)])

            def missed(expected: int = misses) -> bool:
                return node.statistics().rpc_timeouts >= expected

            await wait_for_condition(missed)
        await moved.bootstrap([(LOOPBACK, node.port)])
        assert [contact.address for contact in node.contacts()] == [(LOOPBACK, moved.port)]
        stats = node.statistics()
        assert stats.address_conflicts >= 2
        assert stats.evictions == 1
