"""Joining, rejoining and maintenance with many nodes in one process."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from tests.dht.support import (
    LOOPBACK,
    fast,
    fleet,
    network,
    new_key,
    start_node,
    true_owners,
    wait_for_condition,
)
from whnode.dht import Contact, DhtNode, xor_distance


async def test_two_hundred_nodes_join_one_seed_at_once() -> None:
    async with fleet() as nodes:
        seed = await start_node(fast(routing_only=True))
        nodes.append(seed)
        joiners = [await start_node(fast(bootstrap_attempts=8)) for _ in range(200)]
        nodes.extend(joiners)
        async with asyncio.timeout(30):  # all 200 joined within 30 s (was: elapsed < 30)
            sizes = await asyncio.gather(
                *(node.bootstrap([(LOOPBACK, seed.port)]) for node in joiners)
            )
        assert min(sizes) > 0
        assert all(node.contacts() for node in joiners)
        assert seed.statistics().table_size >= 20
        assert seed.statistics().handler_errors == 0
        # the network routes: owner lookups answer live owner-capable nodes, sorted
        # (exactness against brute force is tested on a calmer network in test_lookup.py:
        # 200 nodes joining at once on one CPU lose some datagrams to timeouts)
        live = {node.node_id for node in joiners}
        for asker in joiners[:5]:
            key = os.urandom(20)
            owners = await asker.find_owners(key, 3)
            ids = [owner.node_id for owner in owners]
            assert len(set(ids)) == 3
            assert set(ids) <= live
            assert ids == sorted(ids, key=lambda node_id: xor_distance(node_id, key))


async def test_restarted_node_rejoins_from_its_peer_list_with_the_seed_down(tmp_path: Path) -> None:
    peers_file = tmp_path / "peers.json"
    key = new_key()
    async with fleet() as nodes:
        seed, members = await network(nodes, 8)
        node = await start_node(key=key, peers_file=peers_file)
        await node.bootstrap([(LOOPBACK, seed.port)])
        assert len(node.contacts()) >= 8
        await node.aclose()  # saves the peer list
        saved = json.loads(peers_file.read_text("utf-8"))
        assert len(saved["peers"]) >= 8
        assert node.statistics().peers_saved >= 1
        seed_port = seed.port
        await seed.aclose()

        restarted = await start_node(fast(bootstrap_attempts=2), key=key, peers_file=peers_file)
        nodes.append(restarted)
        assert restarted.node_id == node.node_id
        size = await restarted.bootstrap([(LOOPBACK, seed_port)])
        assert size >= 8
        target = os.urandom(20)
        owners = await restarted.find_owners(target, 3)
        assert [owner.node_id for owner in owners] == true_owners([restarted, *members], target, 3)


async def test_maintenance_rebootstraps_when_the_table_is_empty() -> None:
    async with fleet() as nodes:
        seed = await start_node(fast(routing_only=True))
        seed_port = seed.port
        await seed.aclose()  # the seed is down when the node starts
        node = await start_node(fast(bootstrap_attempts=1, bootstrap_backoff=0.1))
        nodes.append(node)
        assert await node.bootstrap([(LOOPBACK, seed_port)]) == 0
        assert node.contacts() == []

        revived = DhtNode(new_key(), fast(routing_only=True))
        await revived.listen(LOOPBACK, seed_port)
        nodes.append(revived)
        await wait_for_condition(lambda: bool(node.contacts()), timeout=5.0)
        assert node.statistics().rebootstraps >= 1
        assert node.contacts()[0].node_id == revived.node_id
        assert node.contacts()[0].routing_only


async def test_new_owner_capable_contacts_are_reported() -> None:
    async with fleet() as nodes:
        seed = await start_node(fast(routing_only=True))
        node = await start_node()
        nodes.extend([seed, node])
        seen: list[Contact] = []
        node.on_new_contact = seen.append
        await node.bootstrap([(LOOPBACK, seed.port)])
        assert seen == []  # the seed is routing-only: it owns nothing to hand off
        newcomers = [await start_node() for _ in range(3)]
        nodes.extend(newcomers)
        for newcomer in newcomers:
            await newcomer.bootstrap([(LOOPBACK, node.port)])
        assert {contact.node_id for contact in seen} == {n.node_id for n in newcomers}
        assert len(seen) == 3

        def broken(contact: Contact) -> None:
            raise RuntimeError("callback bug")

        node.on_new_contact = broken
        late = await start_node()
        nodes.append(late)
        await late.bootstrap([(LOOPBACK, node.port)])
        assert node.statistics().callback_errors == 1
        assert late.node_id in {contact.node_id for contact in node.contacts()}


async def test_stop_leaves_no_task_behind(tmp_path: Path) -> None:
    before = asyncio.all_tasks()
    async with fleet() as nodes:
        seed, members = await network(nodes, 5)
        for member in members:
            await member.find_owners(os.urandom(20), 3)
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()
    for node in [seed, *members]:
        await node.aclose()  # twice is harmless


async def test_a_seed_with_another_id_than_its_pin_is_not_used_to_join() -> None:
    async with fleet() as nodes:
        seed, members = await network(nodes, 4)
        other_seed, _ = await network(nodes, 4)
        # pinned correctly: joins through it
        trusting = await start_node(fast(bootstrap_attempts=1))
        nodes.append(trusting)
        size = await trusting.bootstrap(
            [(LOOPBACK, seed.port)], pins={(LOOPBACK, seed.port): seed.node_id}
        )
        assert size >= 4
        assert trusting.statistics().seed_pin_mismatches == 0
        # the pin names another node than the one answering at that address
        wary = await start_node(fast(bootstrap_attempts=1))
        nodes.append(wary)
        size = await wary.bootstrap(
            [(LOOPBACK, seed.port)], pins={(LOOPBACK, seed.port): other_seed.node_id}
        )
        assert size == 0
        assert wary.statistics().seed_pin_mismatches == 1
        assert seed.node_id not in {contact.node_id for contact in wary.contacts()}
        assert all(member.node_id not in {c.node_id for c in wary.contacts()} for member in members)
