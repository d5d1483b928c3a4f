"""How fast crashed contacts leave the DHT, and how evicted ones come back.

A crashed node must stop costing its peers time: its first miss makes it a suspect (never
waited for, not recommended to others, not used from cached owner lists), it is pinged until
it is evicted, and a contact silent for a while is checked even when no lookup meets it.
Evicted contacts are pinged now and then, so that the sides of a healed partition meet again.
"""

from __future__ import annotations

import os

from tests.dht.support import LOOPBACK, fast, fleet, start_node, wait_for_condition
from whnode.dht import DhtNode


def protocol_of(node: DhtNode):  # type: ignore[no-untyped-def]
    protocol = node._protocol
    assert protocol is not None
    return protocol


async def test_a_suspect_is_left_out_of_find_node_replies() -> None:
    async with fleet() as nodes:
        config = fast(rpc_timeout=0.5, maintenance_interval=60.0)
        node = await start_node(config)
        dead, alive, asker = await start_node(), await start_node(), await start_node()
        nodes.extend([node, dead, alive, asker])
        await node.bootstrap([(LOOPBACK, dead.port), (LOOPBACK, alive.port)])
        await asker.bootstrap([(LOOPBACK, node.port)])
        target = os.urandom(20)

        async def listed() -> set[bytes]:
            answer = await protocol_of(asker).request_find_node(node.self_contact, target)
            assert answer is not None
            return {contact.node_id for contact in answer[1]}

        assert {dead.node_id, alive.node_id} <= await listed()
        await dead.aclose()
        await node.find_closest(os.urandom(20), 3)  # misses the dead node once
        assert any(c.node_id == dead.node_id for c in node.contacts())  # still in the table
        found = await listed()
        assert alive.node_id in found
        assert dead.node_id not in found


async def test_a_cached_owner_list_naming_a_suspect_is_not_used() -> None:
    async with fleet() as nodes:
        config = fast(rpc_timeout=0.5, maintenance_interval=60.0, owner_cache_seconds=600.0)
        node = await start_node(config)
        peers = [await start_node() for _ in range(3)]
        nodes.extend([node, *peers])
        await node.bootstrap([(LOOPBACK, peer.port) for peer in peers])
        key = os.urandom(20)
        owners = await node.find_owners(key, 4)
        assert len(owners) == 4
        dead = next(peer for peer in peers if peer.node_id in {o.node_id for o in owners})
        assert (await node.find_owners(key, 4)) == owners  # from the cache
        lookups = node.statistics().owner_lookups
        await dead.aclose()
        await node.find_closest(os.urandom(20), 3)  # misses the dead node: a suspect now
        again = await node.find_owners(key, 4)
        assert node.statistics().owner_lookups == lookups + 1
        assert dead.node_id not in {owner.node_id for owner in again}


async def test_a_crashed_contact_is_evicted_without_any_lookup() -> None:
    async with fleet() as nodes:
        config = fast(
            rpc_timeout=0.3,
            maintenance_interval=0.2,
            liveness_interval=0.5,
            misses_before_eviction=3,
        )
        node = await start_node(config)
        dead, alive = await start_node(), await start_node()
        nodes.extend([node, dead, alive])
        await node.bootstrap([(LOOPBACK, dead.port), (LOOPBACK, alive.port)])
        assert len(node.contacts()) == 2
        await dead.aclose()
        # silent for liveness_interval: pinged, a suspect, pinged until evicted
        await wait_for_condition(
            lambda: [c.node_id for c in node.contacts()] == [alive.node_id], timeout=5.0
        )
        stats = node.statistics()
        assert stats.evictions == 1
        assert protocol_of(node).is_suspect(dead.node_id)


async def test_an_evicted_contact_is_recalled_when_it_answers_again() -> None:
    async with fleet() as nodes:
        config = fast(
            rpc_timeout=0.3,
            maintenance_interval=0.2,
            liveness_interval=0.5,
            recall_interval_max=0.4,
        )
        node = await start_node(config)
        away = await start_node()
        nodes.append(node)
        await node.bootstrap([(LOOPBACK, away.port)])
        port, key = away.port, away.public_key
        await away.aclose()  # a partition: the node cannot reach it for a while
        await wait_for_condition(lambda: node.contacts() == [], timeout=5.0)
        back = DhtNode(key, fast())  # the same node, reachable again; it does not bootstrap
        await back.listen(LOOPBACK, port)
        nodes.append(back)
        await wait_for_condition(lambda: len(node.contacts()) == 1, timeout=5.0)
        assert node.contacts()[0].node_id == back.node_id
        assert [c.node_id for c in back.contacts()] == [node.node_id]  # both sides meet again
