"""History answers asked ahead of need: the owner cross-check off the critical path.

A requester cross-checks the first answer it gets for a record with the other owners
(``GET /peer/v1/history``, whnode.service.crosscheck): sent after the answer, that is one
more round trip on every miss, 200-500 ms on a link of 100 ms one way, and a lost packet
there costs a retransmission timeout. The requester knows the checkers when it sends its
fill (the other owners), so it asks them at the same time (``HistoryPrefetch.start``): the
cross-check then finds each answer in flight or arrived (``take``) instead of asking anew.

A slot is taken once; one not taken within PREFETCH_SECONDS is dropped (a later cross-check
asks anew). What a checker answered a round trip before the record arrived is what it held
when the record was made: the cross-check judges it the same way (docs/dht.md,
"Cross-checking owners and evidence").
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

from whnode.peer.exceptions import PeerBadAnswer, PeerError

__all__ = ["HistoryPrefetch"]

PREFETCH_SECONDS: Final = 10.0
"""How long a history asked ahead waits to be taken."""
MAX_PREFETCHED: Final = 1024
"""Slots kept at most (oldest dropped first)."""


class _Address(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


Ask = Callable[[_Address, str, int], Awaitable[list[bytes]]]
"""Sends one history request (the client's own ``history``)."""

_Slot = asyncio.Future[list[bytes] | None]
"""A checker's answer: its records, None when it was not asked (closing)."""


class HistoryPrefetch:
    """Slots of history requests sent ahead, by (checker, dispensary) (module docstring)."""

    def __init__(self, ask: Ask) -> None:
        self._ask = ask
        self._slots: OrderedDict[tuple[str, int, str], tuple[_Slot, float, int]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = 0
        """Checkers asked ahead."""
        self.taken = 0
        """Answers asked ahead that a cross-check used."""

    def start(self, checkers: Sequence[_Address], dispensary_id: str, limit: int) -> None:
        """Ask every one of ``checkers`` now for its ``limit`` newest records of the
        dispensary; a checker with a slot already is not asked again."""
        now = time.monotonic()
        self._expire(now)
        loop = asyncio.get_running_loop()
        for checker in checkers:
            key = (checker.host, checker.port, dispensary_id)
            if key in self._slots:
                continue
            slot: _Slot = loop.create_future()
            self._slots[key] = (slot, now, limit)
            task = loop.create_task(
                self._run(checker, slot, dispensary_id, limit), name="history prefetch"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        while len(self._slots) > MAX_PREFETCHED:
            _, (dropped, _, _) = self._slots.popitem(last=False)
            _settle(dropped, None)

    async def _run(self, checker: _Address, slot: _Slot, dispensary_id: str, limit: int) -> None:
        self.started += 1
        try:
            items = await self._ask(checker, dispensary_id, limit)
        except asyncio.CancelledError:
            _settle(slot, None)  # closing: a taker asks itself
            raise
        except Exception as exc:  # handed to the taker, as a PeerError
            if not slot.done():
                slot.set_exception(
                    exc
                    if isinstance(exc, PeerError)
                    else PeerBadAnswer(repr(exc), peer=f"{checker.host}:{checker.port}")
                )
                slot.exception()  # a failure nobody takes is not news
            return
        _settle(slot, items)

    async def take(self, peer: _Address, dispensary_id: str, limit: int) -> list[bytes] | None:
        """The history asked ahead of ``peer`` (it may still be on its way), or None when
        none was: the caller asks itself. Raises the request's PeerError."""
        key = (peer.host, peer.port, dispensary_id)
        entry = self._slots.get(key)
        if entry is None:
            return None
        slot, started, asked_limit = entry
        if asked_limit < limit or time.monotonic() - started > PREFETCH_SECONDS:
            return None
        del self._slots[key]
        items = await asyncio.shield(slot)
        if items is None:
            return None
        self.taken += 1
        return items[:limit]

    def _expire(self, now: float) -> None:
        while self._slots:
            key, (slot, started, _) = next(iter(self._slots.items()))
            if now - started <= PREFETCH_SECONDS:
                break
            del self._slots[key]
            _settle(slot, None)

    async def aclose(self) -> None:
        """Cancel the requests still in flight."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for slot, _, _ in self._slots.values():
            _settle(slot, None)
        self._slots.clear()


def _settle(slot: _Slot, items: list[bytes] | None) -> None:
    if not slot.done():
        slot.set_result(items)
