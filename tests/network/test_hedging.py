"""Hedged fills (whnode.service.hedging) on real nodes over loopback, the sandbox upstream.

A slow owner is made by an injected delay in front of its fill handler (loopback has no
delay of its own); a lost connection by a peer client that fails its first call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from whnode.node import Node
from whnode.peer.exceptions import PeerUnreachable
from whnode.peer.routes import FillResult
from whnode.service.filllog import UpstreamFetch
from whnode.testing.clock import eventually
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.timeout(120)

PeerFill = Callable[..., Awaitable[FillResult]]


class Held:
    """Fills held at a gate: how many arrived, and the gate that lets them answer."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = 0

    def set(self) -> None:
        self.gate.set()


def hold_fills(node: Node, *, hedges_too: bool = False) -> Held:
    """Make ``node`` answer fills only once ``Held.set()`` is called (a slow path to it)."""
    fill: PeerFill = node.service.peer_fill
    held = Held()

    async def slow_fill(
        dispensary_id: str, max_age: float | None, budget: float, **options: Any
    ) -> FillResult:
        if hedges_too or options.get("hedge_from") is None:
            held.entered += 1
            await held.gate.wait()
        return await fill(dispensary_id, max_age, budget, **options)

    node.service.peer_fill = slow_fill  # type: ignore[method-assign]
    return held


def observe(cluster: LocalCluster) -> list[UpstreamFetch]:
    fetches: list[UpstreamFetch] = []
    for node in cluster.nodes:
        node.service.observe_fills(fetches.append)
    return fetches


async def test_a_slow_owner_is_hedged_to_the_next_one_which_holds_a_replica(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(5, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        owners = cluster.owners(dispensary, 3)
        held = await owners[0].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()  # replicated to the other owners
        calls = sandbox.calls(dispensary)
        gate = hold_fills(owners[0])
        requester = next(node for node in cluster.nodes if node not in owners)
        answer = await requester.service.get_menu(dispensary, max_age=600)
        assert gate.entered == 1, "the first owner got the fill, and was still holding it"
        assert answer.record.encoded == held.record.encoded
        assert requester.service.statistics().hedges == {"sent": 1, "won": 1}
        assert sandbox.calls(dispensary) == calls
        gate.set()


async def test_a_hedge_never_makes_a_second_upstream_fetch(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(5, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        fetches = observe(cluster)
        owners = cluster.owners(dispensary, 3)
        gate = hold_fills(owners[0])  # nobody holds it: the hedge finds nothing to give
        requester = next(node for node in cluster.nodes if node not in owners)
        asking = asyncio.ensure_future(requester.service.get_menu(dispensary, max_age=600))
        await eventually(lambda: requester.service.statistics().hedges.get("declined") == 1)
        assert not asking.done()  # still waiting on the first owner
        gate.set()
        answer = await asking
        await cluster.wait_idle()
        assert [fetch.node_id for fetch in fetches] == [owners[0].node_id]
        assert answer.record.fetched_at_ms == fetches[0].fetched_at_ms
        # the declined hedge made the requester send its fill to the first owner once
        # more (a lost request is retried); the owner's single-flight joined the two
        assert requester.service.statistics().hedges == {"sent": 1, "declined": 1, "resent": 1}


async def test_two_owners_that_both_fill_make_one_upstream_fetch(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(5, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        fetches = observe(cluster)
        first, second, _ = cluster.owners(dispensary, 3)
        sandbox.set_latency(0.5)
        # Owner lists that disagree (churn, lag): both take themselves for the one to fill.
        answers = await asyncio.gather(
            second.service.fill_as_owner(dispensary, 600),
            first.service.fill_as_owner(dispensary, 600),
        )
        await cluster.wait_idle()
        assert len(fetches) == 1, [fetch.node_id.hex() for fetch in fetches]
        assert fetches[0].node_id == first.node_id, "the closer owner fills"
        assert {answer.record.encoded for answer in answers} == {answers[0].record.encoded}


async def test_failover_to_the_next_owner_joins_the_first_owners_running_fill(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(5, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        fetches = observe(cluster)
        owners = cluster.owners(dispensary, 3)
        requester = next(node for node in cluster.nodes if node not in owners)
        sandbox.set_latency(1.0)
        before = sandbox.calls(dispensary)
        running = asyncio.ensure_future(owners[0].service.fill_as_owner(dispensary, 600))
        await eventually(lambda: sandbox.calls(dispensary) > before)  # calling upstream
        peers = requester.service._peers
        fill = peers.fill

        async def connection_lost(*args: Any, **options: Any) -> Any:
            # The first call (to the first owner) loses its connection; the rest go out.
            peers.fill = fill  # type: ignore[method-assign]
            raise PeerUnreachable("connection reset", peer="first owner")

        peers.fill = connection_lost  # type: ignore[method-assign]
        answer = await requester.service.get_menu(dispensary, max_age=600)
        assert requester.service.statistics().failovers == {"unreachable": 1}
        first = await running
        await cluster.wait_idle()
        assert len(fetches) == 1, [fetch.reason for fetch in fetches]
        assert answer.record.encoded == first.record.encoded


def lose_first_call(node: Node, to: Node, *, hedge: bool) -> list[bool]:
    """Make ``node``'s first fill (``hedge``: its first hedge) to ``to`` go unanswered, as
    a request whose SYN or segment was lost waits for a retransmission timeout; returns a
    list that gets one entry per call to ``to`` of that kind."""
    peers = node.service._peers
    fill = peers.fill
    calls: list[bool] = []

    async def lossy(contact: Any, *args: Any, **options: Any) -> Any:
        if contact.node_id == to.node_id and bool(options.get("hedge")) == hedge:
            calls.append(True)
            if len(calls) == 1:
                await asyncio.sleep(30)
                raise PeerUnreachable("timed out", peer="lost")
        return await fill(contact, *args, **options)

    peers.fill = lossy  # type: ignore[method-assign,assignment]
    return calls


async def test_a_fill_lost_on_its_way_is_sent_again_once_the_hedge_is_declined(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(5, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        fetches = observe(cluster)
        owners = cluster.owners(dispensary, 3)
        requester = next(node for node in cluster.nodes if node not in owners)
        calls = lose_first_call(requester, owners[0], hedge=False)
        started = time.monotonic()
        answer = await requester.service.get_menu(dispensary, max_age=600)
        elapsed = time.monotonic() - started
        await cluster.wait_idle()
        assert elapsed < 5.0, f"the lost request was waited for ({elapsed:.2f} s)"
        assert len(calls) == 2
        assert requester.service.statistics().hedges == {"sent": 1, "declined": 1, "resent": 1}
        assert [fetch.node_id for fetch in fetches] == [owners[0].node_id]
        assert answer.record.fetched_at_ms == fetches[0].fetched_at_ms


async def test_a_replica_round_hedge_lost_on_its_way_is_sent_again(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(5, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        fetches = observe(cluster)
        first, second, third = cluster.owners(dispensary, 3)
        held = await second.service.fill_as_owner(dispensary, 600)
        await cluster.wait_idle()
        # The first owner lost its copy (a new owner after churn): only replicas hold it.
        assert first._store is not None
        await first._store.delete(dispensary, held.record.fetched_at_ms)
        first.hot.delete(dispensary, held.record.fetched_at_ms)
        fetches.clear()
        calls = lose_first_call(first, second, hedge=True)
        lose_first_call(first, third, hedge=True)
        started = time.monotonic()
        answer = await first.service.fill_as_owner(dispensary, 600)
        elapsed = time.monotonic() - started
        assert elapsed < 5.0, f"the lost hedges were waited for ({elapsed:.2f} s)"
        assert answer.record.encoded == held.record.encoded, "taken from a replica"
        assert fetches == [], "no upstream fetch"
        assert len(calls) == 2
        assert first.service.statistics().hedges.get("replica_resent", 0) >= 1
