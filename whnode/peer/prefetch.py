"""History answers asked ahead of need: the owner cross-check off the critical path.

A requester cross-checks the first answer it gets for a record with another owner
(``GET /peer/v1/history``, whnode.service.crosscheck): sent after the answer, that is one
more round trip on every miss (two when the first checker holds nothing yet, as after a
cold fill), 200-500 ms on a link of 100 ms one way, and a lost packet there costs a
retransmission timeout. The requester knows the checkers when it sends its fill (the other
owners), so it asks them at the same time (``HistoryPrefetch.start``): the cross-check then
finds the answer in flight or arrived (``take``) instead of asking anew.

The checkers are asked in the order given, the next one only when the one before held
nothing or failed, as the cross-check would. Every checker of a chain gets its slot at
once, so a cross-check that asks for a later checker waits for the chain to come to it
rather than sending a second request. A slot is taken once; one not taken within
PREFETCH_SECONDS is dropped (a later cross-check asks anew). What a checker answered a
round trip before the record arrived is what it held when the record was made: the
cross-check judges it the same way (docs/dht.md, "Cross-checking owners and evidence").
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
"""A checker's answer: its records, None when the chain stopped before it (not asked)."""


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
        """Ask ``checkers`` in turn for their ``limit`` newest records of the dispensary, the
        next only when one holds nothing or fails; a checker with a slot already is skipped."""
        now = time.monotonic()
        self._expire(now)
        loop = asyncio.get_running_loop()
        chain: list[tuple[_Address, _Slot]] = []
        for checker in checkers:
            key = (checker.host, checker.port, dispensary_id)
            if key in self._slots:
                continue
            slot: _Slot = loop.create_future()
            self._slots[key] = (slot, now, limit)
            chain.append((checker, slot))
        while len(self._slots) > MAX_PREFETCHED:
            _, (dropped, _, _) = self._slots.popitem(last=False)
            _settle(dropped, None)
        if not chain:
            return
        task = loop.create_task(self._run(chain, dispensary_id, limit), name="history prefetch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, chain: list[tuple[_Address, _Slot]], dispensary_id: str, limit: int
    ) -> None:
        held = False
        try:
            for checker, slot in chain:
                if held or slot.done():
                    _settle(slot, None)
                    continue
                self.started += 1
                try:
                    items = await self._ask(checker, dispensary_id, limit)
                except Exception as exc:  # handed to the taker, as a PeerError
                    if not slot.done():
                        slot.set_exception(
                            exc
                            if isinstance(exc, PeerError)
                            else PeerBadAnswer(repr(exc), peer=f"{checker.host}:{checker.port}")
                        )
                        slot.exception()  # a failure nobody takes is not news
                    continue
                _settle(slot, items)
                held = bool(items)
        finally:
            for _, slot in chain:  # cancelled (closing): nobody waits on what was not asked
                _settle(slot, None)

    async def take(self, peer: _Address, dispensary_id: str, limit: int) -> list[bytes] | None:
        """The history asked ahead of ``peer`` (it may still be on its way), or None when
        none was (or the chain stopped before it): the caller asks itself. Raises the
        request's PeerError."""
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
