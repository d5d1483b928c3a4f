"""The requester's owner list: the lookup's answer merged with the routing table."""

from __future__ import annotations

import hashlib

from whnode.dht import Contact
from whnode.record.keys import NodeId, routing_key
from whnode.service.requester import merge_owners


def _contact(name: str, *, routing_only: bool = False) -> Contact:
    node_id = NodeId(hashlib.sha1(name.encode()).digest())
    return Contact(node_id=node_id, host="127.0.0.1", port=9000, routing_only=routing_only)


def test_owners_that_missed_a_lookup_stay_owners() -> None:
    key = routing_key("weedmaps:store-1")
    everyone = sorted(
        (_contact(f"node-{i}") for i in range(12)), key=lambda contact: contact.distance_to(key)
    )
    me = everyone[5]
    # A lagging lookup heard only from this node itself and two far nodes: on its own it
    # would name this node the closest owner, and it would fill.
    found = [me, everyone[9], everyone[11]]
    owners = merge_owners(found, everyone[:5] + everyone[6:], key, 3)
    assert owners == everyone[:3]


def test_routing_only_contacts_never_own_and_nobody_is_listed_twice() -> None:
    key = routing_key("jane:store-2")
    nodes = [_contact(f"n{i}") for i in range(4)]
    seed = _contact("seed", routing_only=True)
    owners = merge_owners(nodes[:2], [seed, *nodes], key, 10)
    assert seed not in owners
    assert sorted(owners, key=lambda c: c.distance_to(key)) == owners
    assert len(owners) == len({c.node_id for c in owners}) == 4
