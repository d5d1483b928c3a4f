"""A clock moved by hand, for tests of time-based logic (aioquic's ``now += TICK``).

Components that judge time take a ``clock=`` callable (``MenuService``, ``Node``, the DHT
rate limiters, ``UpstreamHttp(breaker_clock=...)``, ``SeedRole``...). A test passes a
:class:`ManualClock` and moves it with :meth:`ManualClock.advance` instead of sleeping: a
breaker cools down, a record ages or a grace period ends in no time, and the assertion that
follows is exact rather than a race with the wall clock.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
from collections.abc import Awaitable, Callable

__all__ = ["ManualClock", "eventually", "eventually_sync"]

YIELDS_PER_TICK = 5
"""Turns of the event loop given to woken tasks after each step of :meth:`run_for`."""
EPSILON = 1e-9
"""Sleeps ending within this of the clock's reading are over (sums of floats drift)."""


class ManualClock:
    """Reads ``now`` (seconds); only :meth:`advance` and assignment to ``now`` move it.

    :meth:`sleep` is the ``sleep=`` a component takes in place of ``asyncio.sleep``: it
    returns once the clock has been moved past its end (by :meth:`advance` or
    :meth:`run_for`), never by itself.
    """

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never back), waking the sleepers whose time has
        come; returns the new reading."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self.now += seconds
        while self._sleepers and self._sleepers[0][0] <= self.now + EPSILON:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), waiter))
        await waiter

    def sleeping(self) -> int:
        """Sleeps not yet over (cancelled ones included until their time comes)."""
        return sum(1 for _, _, waiter in self._sleepers if not waiter.done())

    async def run_for(self, seconds: float, *, tick: float = 0.01) -> None:
        """Move ``seconds`` forward in steps of ``tick``, letting the woken tasks run
        between steps (each step yields to the event loop a few times, never sleeps)."""
        start = self.now
        steps = max(1, round(seconds / tick))
        for _ in range(YIELDS_PER_TICK):  # tasks started just before run first
            await asyncio.sleep(0)
        for step in range(1, steps + 1):
            self.advance(max(0.0, start + seconds * step / steps - self.now))
            for _ in range(YIELDS_PER_TICK):
                await asyncio.sleep(0)


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout: float = 10.0, poll: float = 0.01
) -> None:
    """Wait until ``condition()`` holds (it may be a coroutine function), on real sockets or
    tasks that take their own time.

    ``timeout`` is a failure guard only (TimeoutError names the condition), never a
    measurement: pass a generous one, and assert on the state the condition reached, not on
    how long it took (docs/testing.md).
    """

    async def holds() -> bool:
        result = condition()
        return bool(await result) if inspect.isawaitable(result) else bool(result)

    try:
        async with asyncio.timeout(timeout):
            while not await holds():
                await asyncio.sleep(poll)
    except TimeoutError:
        raise TimeoutError(f"condition never held within {timeout:g} s: {condition!r}") from None


def eventually_sync(
    condition: Callable[[], bool], *, timeout: float = 30.0, poll: float = 0.05
) -> None:
    """:func:`eventually` for synchronous tests (a child process writing a file, ...)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition never held within {timeout:g} s: {condition!r}")
        time.sleep(poll)
