"""New snapshots as they arrive, for whoever listens (change streams), and refresh-ahead.

``SnapshotEvents``: the service publishes every snapshot it stores for the first time (a
fill, a replica put, a republish, a record found at an owner and kept); listeners are plain
callbacks, called on the event loop, that must not block (the change streams put the record
in a bounded queue and drop a reader that falls behind).

``RefreshAhead``: while someone listens to a dispensary, the node asks for it again when its
newest snapshot stops being fresh, through the ordinary read-through path (single flight,
owners first, upstream rate limits, Retry-After and back-off all apply), so listeners hear of
changes without an app polling. At most one refresh per freshness window per dispensary; a
failed refresh is retried after a back-off that doubles up to ``MAX_BACKOFF_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Final

from whnode.record.signed import SignedRecord
from whnode.service.types import MenuAnswer

__all__ = ["RefreshAhead", "SnapshotEvents"]

log = logging.getLogger(__name__)

MIN_REFRESH_SECONDS: Final = 5.0
"""Least time between two refreshes of one dispensary."""
MIN_BACKOFF_SECONDS: Final = 30.0
MAX_BACKOFF_SECONDS: Final = 600.0

Listener = Callable[[SignedRecord], None]


class SnapshotEvents:
    """Callbacks per dispensary, called with each snapshot stored for the first time."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._everything: list[Listener] = []
        self.published = 0

    def listen_all(self, listener: Listener) -> None:
        """Call ``listener`` for each new snapshot of any dispensary (the search index)."""
        self._everything.append(listener)

    def listen(self, dispensary_id: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for each new snapshot of ``dispensary_id``; returns the
        function that stops it."""
        self._listeners[dispensary_id].add(listener)

        def stop() -> None:
            listeners = self._listeners.get(dispensary_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[dispensary_id]

        return stop

    def publish(self, record: SignedRecord) -> None:
        self.published += 1
        for listener in [*self._everything, *self._listeners.get(record.dispensary_id, ())]:
            try:
                listener(record)
            except Exception:  # a listener's fault never reaches the service
                log.exception("snapshot listener failed for %s", record.dispensary_id)

    def watched(self) -> int:
        """Dispensaries with at least one listener."""
        return len(self._listeners)

    def listeners(self) -> int:
        return sum(len(listeners) for listeners in self._listeners.values())


class RefreshAhead:
    """Keeps watched dispensaries fresh while they are watched."""

    def __init__(
        self,
        get_menu: Callable[[str], Awaitable[MenuAnswer]],
        *,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        min_interval: float = MIN_REFRESH_SECONDS,
        min_backoff: float = MIN_BACKOFF_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``now_ms`` and ``sleep`` are the clock it judges freshness by and waits on
        (tests pass a hand-moved one, whnode.testing.clock.ManualClock)."""
        self._get_menu = get_menu
        self._sleep = sleep
        self._now_ms = now_ms
        self._min_interval = min_interval
        self._min_backoff = min_backoff
        self._watchers: dict[str, int] = defaultdict(int)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.refreshes = 0
        self.failures = 0

    def watch(self, dispensary_id: str) -> None:
        self._watchers[dispensary_id] += 1
        if dispensary_id not in self._tasks:
            self._tasks[dispensary_id] = asyncio.get_running_loop().create_task(
                self._keep_fresh(dispensary_id), name=f"refresh-ahead {dispensary_id}"
            )

    def unwatch(self, dispensary_id: str) -> None:
        self._watchers[dispensary_id] -= 1
        if self._watchers[dispensary_id] <= 0:
            del self._watchers[dispensary_id]
            task = self._tasks.pop(dispensary_id, None)
            if task is not None:
                task.cancel()

    def watched(self) -> int:
        return len(self._tasks)

    async def _keep_fresh(self, dispensary_id: str) -> None:
        backoff = self._min_backoff
        while True:
            try:
                answer = await self._get_menu(dispensary_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # upstream trouble: told to the listeners' next get
                self.failures += 1
                log.debug("refresh-ahead of %s failed: %s", dispensary_id, exc)
                await self._sleep(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
                continue
            self.refreshes += 1
            backoff = self._min_backoff
            wait = (answer.fresh_until_ms - self._now_ms()) / 1000
            await self._sleep(max(self._min_interval, wait + 0.5))

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        self._watchers.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
