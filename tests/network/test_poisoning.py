"""Menu poisoning on loopback: records that must never be kept, and who may publish.

Real nodes (UDP + TCP + SQLite) and the sandbox upstream; the attacker talks to them over
HTTP like any peer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from whnode.node import Node
from whnode.peer.client import PeerClient
from whnode.peer.exceptions import PeerRefused
from whnode.record.acceptance import open_record
from whnode.record.keys import SigningKey, node_id_for, routing_key
from whnode.record.signed import decode_record
from whnode.testing import forgery
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.timeout(240)


async def test_records_whose_payload_lies_are_refused_and_the_good_record_stays_newest(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    """The reproduced attack: an attacker's own key, payloads that do not open as their
    header says, dated 289 s ahead (inside the 300 s verification skew). Each PUT is refused
    with its own problem kind, nothing is stored, and GET keeps answering the good record."""
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(3, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        honest = await cluster.nodes[1].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        menu = open_record(honest.record)
        other = open_record(
            (await cluster.nodes[1].service.get_menu(sandbox.other_dispensary)).record
        )
        attacker = SigningKey.generate()
        ahead = cluster.nodes[0].service.now_ms() + 289_000
        poisoned = {
            "wrong_content_hash": forgery.wrong_content_hash(menu, attacker, ahead),
            "inner_menu_of_another": forgery.inner_menu_for_another_dispensary(
                other, dispensary, attacker, ahead
            ),
            "lying_lz4_sizes": forgery.lying_sizes(menu, attacker, ahead),
        }
        async with aiohttp.ClientSession() as session:
            client = PeerClient(session, node_id_hex=attacker.node_id.hex(), timeout=10)
            for node in cluster.nodes:
                for name, record in poisoned.items():
                    with pytest.raises(PeerRefused) as refused:
                        await client.put_record(node.dht.self_contact, dispensary, record.encoded)
                    assert (refused.value.status, refused.value.kind) == (422, "bad_payload"), name
                # A well-formed fake dated 289 s ahead would outrank every fetch of the next
                # five minutes: it is not kept either.
                ahead_fake = forgery.forge(forgery.fake_menu(menu), attacker, fetched_at_ms=ahead)
                with pytest.raises(PeerRefused) as refused:
                    await client.put_record(node.dht.self_contact, dispensary, ahead_fake.encoded)
                assert (refused.value.status, refused.value.kind) == (422, "future_record")
                rejections = node.service.statistics().peer_rejections
                assert rejections.get("payload_mismatch", 0) == 3
                assert rejections.get("ahead_of_clock", 0) == 1
                held = await node.store.newest(dispensary)
                assert held is None or decode_record(held.data).publisher != attacker.public_key
            # Every node still serves the good record over its public API.
            for node in cluster.nodes:
                async with session.get(
                    f"{node.http_url}/v1/menus/{dispensary}",
                    headers={"Accept": "application/cose"},
                ) as response:
                    assert response.status == 200
                    body = await response.read()
                assert decode_record(body).publisher != attacker.public_key
                assert decode_record(body).content_hash == honest.record.content_hash


async def test_a_stranger_signed_menu_is_refused_as_not_entitled(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    """A fresh key, no position in the DHT, never fetched upstream: its PUT was answered 201
    and its menu served; now it is refused (403 not_entitled) and never served."""
    dispensary = sandbox.tiny_dispensary
    key = routing_key(dispensary)
    async with LocalCluster(
        5, tmp_path, sandbox_url=sandbox.base_url, trust={"owner_slack": 0}
    ) as cluster:
        honest = await cluster.nodes[1].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        # Any key farther from the dispensary than the third closest node (most keys are).
        third = cluster.owners(dispensary, 3)[-1].dht.distance_to(key)
        stranger = SigningKey.generate()
        while int.from_bytes(stranger.node_id, "big") ^ int.from_bytes(key, "big") <= third:
            stranger = SigningKey.generate()
        now_ms = cluster.nodes[0].service.now_ms()
        fake = forgery.forge(
            forgery.fake_menu(open_record(honest.record)), stranger, fetched_at_ms=now_ms
        )
        async with aiohttp.ClientSession() as session:
            client = PeerClient(session, node_id_hex=stranger.node_id.hex(), timeout=10)
            for node in cluster.nodes:
                with pytest.raises(PeerRefused) as refused:
                    await client.put_record(node.dht.self_contact, dispensary, fake.encoded)
                assert (refused.value.status, refused.value.kind) == (403, "not_entitled")
                rejections = node.service.statistics().peer_rejections
                assert rejections.get("publisher_not_entitled") == 1
                assert rejections.get("not_entitled") == 1
                assert node.service.entitlement.statistics().refused_publishers == 1
        for node in cluster.nodes:
            answer = await node.service.get_menu(dispensary, max_age=600)
            assert answer.record.encoded == honest.record.encoded


async def test_a_key_ground_next_to_a_dispensary_cannot_put_without_being_a_known_node(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    """Grinding an id closer to key(D) than every owner makes the publisher entitled by
    distance; but the sender must be a node this node has seen at that address."""
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(
        5, tmp_path, sandbox_url=sandbox.base_url, trust={"owner_slack": 0}
    ) as cluster:
        honest = await cluster.nodes[1].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        key = routing_key(dispensary)
        closest = cluster.owners(dispensary, 1)[0]
        not_an_owner = cluster.owners(dispensary, 5)[-1]
        ground = forgery.grind_key_near(
            key, closer_than=closest.dht.distance_to(key), budget=100_000
        )
        assert ground.reached
        fake = forgery.forge(
            forgery.fake_menu(open_record(honest.record)),
            ground.key,
            fetched_at_ms=closest.service.now_ms(),
        )
        async with aiohttp.ClientSession() as session:
            for claimed in (ground.key.node_id, not_an_owner.node_id):
                client = PeerClient(session, node_id_hex=claimed.hex(), timeout=10)
                with pytest.raises(PeerRefused) as refused:
                    await client.put_record(closest.dht.self_contact, dispensary, fake.encoded)
                assert refused.value.kind == "not_entitled"
        rejections = closest.service.statistics().peer_rejections
        # the ground key is unknown here; the other is known but neither an owner nor the
        # publisher
        assert rejections.get("sender_not_owner") == 2
        held = await closest.store.newest(dispensary)
        assert held is not None
        assert held.data == honest.record.encoded


async def test_an_honest_owners_record_is_still_accepted_across_churn(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    """The publisher leaves, a newcomer lands closest to the key: the remaining owners hand
    the departed owner's record to the newcomer, which keeps it (the publisher is still
    within the owner ranks it sees; the senders are owners it knows)."""
    dispensary = sandbox.tiny_dispensary
    key = routing_key(dispensary)
    # No slack: only the three closest nodes a node sees may publish, so the departed
    # publisher is accepted for being closer than them, not for being one of few nodes.
    async with LocalCluster(
        6, tmp_path, sandbox_url=sandbox.base_url, trust={"owner_slack": 0}
    ) as cluster:
        first = await cluster.nodes[-1].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        publisher = node_id_for(first.record.publisher)
        owners = cluster.owners(dispensary, 3)
        assert publisher == owners[0].node_id
        await cluster.stop_node(cluster.nodes.index(owners[0]))
        ground = forgery.grind_key_near(
            key, closer_than=owners[0].dht.distance_to(key), budget=200_000
        )
        assert ground.reached
        newcomer = Node(
            cluster.config_for(len(cluster.nodes), (f"127.0.0.1:{owners[1].port}",)),
            signing_key=ground.key,
            parse_pool=cluster.pool,
        )
        await newcomer.start()
        try:
            for _ in range(25):  # the hand-off to a newcomer (HAND_OFF_DELAY)
                if (await newcomer.store.newest(dispensary)) is not None:
                    break
                await cluster.wait_idle()
                await asyncio.sleep(0.2)
            else:  # the surviving owners did not meet the newcomer yet: republish reaches it
                for owner in owners[1:]:
                    await owner.service.republish()
            held = await newcomer.store.newest(dispensary)
            rejections = newcomer.service.statistics().peer_rejections
            assert held is not None, rejections
            assert held.data == first.record.encoded
            assert not rejections.get("publisher_not_entitled")
            assert not rejections.get("sender_not_owner")
            # Republishing by the surviving owners is accepted too (already held: 200).
            for owner in owners[1:]:
                await owner.service.republish()
            assert not newcomer.service.statistics().peer_rejections.get("not_entitled")
        finally:
            await newcomer.aclose()
