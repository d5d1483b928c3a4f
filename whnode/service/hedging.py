"""Hedged fills: asking a second owner that can answer without calling upstream.

A *hedge* is a fill request marked ``hedge=1`` (docs/peer-protocol.md). The owner that gets
one never starts an upstream fetch for it: it answers with a record it holds that is fresh
enough, or with the record of a fill of that dispensary it is running (it joins it), or at
once with 404 ``not_held``. Two uses:

- **Requesters** send the fill to the closest owner and, when no answer came within the
  hedge delay, a hedge to the next owner; the first usable answer wins. A lost packet or a
  slow path to one owner then costs the hedge delay, not a retransmission timeout.
- **Owners** start every fill by hedging to the other owners (the replica round): a record
  held by a replica, or a fill that another owner is already running, is taken instead of a
  second upstream fetch. This is what keeps two owners that both took themselves for the one
  to fill (failover, owner lists that disagree during churn or lag) from both calling
  upstream.

Joining is what could deadlock: two owners whose fills are both still in their replica round
would each wait for the other. The rule of ``may_join`` orders the waiting: a fill still in
its replica round is joined only by a node farther from the key than the node running it, so
the closest of them never waits and goes upstream, and the others take its record.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from whnode.peer.exceptions import PeerRefused

__all__ = ["HedgeDelay", "first_answer", "may_join", "resent"]

T = TypeVar("T")

SAMPLES: Final = 256
"""Recent answer times the hedge delay is taken from."""
QUANTILE: Final = 0.9
MAX_DELAY: Final = 2.0
"""Seconds: the hedge delay never grows past this, however slow answers have been."""
LAGGING_SECONDS: Final = 0.05
"""A wait that ended this much later than asked shows an event loop short of CPU: the
requests it waits for are slow for the same reason, not lost, and are not sent again."""


def may_join(*, past_replicas: bool, me: bytes, asker: bytes | None, key: bytes) -> bool:
    """Whether a hedge from ``asker`` may wait for the fill this node (``me``) runs.

    A fill past its replica round (calling upstream or later) waits on no other node: anyone
    may join it. One still in its replica round may be waiting for other owners' answers,
    so only a node farther from ``key`` than this one may join it (an unknown asker counts
    as the farthest: it is a requester, not a filling owner).
    """
    if past_replicas or asker is None:
        return True
    target = int.from_bytes(key, "big")
    return int.from_bytes(me, "big") ^ target < int.from_bytes(asker, "big") ^ target


class HedgeDelay:
    """How long a requester waits for the closest owner before hedging to the next one.

    The QUANTILE (90th percentile) of the recent times owners took to answer with a record
    they held (the time a healthy path takes; upstream fills are not sampled), never less
    than ``floor`` seconds nor more than MAX_DELAY. ``floor`` 0 turns hedging off.
    """

    def __init__(self, floor: float) -> None:
        self.floor = floor
        self._recent: deque[float] = deque(maxlen=SAMPLES)
        self._sorted: list[float] = []

    @property
    def enabled(self) -> bool:
        return self.floor > 0

    def observe(self, seconds: float) -> None:
        """An owner answered with a record it held after ``seconds``."""
        if len(self._recent) == self._recent.maxlen:
            oldest = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self._recent.append(seconds)
        bisect.insort(self._sorted, seconds)

    def current(self) -> float:
        if not self._sorted:
            return self.floor
        index = min(len(self._sorted) - 1, int(QUANTILE * len(self._sorted)))
        return min(MAX_DELAY, max(self.floor, self._sorted[index]))


async def resent(send: Callable[[], Awaitable[T]], after: float | None) -> tuple[T, bool]:
    """``send()``'s outcome, sending once more to the same node when no answer came within
    ``after`` seconds; returns (outcome, whether it was sent twice).

    For requests that are safe to repeat (a hedge; a fill, which the owner's single-flight
    joins to the one running). Over a lossy link a request whose connection lost its SYN
    waits for TCP's 1 s initial retransmission timeout, one whose segment was lost for the
    retransmission timeout: a second request sent after a few round trips (as Kademlia
    implementations retransmit an RPC) usually arrives first; not when the wait for the first
    ended more than LAGGING_SECONDS late (an event loop short of CPU, whose requests are
    slow, not lost: a second one would add work). The first answer wins; a
    refusal (PeerRefused, e.g. ``not_held``) is an answer; a failure to reach the node
    waits for the other request, and is raised when both failed. ``after`` None: sent once.
    """
    if after is None:
        return await send(), False
    first = asyncio.ensure_future(send())
    first.add_done_callback(_retrieve)
    try:
        began = time.monotonic()
        done, _ = await asyncio.wait({first}, timeout=after)
        if first in done:
            return first.result(), False
        if time.monotonic() - began - after > LAGGING_SECONDS:
            return await first, False  # this loop lags: slow for want of CPU, not lost
        second = asyncio.ensure_future(send())
        second.add_done_callback(_retrieve)
        try:
            return await first_answer(first, second), True
        finally:
            _cancel(second)
    finally:
        _cancel(first)


async def first_answer(first: asyncio.Future[T], second: asyncio.Future[T]) -> T:
    """The outcome of whichever of two requests answers first (a refusal, PeerRefused, is
    an answer); when one fails to reach its node, the other's; when both do, the first's
    failure. Neither is cancelled here."""
    pending = {first, second}
    failures: dict[asyncio.Future[T], BaseException] = {}
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is None or isinstance(error, PeerRefused):
                return task.result()
            failures[task] = error
    raise failures.get(first) or failures[second]


def _cancel(task: asyncio.Future[T]) -> None:
    if not task.done():
        task.cancel()


def _retrieve(task: asyncio.Future[T]) -> None:
    """Take a request's outcome: the loser's failure (it may end in one even as it is
    cancelled) is not news, nor a log line."""
    if not task.cancelled():
        task.exception()
