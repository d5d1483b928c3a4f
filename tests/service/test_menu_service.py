"""MenuService on in-memory seams (whnode.abc, whnode.testing) and virtual time: the
read-through policy's paths, one by one. tests/network runs them over real sockets."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.service.support import DISPENSARY, Mesh, until
from whnode.peer.exceptions import PeerProblem
from whnode.peer.wire import ErrorKind
from whnode.record.exceptions import NotEntitled
from whnode.record.keys import SigningKey, routing_key
from whnode.record.signed import sign_record
from whnode.service.types import AnswerPath
from whnode.store.types import StoredRecord
from whnode.testing.factories import make_menu
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamRefused,
    UpstreamUnavailable,
)
from whnode.upstream.pool import package_menu


def unavailable() -> UpstreamUnavailable:
    return UpstreamUnavailable("connection refused", source="jane", dispensary_id=DISPENSARY)


async def test_a_miss_fills_once_then_the_hot_cache_answers() -> None:
    mesh = Mesh(1)
    node = mesh.members[0]
    first = await node.service.get_menu(DISPENSARY)
    assert first.path is AnswerPath.FILL
    assert node.fetcher.calls[DISPENSARY] == 1
    assert first.record.fetched_at_ms == int(mesh.clock.now * 1000)
    # kept in the store and the hot cache
    assert node.store.puts == 1
    stored = await node.store.newest(DISPENSARY)
    assert stored is not None
    assert stored.data == first.record.encoded
    mesh.clock.advance(30)
    again = await node.service.get_menu(DISPENSARY)
    assert again.path is AnswerPath.HOT
    assert again.record.encoded == first.record.encoded
    assert node.fetcher.total_calls == 1
    stats = node.service.statistics()
    assert stats.answers_by_path == {"fill": 1, "hot": 1}
    assert stats.upstream_calls == 1
    await mesh.close()


async def test_a_restarted_node_answers_from_its_store() -> None:
    mesh = Mesh(1)
    node = mesh.members[0]
    filled = await node.service.get_menu(DISPENSARY)
    await node.service.aclose()
    # the same store under a new service (a restart): the hot cache is empty
    mesh.network.down.add(node.key.node_id)
    restarted = mesh.add(store=node.store)
    mesh.clock.advance(10)
    answer = await restarted.service.get_menu(DISPENSARY)
    assert answer.path is AnswerPath.STORE
    assert answer.record.encoded == filled.record.encoded
    assert restarted.fetcher.total_calls == 0
    assert (await restarted.service.get_menu(DISPENSARY)).path is AnswerPath.HOT
    await mesh.close()


async def test_concurrent_misses_share_one_upstream_fetch() -> None:
    mesh = Mesh(1)
    node = mesh.members[0]
    gate = node.fetcher.hold()
    requests = [asyncio.ensure_future(node.service.get_menu(DISPENSARY)) for _ in range(20)]
    await until(lambda: node.fetcher.waiting == 1)
    assert not any(request.done() for request in requests)  # all wait on the one fetch
    gate.set()
    answers = await asyncio.gather(*requests)
    assert node.fetcher.total_calls == 1
    assert {answer.record.encoded for answer in answers} == {answers[0].record.encoded}
    await mesh.close()


async def test_a_requester_asks_the_owner_which_fills_once() -> None:
    mesh = Mesh(5)
    owner, *_, requester = mesh.by_rank()  # the farthest of 5 is not among the 3 owners
    answers = await asyncio.gather(*(requester.service.get_menu(DISPENSARY) for _ in range(5)))
    assert mesh.upstream_calls() == 1
    assert owner.fetcher.total_calls == 1  # the closest owner filled
    assert {answer.path for answer in answers} == {AnswerPath.FILL}
    assert mesh.network.calls[("fill", owner.key.node_id)] == 1  # one question, shared
    await owner.service.wait_idle()
    # replicated to the two other owners, not to the requester
    holders = [member for member in mesh.members if member.store.puts]
    assert {member.key.node_id for member in holders} == {
        member.key.node_id for member in mesh.by_rank()[:3]
    }
    assert (await requester.service.get_menu(DISPENSARY)).path is AnswerPath.HOT
    await mesh.close()


async def test_a_down_owner_is_failed_over_and_reported() -> None:
    mesh = Mesh(5)
    owner, second, *_, requester = mesh.by_rank()
    mesh.network.down.add(owner.key.node_id)
    answer = await requester.service.get_menu(DISPENSARY)
    assert answer.path is AnswerPath.FILL
    assert second.fetcher.total_calls == 1
    assert owner.key.node_id in mesh.network.unreachable_notes
    await mesh.close()


async def test_stale_if_error_serves_the_old_record_while_upstream_fails() -> None:
    mesh = Mesh(1)
    node = mesh.members[0]
    fresh = mesh.settings.freshness
    filled = await node.service.get_menu(DISPENSARY)
    lifetime = (filled.fresh_until_ms - filled.record.fetched_at_ms) / 1000
    # past the lifetime and stale-while-revalidate, within stale-if-error
    mesh.clock.advance(lifetime + fresh.stale_while_revalidate + 60)
    node.fetcher.fail_next(unavailable())
    answer = await node.service.get_menu(DISPENSARY)
    assert answer.path is AnswerPath.STALE
    assert answer.stale
    assert answer.record.encoded == filled.record.encoded
    assert node.fetcher.total_calls == 2
    # past stale-if-error (the lifetime grows with the time since the last change, up to
    # max_ttl): the failure is the answer
    mesh.clock.advance(fresh.max_ttl + fresh.stale_if_error)
    node.fetcher.fail_next(unavailable())
    with pytest.raises(UpstreamUnavailable):
        await node.service.get_menu(DISPENSARY)
    await mesh.close()


async def test_stale_while_revalidate_answers_at_once_and_refreshes_behind() -> None:
    mesh = Mesh(1)
    node = mesh.members[0]
    filled = await node.service.get_menu(DISPENSARY)
    lifetime = (filled.fresh_until_ms - filled.record.fetched_at_ms) / 1000
    mesh.clock.advance(lifetime + 1)
    node.fetcher.version[DISPENSARY] += 1  # the menu changed upstream
    answer = await node.service.get_menu(DISPENSARY)
    assert answer.path is AnswerPath.STALE
    assert answer.record.encoded == filled.record.encoded
    await node.service.wait_idle()
    assert node.fetcher.total_calls == 2  # refreshed in the background
    refreshed = await node.service.get_menu(DISPENSARY)
    assert refreshed.record.fetched_at_ms > filled.record.fetched_at_ms
    assert refreshed.record.content_hash != filled.record.content_hash
    await mesh.close()


async def test_max_age_asks_for_a_younger_record() -> None:
    mesh = Mesh(1)
    node = mesh.members[0]
    first = await node.service.get_menu(DISPENSARY)
    mesh.clock.advance(100)
    held = await node.service.get_menu(DISPENSARY, max_age=300)
    assert held.path is AnswerPath.HOT
    assert held.fresh_until_ms == first.record.fetched_at_ms + 300_000
    younger = await node.service.get_menu(DISPENSARY, max_age=60)
    assert younger.path is AnswerPath.FILL
    assert younger.record.fetched_at_ms == first.record.fetched_at_ms + 100_000
    assert younger.fresh_until_ms == younger.record.fetched_at_ms + 60_000
    assert node.fetcher.total_calls == 2
    await mesh.close()


@pytest.mark.parametrize("error", [UnknownDispensary, UpstreamRefused])
async def test_refusals_are_remembered_for_the_negative_ttl(
    error: type[UnknownDispensary | UpstreamRefused],
) -> None:
    mesh = Mesh(1)
    node = mesh.members[0]
    node.fetcher.fail_next(error("no", source="jane", dispensary_id=DISPENSARY))
    with pytest.raises(error):
        await node.service.get_menu(DISPENSARY)
    with pytest.raises(error):  # remembered: upstream is not asked again
        await node.service.get_menu(DISPENSARY)
    assert node.fetcher.total_calls == 1
    mesh.clock.advance(mesh.settings.freshness.negative_ttl + 1)
    assert (await node.service.get_menu(DISPENSARY)).path is AnswerPath.FILL
    assert node.fetcher.total_calls == 2
    await mesh.close()


async def test_a_node_without_a_fetcher_refuses_to_fill() -> None:
    mesh = Mesh(0)
    node = mesh.add(upstream=False)  # a node configured to make no upstream calls
    with pytest.raises(UpstreamUnavailable, match="no upstream calls"):
        await node.service.get_menu(DISPENSARY)
    await mesh.close()


async def test_a_hedge_for_a_record_not_held_is_refused_without_fetching() -> None:
    mesh = Mesh(1)
    node = mesh.members[0]
    with pytest.raises(PeerProblem) as refused:
        await node.service.peer_fill(DISPENSARY, None, 5.0, hedge_from=b"\x01" * 20)
    assert refused.value.kind is ErrorKind.NOT_HELD
    assert node.fetcher.total_calls == 0
    await mesh.close()


async def test_a_record_from_a_publisher_that_is_not_an_owner_is_refused() -> None:
    mesh = Mesh(10)
    ranked = mesh.by_rank()
    owner = ranked[0]
    key = int.from_bytes(routing_key(DISPENSARY), "big")

    def distance(signing_key: SigningKey) -> int:
        return int.from_bytes(signing_key.node_id, "big") ^ key

    # a publisher farther from the key than every member: not entitled to publish it
    stranger = SigningKey.generate()
    while distance(stranger) < distance(ranked[-1].key):
        stranger = SigningKey.generate()
    parsed = package_menu(make_menu(DISPENSARY, 3, fetched_at_ms=int(mesh.clock.now * 1000)))
    record = sign_record(
        payload=parsed.payload,
        dispensary_id=DISPENSARY,
        fetched_at_ms=parsed.fetched_at_ms,
        content_hash=parsed.content_hash,
        signing_key=stranger,
    )
    with pytest.raises(NotEntitled):
        await owner.service.peer_put(DISPENSARY, record.encoded)
    assert owner.store.puts == 0
    assert sum(owner.service.statistics().peer_rejections.values()) == 1
    await mesh.close()


def _hot_entry(record_bytes: bytes, fetched_at_ms: int, content_hash: bytes) -> StoredRecord:
    """A hot cache entry without the service's verified form (as a bench or a tool would
    put it): only its bytes."""
    return StoredRecord(DISPENSARY, fetched_at_ms, content_hash, record_bytes)


async def test_a_hot_entry_without_its_verified_form_is_verified_before_it_answers() -> None:
    mesh = Mesh(1)
    node = mesh.members[0]
    now_ms = int(mesh.clock.now * 1000)
    parsed = package_menu(make_menu(DISPENSARY, 3, fetched_at_ms=now_ms))
    record = sign_record(
        payload=parsed.payload,
        dispensary_id=DISPENSARY,
        fetched_at_ms=now_ms,
        content_hash=parsed.content_hash,
        signing_key=node.key,
    )
    tampered = bytearray(record.encoded)
    tampered[-1] ^= 0x01  # the signature's last byte
    node.hot.put(_hot_entry(bytes(tampered), now_ms, bytes(record.content_hash)))
    answer = await node.service.get_menu(DISPENSARY, max_age=60)
    # the forged entry was refused and dropped; the answer is a fill
    assert answer.path is AnswerPath.FILL
    assert answer.record.encoded != bytes(tampered)
    assert node.service.statistics().peer_rejections == {"bad_signature": 1}
    assert node.fetcher.total_calls == 1
    # an honest entry held without its verified form is verified, then answers
    mesh.clock.advance(1)
    node.hot.delete(DISPENSARY, answer.record.fetched_at_ms)
    node.hot.put(_hot_entry(record.encoded, now_ms, bytes(record.content_hash)))
    again = await node.service.get_menu(DISPENSARY, max_age=60)
    assert again.path is AnswerPath.HOT
    assert again.record.encoded == record.encoded
    held = node.hot.peek_newest(DISPENSARY)
    assert held is not None
    assert held.decoded is not None
    await mesh.close()


async def test_every_store_read_is_verified() -> None:
    """A record damaged in the store is quarantined, not served; the node refills."""
    mesh = Mesh(1)
    node = mesh.members[0]
    filled = await node.service.get_menu(DISPENSARY)
    await node.service.aclose()
    stored = await node.store.newest(DISPENSARY)
    assert stored is not None
    damaged = bytearray(stored.data)
    damaged[-1] ^= 0x01
    await node.store.delete(DISPENSARY, stored.fetched_at_ms)
    await node.store.put(dataclasses.replace(stored, data=bytes(damaged), decoded=None))
    mesh.network.down.add(node.key.node_id)
    restarted = mesh.add(store=node.store)
    answer = await restarted.service.get_menu(DISPENSARY, max_age=60)
    assert answer.path is AnswerPath.FILL
    assert answer.record.encoded != filled.record.encoded
    assert [entry[:2] for entry in node.store.quarantined] == [
        (DISPENSARY, filled.record.fetched_at_ms)
    ]
    assert restarted.service.statistics().peer_rejections == {"bad_signature": 1}
    await mesh.close()
