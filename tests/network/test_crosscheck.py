"""The owner cross-check on loopback: an attacker that ground its id next to a dispensary
serves and pushes a fake menu; honest owners refuse the push and resolve it with a fresh
upstream fetch, a requester that gets the fake cross-checks it with a second owner and
fails over, and the evidence served on ``GET /peer/v1/evidence`` makes other nodes block
the attacker.

Real nodes (UDP + TCP + SQLite), the sandbox upstream; the attacker is a real node whose
store holds its fake (what a modified node would serve), and it PUTs over HTTP like a peer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from whnode.node import Node
from whnode.peer.client import PeerClient
from whnode.peer.evidence import fetch_evidence
from whnode.peer.exceptions import PeerRefused
from whnode.record.acceptance import open_record
from whnode.record.keys import node_id_for, routing_key
from whnode.service.evidence import EvidenceKind, decode_document, verify_evidence
from whnode.testing import forgery
from whnode.testing.clock import eventually
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.timeout(240)


async def test_a_ground_attacker_owner_is_refuted_by_the_cross_check_and_blocked(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    key = routing_key(dispensary)
    async with LocalCluster(6, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        honest = await cluster.nodes[0].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        owners = cluster.owners(dispensary, 3)
        ground = forgery.grind_key_near(
            key, closer_than=owners[0].dht.distance_to(key), budget=200_000
        )
        assert ground.reached
        attacker = Node(
            cluster.config_for(len(cluster.nodes), (cluster.seed_address,)),
            signing_key=ground.key,
            parse_pool=cluster.pool,
        )
        await attacker.start()
        try:
            await asyncio.gather(*(node.dht.bootstrap([]) for node in cluster.nodes))
            fake_menu = forgery.fake_menu(open_record(honest.record))
            fake = forgery.forge(fake_menu, ground.key, fetched_at_ms=attacker.service.now_ms())
            # A modified node: it answers its fake (signed anew, always fresh) to every fill.
            poisoner = forgery.Poisoner(attacker, ground.key, {dispensary: fake_menu})
            # It pushes the fake to the honest owners, which refuse it (another menu is
            # held for that time) and resolve the conflict with an upstream fetch.
            async with aiohttp.ClientSession() as session:
                client = PeerClient(session, node_id_hex=attacker.node_id.hex(), timeout=10)
                for owner in owners:
                    with pytest.raises(PeerRefused) as refused:
                        await client.put_record(owner.dht.self_contact, dispensary, fake.encoded)
                    assert refused.value.kind == "not_entitled"
                    assert "another menu" in str(refused.value)
            await cluster.wait_idle()
            await eventually(
                lambda: all(o.service.crosscheck.book.statistics().held for o in owners)
            )
            attacker_id = attacker.node_id
            for owner in owners:
                assert owner.service.crosscheck.book.blocked(attacker_id, dispensary)
                held = await owner.store.newest(dispensary)
                assert held is not None
                assert held.content_hash != bytes(fake.content_hash)
                resolutions = owner.service.crosscheck.statistics().resolutions
                assert resolutions.get("put_conflicts") == 1
                assert resolutions.get("contradicted") == 1
            # A requester whose first owner is the attacker gets the fake, cross-checks it
            # with the second owner, learns the evidence, and fails over to an honest owner.
            candidates = [node for node in cluster.nodes if node not in owners]
            firsts = [(await n.service._owner_list(dispensary))[0].node_id for n in candidates]
            requester = candidates[firsts.index(attacker_id)]
            # no hedge: the attacker, slow on a busy machine, must not be overtaken by a
            # hedge to the next owner (the cross-check is what is tested here)
            requester.service._requests_to_owners.hedge_delay.floor = 0
            requester.hot.discard(dispensary)  # node 0 read it before the attack
            served = poisoner.served
            answer = await requester.service.get_menu(dispensary, max_age=60)
            assert answer.record.content_hash == honest.record.content_hash
            assert node_id_for(answer.record.publisher) != attacker_id
            assert poisoner.served > served  # the attacker answered its fake
            outcomes = requester.service.crosscheck.statistics().outcomes
            assert outcomes.get("refuted") == 1, outcomes
            assert requester.service.crosscheck.book.blocked(attacker_id, dispensary)
            # The evidence, as anyone reads it, is verifiable from its two records alone.
            async with aiohttp.ClientSession() as session:
                reader = PeerClient(session, node_id_hex="", timeout=10)
                document = await fetch_evidence(reader, owners[1].dht.self_contact)
            pairs = decode_document(document)
            assert len(pairs) == 1
            evidence = verify_evidence(*pairs[0])
            assert evidence.kind is EvidenceKind.CONTRADICTION
            assert evidence.accused_id == attacker_id
            assert evidence.accused.encoded == fake.encoded
            assert poisoner.served >= 1
            # A node that learns it (the reporter is an owner as it sees them) blocks the
            # attacker: the attacker's records are refused there, and counted.
            learner = next(n for n in cluster.nodes if n not in owners and n is not requester)
            assert await learner.service.crosscheck.fetch_evidence(
                owners[1].dht.self_contact, dispensary
            )
            async with aiohttp.ClientSession() as session:
                client = PeerClient(session, node_id_hex=attacker.node_id.hex(), timeout=10)
                with pytest.raises(PeerRefused) as refused:
                    await client.put_record(learner.dht.self_contact, dispensary, fake.encoded)
                assert "blocked" in str(refused.value)
            assert learner.service.entitlement.statistics().refused_blocked == 1
        finally:
            await attacker.stop()


async def test_the_cross_check_agrees_with_honest_owners_at_two_rpcs(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    """No attacker: the first answer of a record costs one history RPC to each other owner
    (sent at once); later answers of the same record cost nothing once an owner agreed, and
    nothing is reported, blocked or fetched again."""
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(6, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        await cluster.nodes[0].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        owners = cluster.owners(dispensary, 3)
        requester = next(node for node in cluster.nodes[1:] if node not in owners)
        calls = sandbox.calls(dispensary)
        first = await requester.service.get_menu(dispensary, max_age=600)
        stats = requester.service.crosscheck.statistics()
        assert stats.checks == 1
        assert stats.rpcs == 2  # the replicas were in place: both other owners agree
        assert stats.outcomes == {"agreed": 1}
        requester.hot.discard(dispensary)
        again = await requester.service.get_menu(dispensary, max_age=600)
        assert again.record.encoded == first.record.encoded
        assert requester.service.crosscheck.statistics() == stats
        assert sandbox.calls(dispensary) == calls
        if cluster.nodes[0] not in owners:
            first_reader = cluster.nodes[0].service.crosscheck.statistics()
            # the very first reader may have checked before the replicas landed
            assert first_reader.rpcs == 2
            assert set(first_reader.outcomes) <= {"agreed", "unconfirmed"}
        for node in cluster.nodes:
            assert node.service.crosscheck.book.statistics().held == 0
            resolutions = node.service.crosscheck.statistics().resolutions
            assert "fetches" not in resolutions
            assert "contradicted" not in resolutions
