"""Owner lists reuse a remembered lookup answer and look up again in the background.

The DHT is replaced by an in-memory directory (``_Directory``) that counts lookups and can
hold one until released: what is tested is when the requester waits for a lookup, not the
lookup itself (tests/dht covers that on real sockets).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import pytest

from whnode.dht import Contact
from whnode.peer.client import PeerClient
from whnode.record.keys import NodeId, routing_key
from whnode.service import requester
from whnode.service.requester import OwnerRequests
from whnode.testing.clock import eventually

DISPENSARY = "weedmaps:store-9"


def _contact(name: str) -> Contact:
    return Contact(
        node_id=NodeId(hashlib.sha1(name.encode()).digest()), host="127.0.0.1", port=9000
    )


class _Directory:
    def __init__(self, me: Contact, answer: list[Contact]) -> None:
        self.me = me
        self.answer = answer
        self.table: list[Contact] = []
        self.lookups = 0
        self.gate: asyncio.Event | None = None

    @property
    def node_id(self) -> bytes:
        return self.me.node_id

    async def find_owners(
        self, key: bytes, count: int, *, fresh: bool = False
    ) -> Sequence[Contact]:
        self.lookups += 1
        if self.gate is not None:
            await self.gate.wait()
        return sorted(self.answer, key=lambda c: c.distance_to(key))[:count]

    def contacts(self) -> Sequence[Contact]:
        return self.table

    def note_unreachable(self, contact: Contact) -> None:
        pass


def _requests(directory: _Directory) -> OwnerRequests:
    # The peer client is never used by owner_list (no request is sent).
    peers = PeerClient.__new__(PeerClient)
    return OwnerRequests(peers=peers, owners=directory, replication=3, hedge_delay=0.2)


async def test_a_remembered_answer_is_used_without_waiting_for_a_lookup() -> None:
    key = routing_key(DISPENSARY)
    nodes = sorted((_contact(f"n{i}") for i in range(6)), key=lambda c: c.distance_to(key))
    directory = _Directory(nodes[5], nodes[:3])
    owners = _requests(directory)
    assert await owners.owner_list(DISPENSARY) == nodes[:3]
    directory.gate = asyncio.Event()  # any further lookup would wait until released
    assert await asyncio.wait_for(owners.owner_list(DISPENSARY), 30) == nodes[:3]
    assert directory.lookups == 1
    assert owners.lookups == {"awaited": 1, "reused": 1}
    # republishing asks for the owners of now: that one waits for its lookup
    republish = asyncio.ensure_future(owners.owner_list(DISPENSARY, fresh=True))
    await asyncio.sleep(0)
    assert not republish.done()
    directory.gate.set()
    assert await republish == nodes[:3]
    await owners.aclose()


async def test_an_old_answer_is_looked_up_again_in_the_background_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(requester, "ANSWER_REFRESH_SECONDS", 0.0)
    key = routing_key(DISPENSARY)
    nodes = sorted((_contact(f"m{i}") for i in range(6)), key=lambda c: c.distance_to(key))
    directory = _Directory(nodes[5], nodes[1:4])
    owners = _requests(directory)
    assert await owners.owner_list(DISPENSARY) == nodes[1:4]
    directory.gate = asyncio.Event()
    directory.answer = nodes[:3]  # a node closer to the key has joined
    for _ in range(3):  # answered at once from memory; one background lookup in all
        assert await asyncio.wait_for(owners.owner_list(DISPENSARY), 30) == nodes[1:4]
    assert directory.lookups == 2
    directory.gate.set()
    await eventually(lambda: owners.lookups["refreshed"] > 0)
    directory.gate = None
    assert await owners.owner_list(DISPENSARY) == nodes[:3]
    await owners.aclose()


async def test_a_node_in_the_routing_table_counts_while_an_answer_is_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(requester, "KNOWN_REFRESH_SECONDS", 0.0)
    key = routing_key(DISPENSARY)
    nodes = sorted((_contact(f"k{i}") for i in range(6)), key=lambda c: c.distance_to(key))
    directory = _Directory(nodes[5], nodes[1:4])
    owners = _requests(directory)
    assert await owners.owner_list(DISPENSARY) == nodes[1:4]
    directory.table = [nodes[0]]  # joined since, closest to the key
    assert await owners.owner_list(DISPENSARY) == nodes[:3]
    assert directory.lookups == 1
    await owners.aclose()


class _SmallNetwork(_Directory):
    """A directory whose routing table holds every node (a network smaller than a bucket)."""

    @property
    def self_contact(self) -> Contact:
        return self.me

    @property
    def routing_only(self) -> bool:
        return False

    def knows_neighbourhood(self, key: bytes) -> bool:
        return True


async def test_a_table_that_holds_the_neighbourhood_names_the_owners_without_a_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(requester, "KNOWN_REFRESH_SECONDS", 0.0)
    key = routing_key(DISPENSARY)
    nodes = sorted((_contact(f"t{i}") for i in range(6)), key=lambda c: c.distance_to(key))
    me = nodes[1]
    directory = _SmallNetwork(me, nodes[:3])
    directory.table = [c for c in nodes if c is not me]
    directory.gate = asyncio.Event()  # the lookup waits until released
    owners = _requests(directory)
    # this node is among the owners (second closest), as a lookup would have said
    assert await asyncio.wait_for(owners.owner_list(DISPENSARY), 30) == nodes[:3]
    assert owners.lookups["from_table"] == 1
    assert directory.lookups == 1  # started in the background
    directory.gate.set()
    await eventually(lambda: owners.lookups["refreshed"] > 0)
    assert await owners.owner_list(DISPENSARY) == nodes[:3]
    assert owners.lookups["reused"] == 1
    await owners.aclose()
