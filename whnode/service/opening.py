"""Opening records in the parse pool: the costly half of keeping a record, off the event loop.

A record a node keeps (stores, caches, passes on) must open as its signed header says
(``whnode.record.acceptance.admit_record``): the payload is decompressed, decoded into a
menu, checked against the model and encoded again to compare. That costs about ten times
the signature check (5 ms for a 40-product menu, 24 ms for 250 products, against 0.5 ms),
and every node does it for every record it receives: from owners when it asks, from a
filling owner when it replicates, from the other owners in a fill's replica round. On the
event loop this work queues every other request behind it; on a busy host that queue is
where seconds of latency came from. The node's parse pool is there for exactly this kind of
work on untrusted input, so the open runs there; the signature, sizes, timestamps and key
binding are still checked on the loop first (cheap, and a record that fails them never
reaches a worker).
"""

from __future__ import annotations

import asyncio
from typing import Final

from whnode.errors import WhnodeError
from whnode.record.acceptance import TrustPolicy, admit_record
from whnode.record.exceptions import RecordError
from whnode.upstream.pool import ParsePool

__all__ = ["POOL_OPEN_BYTES", "RecordOpener", "open_job"]

POOL_OPEN_BYTES: Final = 2048
"""Records from this size on are opened in the pool; smaller ones (a handful of products)
open faster on the loop than a round trip to a worker takes."""


def open_job(data: bytes, now_ms: int, policy: TrustPolicy, expected: str | None) -> None:
    """In a worker: every rule of ``admit_record``; raises the rule's RecordError."""
    admit_record(data, now_ms=now_ms, policy=policy, expected_dispensary=expected)


class RecordOpener:
    """Opens records in a pool of worker processes (module docstring)."""

    def __init__(self, pool: ParsePool) -> None:
        self._pool = pool
        self.opened = 0
        """Records opened in the pool."""
        self.inline = 0
        """Records opened on the loop (small, or the pool was unavailable)."""
        self._warming: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        """Cancel a warm-up still running."""
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)

    def wants(self, data: bytes) -> bool:
        """Whether ``data`` is worth a trip to the pool, and the pool's workers are up.

        While they are not (the node just started, or the pool replaced its workers), the
        record is opened here rather than wait seconds for processes to start, and the
        workers are started in the background.
        """
        if len(data) < POOL_OPEN_BYTES or self._pool.closed():
            return False
        if self._pool.ready():
            return True
        if self._warming is None or self._warming.done():
            self._warming = asyncio.get_running_loop().create_task(
                self._pool.warm_up(), name="parse pool warm-up"
            )
            self._warming.add_done_callback(_take_outcome)
        return False

    async def open(
        self, data: bytes, *, now_ms: int, policy: TrustPolicy, expected: str | None
    ) -> None:
        """Apply ``admit_record``'s rules to ``data`` in a worker; raise its RecordError.

        When the pool cannot run the job (closed, or a worker died on it twice), the rules
        are applied here instead: the record is judged either way.
        """
        try:
            await self._pool.run(
                open_job, data, now_ms, policy, expected, source="open", dispensary_id="-"
            )
        except RecordError:
            raise
        except WhnodeError:
            self.inline += 1
            open_job(data, now_ms, policy, expected)
            return
        self.opened += 1


def _take_outcome(task: asyncio.Task[None]) -> None:
    """A warm-up that failed (the pool closed meanwhile) is retried by the next record."""
    if not task.cancelled():
        task.exception()
