"""Lookups: correct owners, bounded by their deadline, unharmed by lying or dead peers."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from typing import Any

from tests.dht.support import (
    LOOPBACK,
    RawPeer,
    fast,
    fleet,
    id_near,
    network,
    raw_peer,
    start_node,
    true_owners,
)
from whnode.dht import DhtNode
from whnode.dht.contact import Contact, NodeId
from whnode.dht.wire import encode_contact


def ids(contacts: list[Contact]) -> list[bytes]:
    return [contact.node_id for contact in contacts]


def dead_ports(count: int) -> list[int]:
    """Ports that were just bound and closed: nothing answers there."""
    ports = []
    for _ in range(count):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((LOOPBACK, 0))
            ports.append(sock.getsockname()[1])
    return ports


async def test_owner_lookup_matches_brute_force() -> None:
    async with fleet() as nodes:
        seed, members = await network(nodes, 36)
        routers = [await start_node(fast(routing_only=True)) for _ in range(4)]
        nodes.extend(routers)
        for router in routers:
            await router.bootstrap([(LOOPBACK, seed.port)])
        everyone = [seed, *members, *routers]
        rng = random.Random(7)
        keys = [os.urandom(20) for _ in range(20)]
        # keys right next to routing-only nodes: those must never be listed as owners
        keys += [id_near(router.node_id, bit) for router in routers for bit in (0, 40)]
        for key in keys:
            asker = rng.choice(members)
            owners = await asker.find_owners(key, 3)
            assert ids(owners) == true_owners(everyone, key, 3)
            assert not any(owner.routing_only for owner in owners)
        # the asker lists itself when it is among the owners
        asker = members[0]
        owners = await asker.find_owners(id_near(asker.node_id, 0), 3)
        assert owners[0] == asker.self_contact
        assert ids(owners) == true_owners(everyone, id_near(asker.node_id, 0), 3)
        # routing-only nodes find owners too, without listing themselves
        key = id_near(routers[0].node_id, 0)
        assert ids(await routers[0].find_owners(key, 3)) == true_owners(everyone, key, 3)
        stats = asker.statistics()
        assert stats.lookups >= 2
        assert stats.lookup_rpcs > 0
        assert stats.lookup_deadline_hits == 0


async def test_owner_lookups_are_cached_briefly_and_shared() -> None:
    async with fleet() as nodes:
        seed, _ = await network(nodes, 12)
        now = [100.0]  # the owner cache's clock, moved by hand
        node = await start_node(fast(owner_cache_seconds=30.0), cache_clock=lambda: now[0])
        nodes.append(node)
        await node.bootstrap([(LOOPBACK, seed.port)])
        key = os.urandom(20)
        first = await node.find_owners(key, 3)
        # owner_lookups, not lookups: maintenance may refresh a bucket meanwhile
        assert node.statistics().owner_lookups == 1
        assert await node.find_owners(key, 3) == first
        assert node.statistics().owner_lookups == 1
        assert node.statistics().owner_cache_hits == 1
        # concurrent callers share one lookup
        other = os.urandom(20)
        answers = await asyncio.gather(*(node.find_owners(other, 3) for _ in range(10)))
        assert all(answer == answers[0] for answer in answers)
        assert node.statistics().owner_lookups == 2
        now[0] += 29.0
        await node.find_owners(key, 3)
        assert node.statistics().owner_lookups == 2  # still cached
        now[0] += 1.0  # expired: looked up again
        await node.find_owners(key, 3)
        assert node.statistics().owner_lookups == 3


GARBAGE: list[Any] = [
    {"value": b"forged"},
    "a string",
    [1, 2, 3],
    None,
    "HELLO",  # placeholder: the right hello, contacts as a map
    "HELLO_21",  # the right hello, 21 contacts
    "HELLO_SHORT_IDS",  # the right hello, 1-byte contact ids
    "OTHER_ID",  # another node's hello
]


def garbage_handler(variant: list[Any], honest: list[DhtNode]) -> Any:
    def handle(
        peer: RawPeer, msg_id: bytes, name: str, args: list[Any], addr: tuple[str, int]
    ) -> None:
        if name == "ping":
            peer.reply(msg_id, peer.hello.encode(), addr)
            return
        body = variant[0]
        hello = peer.hello.encode()
        contact = [os.urandom(20), bytes([127, 0, 0, 1]), 9, 0]
        if body == "HELLO":
            body = [*hello, {"contacts": [contact]}]
        elif body == "HELLO_21":
            body = [*hello, [contact] * 21]
        elif body == "HELLO_SHORT_IDS":
            body = [*hello, [[b"x", bytes([127, 0, 0, 1]), 9, 0]]]
        elif body == "OTHER_ID":
            other = honest[0]
            body = [other.node_id, other.public_key, 0, []]
        elif body == "LYING_IDS":
            # real addresses of honest nodes under made-up ids
            body = [
                *hello,
                [
                    encode_contact(Contact(NodeId(os.urandom(20)), LOOPBACK, node.port))
                    for node in honest[:20]
                ],
            ]
        peer.reply(msg_id, body, addr)

    return handle


async def test_a_peer_answering_garbage_does_not_break_lookups() -> None:
    async with fleet() as nodes:
        seed, members = await network(nodes, 12)
        node = members[0]
        everyone = [seed, *members]
        variant: list[Any] = [None]
        async with raw_peer(garbage_handler(variant, members[1:])) as liar:
            for body in [*GARBAGE, "LYING_IDS"]:
                variant[0] = body
                # (re-)introduce the liar: it answers pings correctly
                await liar.ask("ping", liar.hello.encode(), (LOOPBACK, node.port))
                assert liar.node_id in ids(node.contacts())
                key = id_near(liar.node_id, 3)  # the liar is among the first asked
                owners = await node.find_owners(key, 3)
                # garbage never held a lookup up to its deadline (the deadline itself is
                # tested on virtual time in test_lookup_state.py)
                assert node.statistics().lookup_deadline_hits == 0, body
                if body == "LYING_IDS":
                    # its reply is well formed: the liar is a live node, and the closest one
                    assert ids(owners) == [liar.node_id, *true_owners(everyone, key, 2)]
                else:
                    assert ids(owners) == true_owners(everyone, key, 3), body
            stats = node.statistics()
            assert stats.invalid_replies + stats.rejected_ids >= len(GARBAGE) + 1
            assert stats.handler_errors == 0


async def test_twenty_dead_contacts_cost_at_most_the_deadline() -> None:
    async with fleet() as nodes:
        # room for a loaded machine: a deadline that fits the dead contacts' stall times, and
        # stall times that may grow to a second, so that the live owners' answers (late by
        # the event loop's lag when other tests run beside this one) are waited for; the
        # hurried node below tests the deadline itself
        config = fast(lookup_deadline=10.0, rpc_timeout=4.0, stall_timeout=1.0)
        seed, members = await network(nodes, 10, config)
        node = members[0]
        everyone = [seed, *members]
        key = os.urandom(20)
        ports = dead_ports(20)

        def dead_contacts(
            peer: RawPeer, msg_id: bytes, name: str, args: list[Any], addr: tuple[str, int]
        ) -> None:
            if name == "ping":
                peer.reply(msg_id, peer.hello.encode(), addr)
            else:  # 20 contacts closer to the key than anyone, none alive
                contacts = [
                    encode_contact(Contact(NodeId(id_near(key, bit)), LOOPBACK, port))
                    for bit, port in enumerate(ports)
                ]
                peer.reply(msg_id, [*peer.hello.encode(), contacts], addr)

        async with raw_peer(dead_contacts, routing_only=True) as liar:
            await liar.ask("ping", liar.hello.encode(), (LOOPBACK, node.port))
            started = time.monotonic()
            owners = await node.find_owners(key, 3)
            elapsed = time.monotonic() - started
            assert elapsed < node.config.lookup_deadline + 0.2
            # the dead contacts cost time, not correctness
            assert ids(owners) == true_owners(everyone, key, 3)

            # with a deadline shorter than one RPC timeout, the lookup still ends on time
            hurried = await start_node(fast(lookup_deadline=0.3, rpc_timeout=1.0))
            nodes.append(hurried)
            await hurried.bootstrap([(LOOPBACK, seed.port)])
            await liar.ask("ping", liar.hello.encode(), (LOOPBACK, hurried.port))
            started = time.monotonic()
            owners = await hurried.find_owners(key, 3)
            assert time.monotonic() - started < 0.3 + 0.2
            assert owners  # at least this node: a lookup never raises for dead peers
            assert hurried.statistics().lookup_deadline_hits >= 1


async def test_lookup_with_a_dead_table_ends_at_the_deadline() -> None:
    async with fleet() as nodes:
        node = await start_node(fast(lookup_deadline=0.5, rpc_timeout=2.0))
        peers = [await start_node() for _ in range(5)]
        nodes.extend([node, *peers])
        await node.bootstrap([(LOOPBACK, peers[0].port)])
        for peer in peers:
            await peer.aclose()
        owners = await node.find_owners(os.urandom(20), 3)
        assert owners == [node.self_contact]
        stats = node.statistics()
        assert stats.lookup_deadline_hits == 1  # the deadline (0.5 s) ended it ...
        assert stats.rpc_timeouts == 0  # ... not the requests' own timeout (2 s)
        # the requests still in flight end on rpcudp's own timer, not by cancellation
        assert node.statistics().outstanding_rpcs > 0
