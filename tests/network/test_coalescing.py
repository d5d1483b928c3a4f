"""One upstream call per dispensary per freshness window, also when the machine is busy.

Each test reproduces one way a loaded network used to fill twice, on real nodes (UDP, TCP,
SQLite, process pool) and the sandbox upstream; what a busy machine does (lookups that lose
replies, requests that reach the owner late, slow answers) is injected where noted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from whnode.dht import Contact
from whnode.peer.client import PeerClient
from whnode.peer.routes import FillResult
from whnode.service.filllog import UpstreamFetch
from whnode.service.types import AnswerPath
from whnode.testing.clock import ManualClock
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.timeout(120)

PeerFill = Callable[..., Awaitable[FillResult]]


async def test_requesters_whose_lookups_lose_replies_still_name_the_same_owner(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(6, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        owners = cluster.owners(dispensary, 3)
        requesters = [node for node in cluster.nodes if node not in owners][:2]
        for node in requesters:
            # A lagging event loop: every lookup RPC times out, the lookup hears only from
            # this node itself (what find_owners returns when nobody answers in time).
            own = node.dht.self_contact

            async def lagging(
                key: bytes, count: int, *, fresh: bool = False, me: Contact = own
            ) -> list[Contact]:
                return [me]

            node.dht.find_owners = lagging  # type: ignore[method-assign]
        fetches: list[UpstreamFetch] = []
        for node in cluster.nodes:
            node.service.observe_fills(fetches.append)
        before = sandbox.calls(dispensary)
        answers = await asyncio.gather(
            *(node.service.get_menu(dispensary, max_age=600) for node in requesters)
        )
        await cluster.wait_idle()
        assert {answer.record.encoded for answer in answers} == {answers[0].record.encoded}
        assert sandbox.calls(dispensary) - before == 1
        assert [fetch.node_id for fetch in fetches] == [owners[0].node_id]


async def test_a_record_fresh_when_the_request_arrived_is_the_answer_however_late(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    clock = ManualClock(time.time())
    async with LocalCluster(3, tmp_path, sandbox_url=sandbox.base_url, clock=clock) as cluster:
        owner = cluster.owners(dispensary, 1)[0]
        session = aiohttp.ClientSession()
        requester = PeerClient(session, node_id_hex="ab" * 20, timeout=10.0)
        held = await owner.service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        calls = sandbox.calls(dispensary)
        arrived_ms = held.record.fetched_at_ms + 200  # the record was 200 ms old then
        clock.advance(0.6)  # ... and the fill reaches the owner late (busy loop)
        fill = await requester.fill(
            owner.dht.self_contact,
            dispensary,
            max_age=0.4,
            budget=10.0,
            requested_at_ms=arrived_ms,
        )
        assert fill.data == held.record.encoded, "fresh on arrival: no second fetch"
        assert sandbox.calls(dispensary) == calls
        # Without the arrival time the owner judges on its own arrival and fills anew.
        later = await requester.fill(owner.dht.self_contact, dispensary, max_age=0.4, budget=10.0)
        assert later.data != held.record.encoded
        assert later.path == AnswerPath.FILL.value
        assert sandbox.calls(dispensary) == calls + 1
        await session.close()


async def test_a_joined_fill_from_a_replica_fresh_on_arrival_starts_no_second_fill(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    clock = ManualClock(time.time())
    async with LocalCluster(4, tmp_path, sandbox_url=sandbox.base_url, clock=clock) as cluster:
        first, second, third = cluster.owners(dispensary, 3)
        await second.service.get_menu(dispensary, max_age=600)  # second fills, replicates
        await cluster.wait_idle()
        record = await second.store.newest(dispensary)
        assert record is not None
        # the first owner lost its copy (say it just joined)
        await first.store.delete(dispensary, record.fetched_at_ms)
        first.hot.discard(dispensary)
        calls = sandbox.calls(dispensary)
        # The other owners answer the replica round slowly (a busy machine).
        for slow in (second, third):
            fill: PeerFill = slow.service.peer_fill

            async def slow_fill(
                dispensary_id: str,
                max_age: float | None,
                budget: float,
                *,
                fill: PeerFill = fill,
                **options: Any,
            ) -> FillResult:
                clock.advance(0.5)  # half a second passes while it answers
                return await fill(dispensary_id, max_age, budget, **options)

            slow.service.peer_fill = slow_fill  # type: ignore[method-assign]
        age = (first.service.now_ms() - record.fetched_at_ms) / 1000
        max_age = age + 0.3  # fresh on arrival, older than max_age once the round is over
        answers = await asyncio.gather(
            first.service.fill_as_owner(dispensary, max_age),
            first.service.fill_as_owner(dispensary, max_age),
        )
        assert first.service.now_ms() - record.fetched_at_ms > max_age * 1000
        assert {answer.record.fetched_at_ms for answer in answers} == {record.fetched_at_ms}
        assert sandbox.calls(dispensary) == calls, "no refill after joining"


async def test_owners_dropped_from_a_lagging_nodes_routing_table_stay_its_owners(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    other = sandbox.other_dispensary
    async with LocalCluster(6, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        excluded = set(cluster.owners(dispensary, 3)) | set(cluster.owners(other, 3))
        requester = next(node for node in cluster.nodes if node not in excluded)
        await requester.service.get_menu(other, max_age=600)  # it knew its peers then
        # Then its loop lagged: its UDP RPCs timed out, the routing table dropped every
        # contact and lookups hear only from the node itself.
        own = requester.dht.self_contact

        async def lagging(
            key: bytes, count: int, *, fresh: bool = False, me: Contact = own
        ) -> list[Contact]:
            return [me]

        requester.dht.find_owners = lagging  # type: ignore[method-assign]
        requester.dht.contacts = list  # type: ignore[method-assign]
        fetches: list[UpstreamFetch] = []
        for node in cluster.nodes:
            node.service.observe_fills(fetches.append)
        await requester.service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        assert [fetch.node_id for fetch in fetches] == [cluster.owners(dispensary, 1)[0].node_id]
