"""Single-flight: concurrent callers for one key share one running operation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Run at most one operation per key; later callers wait on the running one.

    The operation runs in its own task, so a waiter that is cancelled (a client that went
    away) does not cancel the fill the other waiters share. The owner of this object must call
    ``aclose()`` to cancel what still runs.
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}
        self.coalesced = 0

    def running(self, key: K) -> bool:
        return key in self._running

    def start(self, key: K, operation: Callable[[], Awaitable[V]]) -> asyncio.Task[V]:
        """Start ``operation`` for ``key`` unless one runs; return the running task."""
        task = self._running.get(key)
        if task is not None:
            self.coalesced += 1
            return task

        async def wrapper() -> V:
            return await operation()

        task = asyncio.get_running_loop().create_task(wrapper(), name=f"single-flight {key!r}")
        self._running[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def join(self, key: K) -> V | None:
        """Wait for the operation running for ``key`` and return its result; None when none
        runs (nothing is started)."""
        task = self._running.get(key)
        if task is None:
            return None
        self.coalesced += 1
        return await asyncio.shield(task)

    async def run(self, key: K, operation: Callable[[], Awaitable[V]]) -> V:
        """Run or join the operation for ``key`` and return its result."""
        return await asyncio.shield(self.start(key, operation))

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here: waiters get it through the shield

    async def aclose(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
