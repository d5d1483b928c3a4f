"""The ways a fake menu got past the owner cross-check, each closed (docs/dht.md, "Cross-
checking owners and evidence"):

- two attacker owners of one dispensary vouching for each other: the requester asks every
  other owner at once, and the honest one's disagreement wins;
- an attacker owner answering a fake while an honest owner holds the real menu is refuted
  even when another attacker vouches for it (the honest owner settles it upstream);
- an honest owner filling from another owner's replica takes it only when the other owners
  confirm it (else it fetches upstream itself);
- owner lists merged from the routing table keep the per-IP cap of owner lookups.

Real nodes (UDP + TCP + SQLite) on loopback, the sandbox upstream; attackers are real nodes
made to answer like modified ones (whnode.testing.forgery.Poisoner).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from whnode.dht import Contact, DhtConfig, DhtNode
from whnode.node import Node
from whnode.record.acceptance import open_record
from whnode.record.keys import NodeId, SigningKey, node_id_for, routing_key
from whnode.service.requester import merge_owners
from whnode.testing import forgery
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.timeout(240)


def _ground_keys(key: bytes, closer_than: int, count: int) -> list[SigningKey]:
    keys = []
    for _ in range(count):
        ground = forgery.grind_key_near(key, closer_than=closer_than, budget=400_000)
        assert ground.reached
        keys.append(ground.key)
    return keys


async def _join(cluster: LocalCluster, keys: list[SigningKey]) -> list[Node]:
    attackers = [
        Node(
            cluster.config_for(len(cluster.nodes) + index, (cluster.seed_address,)),
            signing_key=key,
            parse_pool=cluster.pool,
        )
        for index, key in enumerate(keys)
    ]
    await asyncio.gather(*(node.start() for node in attackers))
    await asyncio.gather(*(node.dht.bootstrap([]) for node in [*cluster.nodes, *attackers]))
    return attackers


async def test_two_attacker_owners_cannot_vouch_for_each_other(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    key = routing_key(dispensary)
    async with LocalCluster(7, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        honest = await cluster.nodes[0].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        old_owners = cluster.owners(dispensary, 3)
        keys = _ground_keys(key, old_owners[0].dht.distance_to(key), 2)
        attackers = await _join(cluster, keys)
        try:
            fake_menu = forgery.fake_menu(open_record(honest.record))
            for attacker, signing_key in zip(attackers, keys, strict=True):
                forgery.Poisoner(attacker, signing_key, {dispensary: fake_menu})
            attacker_ids = {bytes(attacker.node_id) for attacker in attackers}
            # a reader holding nothing: the two attackers come first in its owner list,
            # the closest honest owner third
            reader = next(
                node
                for node in cluster.nodes[1:]
                if node not in old_owners and node.hot.newest(dispensary) is None
            )
            owners = await reader.service._owner_list(dispensary)
            assert {bytes(c.node_id) for c in owners[:2]} == attacker_ids
            answer = await reader.service.get_menu(dispensary, max_age=600)
            assert bytes(node_id_for(answer.record.publisher)) not in attacker_ids
            assert answer.record.content_hash == honest.record.content_hash
            outcomes = reader.service.crosscheck.statistics().outcomes
            # the attacker that answered first was vouched for by the other one, and
            # contradicted by the honest owner
            assert outcomes.get("conflicts", 0) >= 1
            assert outcomes.get("refuted", 0) >= 1
            assert any(
                reader.service.crosscheck.book.blocked(attacker_id, dispensary)
                for attacker_id in attacker_ids
            )
        finally:
            await asyncio.gather(*(node.aclose() for node in attackers))


async def test_an_owner_filling_from_replicas_refuses_an_unconfirmed_one(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    """An honest owner with nothing fresh fills from the other owners first; the attacker
    among them answers a fresh fake at once, which no other owner confirms: the owner
    fetches upstream itself instead of keeping it."""
    dispensary = sandbox.tiny_dispensary
    key = routing_key(dispensary)
    async with LocalCluster(6, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        honest = await cluster.nodes[0].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        old_owners = cluster.owners(dispensary, 3)
        (signing_key,) = _ground_keys(key, old_owners[0].dht.distance_to(key), 1)
        (attacker,) = await _join(cluster, [signing_key])
        try:
            fake_menu = forgery.fake_menu(open_record(honest.record))
            forgery.Poisoner(attacker, signing_key, {dispensary: fake_menu})
            filler = old_owners[0]  # second now, after the attacker
            for _ in range(100):  # its owner list names the attacker once it knows it
                owners = await filler.service._owner_list(dispensary)
                if owners[0].node_id == attacker.node_id:
                    break
                await asyncio.sleep(0.05)
            assert owners[0].node_id == attacker.node_id
            before = filler.service.statistics().upstream_calls
            # what it holds is too old for this request: it fills, replicas first
            answer = await filler.service.fill_as_owner(dispensary, max_age=0.001)
            assert bytes(node_id_for(answer.record.publisher)) == bytes(filler.node_id)
            assert answer.record.content_hash == honest.record.content_hash
            assert filler.service.statistics().upstream_calls == before + 1
            assert filler.service.crosscheck.statistics().outcomes.get("doubted", 0) >= 1
            held = await filler.store.newest(dispensary)
            assert held is not None
            assert held.content_hash == bytes(honest.record.content_hash)
        finally:
            await attacker.aclose()


async def test_merged_owner_lists_keep_the_per_ip_owner_cap() -> None:
    """The requester merges a lookup's answer with the routing table's nodes: one host's
    many ids get one place in the merged list too, as in an owner lookup."""
    node = DhtNode(
        SigningKey.generate().public_key,
        DhtConfig(owner_ids_per_ip=1, id_caps_exempt_loopback=False),
    )
    key = bytes(20)
    crowd = [
        Contact(node_id=NodeId(i.to_bytes(20, "big")), host="127.0.0.50", port=9000 + i)
        for i in range(1, 6)
    ]
    others = [
        Contact(node_id=NodeId((100 + i).to_bytes(20, "big")), host=f"127.0.1.{i}", port=9100)
        for i in range(3)
    ]
    merged = merge_owners(crowd[:2], [*crowd[2:], *others], key, 3, node.cap_per_ip)
    assert [c.host for c in merged] == ["127.0.0.50", "127.0.1.0", "127.0.1.1"]
    uncapped = merge_owners(crowd[:2], [*crowd[2:], *others], key, 3)
    assert [c.host for c in uncapped] == ["127.0.0.50"] * 3
