"""Requests sent ahead or again: ``HistoryPrefetch`` (the cross-check's history asked beside
the fill) and ``resent``/``first_answer`` (a request repeated to the same node when no answer
came), driven by plain coroutines standing for the peer calls."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from whnode.peer.exceptions import PeerRefused, PeerUnreachable
from whnode.peer.prefetch import HistoryPrefetch
from whnode.service.hedging import resent


@dataclass(frozen=True)
class Peer:
    host: str
    port: int


B, C = Peer("10.0.0.2", 1), Peer("10.0.0.3", 1)


class Checkers:
    """Answers history requests from a table after ``seconds``, recording each call."""

    def __init__(self, held: dict[Peer, list[bytes]], seconds: float = 0.05) -> None:
        self.held = held
        self.seconds = seconds
        self.asked: list[Peer] = []

    async def ask(self, peer: Peer, dispensary_id: str, limit: int) -> list[bytes]:
        self.asked.append(peer)
        await asyncio.sleep(self.seconds)
        if peer not in self.held:
            raise PeerUnreachable("refused", peer=peer.host)
        return self.held[peer][:limit]


async def test_every_checker_is_asked_at_once_and_taken_while_on_its_way() -> None:
    checkers = Checkers({B: [b"r1", b"r0"], C: []}, seconds=0.2)
    prefetch = HistoryPrefetch(checkers.ask)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    began = loop.time()
    prefetch.start([B, C], "d", 2)
    held = await asyncio.gather(prefetch.take(B, "d", 2), prefetch.take(C, "d", 2))
    assert list(held) == [[b"r1", b"r0"], []]
    assert loop.time() - began < 0.35, "asked at once, not one after the other"
    assert sorted(p.host for p in checkers.asked) == [B.host, C.host]
    assert prefetch.started == 2
    assert prefetch.taken == 2


async def test_a_failed_checker_raises_at_take() -> None:
    checkers = Checkers({C: [b"r1"]})  # B refuses
    prefetch = HistoryPrefetch(checkers.ask)  # type: ignore[arg-type]
    prefetch.start([B, C], "d", 2)
    with pytest.raises(PeerUnreachable):
        await prefetch.take(B, "d", 2)
    assert await prefetch.take(C, "d", 2) == [b"r1"]


async def test_a_slot_is_taken_once_and_only_for_its_dispensary_and_limit() -> None:
    checkers = Checkers({B: [b"r1", b"r0"]})
    prefetch = HistoryPrefetch(checkers.ask)  # type: ignore[arg-type]
    prefetch.start([B], "d", 1)
    assert await prefetch.take(B, "other", 1) is None
    assert await prefetch.take(B, "d", 2) is None, "asked for fewer than wanted"
    prefetch.start([B], "d", 2)  # the slot for d is there already: not asked twice
    assert await prefetch.take(B, "d", 1) == [b"r1"]
    assert await prefetch.take(B, "d", 1) is None
    assert checkers.asked == [B]
    await prefetch.aclose()


async def test_a_request_without_answer_is_sent_again_and_the_first_answer_wins() -> None:
    sent: list[float] = []

    async def lossy() -> str:
        sent.append(asyncio.get_running_loop().time())
        if len(sent) == 1:
            await asyncio.sleep(10)  # lost: waits for a retransmission timeout
        return f"answer {len(sent)}"

    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await resent(lossy, 0.1) == ("answer 2", True)
    assert loop.time() - began < 1.0
    assert len(sent) == 2

    async def quick() -> str:
        return "at once"

    assert await resent(quick, 0.1) == ("at once", False)
    assert await resent(quick, None) == ("at once", False)


async def test_a_refusal_is_an_answer_and_unreachable_waits_for_the_other_copy() -> None:
    calls = 0

    async def refused_late() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)
            raise PeerUnreachable("timed out", peer="x")
        raise PeerRefused("not held", peer="x", status=404, kind="not_held")

    with pytest.raises(PeerRefused):
        await resent(refused_late, 0.05)

    calls = 0

    async def unreachable_then_answer() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.1)
            raise PeerUnreachable("reset", peer="x")
        await asyncio.sleep(0.3)
        return "second"

    assert await resent(unreachable_then_answer, 0.05) == ("second", True)

    async def never() -> str:
        await asyncio.sleep(0.1)
        raise PeerUnreachable("reset", peer="x")

    with pytest.raises(PeerUnreachable):
        await resent(never, 0.01)


async def test_no_second_request_when_the_event_loop_lags() -> None:
    sent = 0

    async def slow() -> str:
        nonlocal sent
        sent += 1
        await asyncio.sleep(0.4)
        return "late answer"

    # the loop is busy for 0.2 s while the request waits: the wait ends 0.1 s late, which
    # shows a CPU short of time, not a lost request
    asyncio.get_running_loop().call_later(0.01, time.sleep, 0.2)
    assert await resent(slow, 0.1) == ("late answer", False)
    assert sent == 1
