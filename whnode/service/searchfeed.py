"""Keeps the search index (``whnode.store.search``) in step with the store.

Every snapshot the service stores for the first time (``SnapshotEvents``) is queued; one task
opens each (in a worker thread: decompress and decode) and indexes it when it is newer than
what the index holds for its dispensary. On start, the newest snapshot of every dispensary in
the store is compared with the index and indexed when newer or missing: a new or deleted
index is rebuilt, and a snapshot stored just before a crash is indexed after the restart.
Records read back from the node's own store were verified when they were accepted; opening
checks their payload against their signed header again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from whnode.record.acceptance import open_record
from whnode.record.exceptions import RecordError
from whnode.record.signed import SignedRecord, decode_record
from whnode.service.events import SnapshotEvents
from whnode.store.search import SearchIndex
from whnode.store.types import StoredRecord

__all__ = ["QUEUE_LIMIT", "SearchFeed"]

log = logging.getLogger(__name__)

QUEUE_LIMIT: Final = 4096
"""New snapshots waiting to be indexed; beyond, the newest of a dispensary is found by the
next start's scan (and by ``ensure``)."""


class SearchFeed:
    def __init__(self, index: SearchIndex, events: SnapshotEvents) -> None:
        self.index = index
        self._queue: asyncio.Queue[SignedRecord] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None
        self._scan: asyncio.Task[int] | None = None
        self.dropped = 0
        self.failed = 0
        events.listen_all(self._on_snapshot)

    def _on_snapshot(self, record: SignedRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self, newest: AsyncIterator[StoredRecord]) -> None:
        """Index what the store holds (in the background), then follow new snapshots."""
        loop = asyncio.get_running_loop()
        self._scan = loop.create_task(self._catch_up(newest), name="search index scan")
        self._task = loop.create_task(self._follow(), name="search index feed")

    async def scanned(self) -> int:
        """Wait for the start-up scan; how many snapshots it indexed."""
        assert self._scan is not None
        return await self._scan

    async def ensure(self, record: SignedRecord) -> None:
        """Index ``record`` now unless the index holds it or a newer one."""
        held = self.index.indexed_at(record.dispensary_id)
        if held is not None and held >= record.fetched_at_ms:
            return
        try:
            menu = await asyncio.to_thread(open_record, record)
        except RecordError as exc:
            self.failed += 1
            log.warning("snapshot of %s not indexed: %s", record.dispensary_id, exc)
            return
        await self.index.update(record, menu)

    async def _catch_up(self, newest: AsyncIterator[StoredRecord]) -> int:
        count = 0
        async for stored in newest:
            held = self.index.indexed_at(stored.dispensary_id)
            if held is not None and held >= stored.fetched_at_ms:
                continue
            try:
                record = decode_record(stored.data)
            except RecordError:
                self.failed += 1
                continue
            await self.ensure(record)
            count += 1
        return count

    async def _follow(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self.ensure(record)
            except Exception:  # an index failure never stops the feed
                self.failed += 1
                log.exception("search index update of %s failed", record.dispensary_id)

    async def aclose(self) -> None:
        for task in (self._scan, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.index.aclose()
