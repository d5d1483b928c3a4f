"""The network on loopback: real nodes (UDP + TCP + SQLite), the sandbox upstream over HTTP.

These are the must-show behaviours of the owner model: one upstream call per dispensary
however many nodes ask at once, failover to replicas, refusal of bad records from peers.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from whnode.record.keys import SigningKey
from whnode.record.signed import decode_record, sign_record
from whnode.service.types import AnswerPath
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.timeout(240)


async def test_thousand_concurrent_requests_make_one_upstream_call(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(20, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        before = sandbox.calls(dispensary)
        rng = random.Random(5)
        nodes = [rng.choice(cluster.nodes) for _ in range(1000)]
        answers = await asyncio.gather(
            *(node.service.get_menu(dispensary, max_age=600) for node in nodes)
        )
        await cluster.wait_idle()
        assert sandbox.calls(dispensary) - before == 1
        encoded = {answer.record.encoded for answer in answers}
        assert len(encoded) == 1, "every answer carries the same signed record"
        fills = sum(node.service.statistics().upstream_calls for node in cluster.nodes)
        assert fills == 1
        # The record was replicated to the true owners.
        for owner in cluster.owners(dispensary, 3):
            held = await owner.store.newest(dispensary)
            assert held is not None
            assert held.data in encoded


async def test_replicas_serve_when_owners_die_without_upstream_calls(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(8, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        first = await cluster.nodes[-1].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        calls = sandbox.calls(dispensary)
        original_owners = cluster.owners(dispensary, 3)
        for victim in original_owners[:2]:
            await cluster.stop_node(cluster.nodes.index(victim))
            # Requests from nodes that never held the record (cold hot caches).
            askers = [
                node
                for node in cluster.live
                if node not in original_owners and node.hot.newest(dispensary) is None
            ]
            assert askers
            for node in askers[:2]:
                answer = await node.service.get_menu(dispensary, max_age=600)
                assert answer.record.encoded == first.record.encoded
        assert sandbox.calls(dispensary) == calls, "served from replicas, not upstream"
        # Republishing puts the record on the new owner set.
        for node in cluster.live:
            await node.service.republish()
        await cluster.wait_idle()
        for owner in cluster.owners(dispensary, 3):
            held = await owner.store.newest(dispensary)
            assert held is not None
            assert held.data == first.record.encoded
        assert sandbox.calls(dispensary) == calls


async def test_bad_records_from_a_peer_are_rejected_and_never_served(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    from whnode.peer.client import PeerClient
    from whnode.peer.exceptions import PeerRefused

    dispensary = sandbox.tiny_dispensary
    other = sandbox.other_dispensary
    async with LocalCluster(4, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        honest = await cluster.nodes[1].service.get_menu(dispensary, max_age=600)
        record = honest.record
        target = cluster.owners(dispensary, 1)[0]
        attacker = SigningKey.generate()
        now_ms = target.service.now_ms()

        def forged(**changes: object) -> bytes:
            fields: dict[str, object] = {
                "payload": record.payload,
                "dispensary_id": dispensary,
                "fetched_at_ms": now_ms + 1000,
                "content_hash": record.content_hash,
                "signing_key": attacker,
            }
            fields.update(changes)
            return sign_record(**fields).encoded  # type: ignore[arg-type]

        tampered = bytearray(forged())
        tampered[-10] ^= 0x01
        future = forged(fetched_at_ms=now_ms + 3_600_000)
        wrong_key = forged(dispensary_id=other)
        oversized = b"\xd2" + b"\x00" * (5 * 1024 * 1024)
        import aiohttp

        async with aiohttp.ClientSession() as session:
            client = PeerClient(session, node_id_hex="ab" * 20, timeout=10)
            for name, data in [
                ("tampered", bytes(tampered)),
                ("future", future),
                ("wrong_key", wrong_key),
                ("oversized", oversized),
            ]:
                with pytest.raises(PeerRefused) as refused:
                    await client.put_record(target, dispensary, data)
                assert refused.value.status in {413, 422}, name
        rejections = target.service.statistics().peer_rejections
        assert rejections.get("bad_signature", 0) >= 1
        assert rejections.get("future_timestamp", 0) >= 1
        assert rejections.get("key_binding", 0) >= 1
        assert rejections.get("too_large", 0) >= 1
        # No honest node serves anything but the honest record.
        for node in cluster.nodes:
            answer = await node.service.get_menu(dispensary, max_age=600)
            assert answer.record.encoded == record.encoded
            assert decode_record(answer.record.encoded).publisher != attacker.public_key


class VirtualClock:
    """The wall clock of every node's service, moved by hand: records age without a sleep."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_changed_menu_is_seen_once_the_record_is_stale(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    clock = VirtualClock()
    async with LocalCluster(3, tmp_path, sandbox_url=sandbox.base_url, clock=clock) as cluster:
        node = cluster.nodes[2]
        first = await node.service.get_menu(dispensary, max_age=1.0)
        sandbox.advance(dispensary)
        clock.now += 0.9
        again = await node.service.get_menu(dispensary, max_age=1.0)
        assert again.record.encoded == first.record.encoded
        assert again.path is AnswerPath.HOT
        clock.now += 0.3
        fresh = await node.service.get_menu(dispensary, max_age=1.0)
        assert fresh.record.fetched_at_ms > first.record.fetched_at_ms
        assert fresh.record.content_hash != first.record.content_hash


async def test_stale_if_error_serves_the_old_record_while_upstream_fails(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    clock = VirtualClock()
    async with LocalCluster(3, tmp_path, sandbox_url=sandbox.base_url, clock=clock) as cluster:
        node = cluster.nodes[1]
        first = await node.service.get_menu(dispensary, max_age=0.5)
        sandbox.fail(dispensary)
        clock.now += 0.7
        answer = await node.service.get_menu(dispensary, max_age=0.5)
        assert answer.stale
        assert answer.path is AnswerPath.STALE
        assert answer.record.encoded == first.record.encoded
        sandbox.heal(dispensary)
        clock.now += 0.6
        healed = await node.service.get_menu(dispensary, max_age=0.5)
        assert not healed.stale
        assert healed.record.fetched_at_ms > first.record.fetched_at_ms


async def test_stale_while_revalidate_serves_stale_while_exactly_one_refresh_runs(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    from whnode.config import FreshnessConfig

    dispensary = sandbox.tiny_dispensary
    freshness = FreshnessConfig(
        min_ttl=1.0, max_ttl=1.0, default_ttl=1.0, stale_while_revalidate=60.0
    )
    clock = VirtualClock()
    async with LocalCluster(
        4, tmp_path, sandbox_url=sandbox.base_url, freshness=freshness, clock=clock
    ) as cluster:
        first = await cluster.nodes[0].service.get_menu(dispensary)
        await cluster.wait_idle()
        clock.now += 1.2
        calls = sandbox.calls(dispensary)
        sandbox.set_latency(2.0)  # the refresh takes at least this long
        answers = await asyncio.gather(
            *(node.service.get_menu(dispensary) for node in cluster.nodes for _ in range(10))
        )
        assert all(answer.record.encoded == first.record.encoded for answer in answers)
        assert all(answer.stale for answer in answers)
        # stale answers do not wait for the refresh: no node holds its record yet
        newest = [node.hot.peek_newest(dispensary) for node in cluster.nodes]
        assert all(
            held is None or held.fetched_at_ms == first.record.fetched_at_ms for held in newest
        )
        await cluster.wait_idle()
        sandbox.set_latency(0.0)
        assert sandbox.calls(dispensary) - calls == 1
        refreshed = await cluster.owners(dispensary, 1)[0].service.get_menu(dispensary)
        assert refreshed.record.fetched_at_ms > first.record.fetched_at_ms
