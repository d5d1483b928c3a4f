"""A clock moved by hand, for tests of time-based logic (aioquic's ``now += TICK``).

Components that judge time take a ``clock=`` callable (``MenuService``, ``Node``, the DHT
rate limiters, ``UpstreamHttp(breaker_clock=...)``, ``SeedRole``...). A test passes a
:class:`ManualClock` and moves it with :meth:`ManualClock.advance` instead of sleeping: a
breaker cools down, a record ages or a grace period ends in no time, and the assertion that
follows is exact rather than a race with the wall clock.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

__all__ = ["ManualClock", "eventually"]


class ManualClock:
    """Reads ``now`` (seconds); only :meth:`advance` and assignment to ``now`` move it."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never back); returns the new reading."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self.now += seconds
        return self.now


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
