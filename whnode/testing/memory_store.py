"""``MemoryStore``: the durable store's in-memory twin (whnode.abc.RecordStore).

Same answers as ``whnode.store.durable.DurableStore`` for the same puts (the conformance
suite tests/store/test_store_conformance.py runs both): snapshots per dispensary ordered by
fetch time, the first of a (dispensary, fetched_at) kept, a history window per dispensary,
quarantine as a delete that is remembered. No byte quota, no expiry, no SQLite: for unit
tests of the layers above the store.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator

from whnode.store.exceptions import StoreUsageError
from whnode.store.types import StoredRecord

__all__ = ["MemoryStore"]


class MemoryStore:
    """Snapshots in dictionaries; every method completes without awaiting anything."""

    def __init__(self, *, history_per_dispensary: int = 48) -> None:
        if history_per_dispensary < 1:
            raise StoreUsageError("history_per_dispensary must be >= 1")
        self._history = history_per_dispensary
        self._records: dict[str, list[StoredRecord]] = {}
        """Per dispensary, oldest first."""
        self.quarantined: list[tuple[str, int, str]] = []
        """(dispensary, fetched_at_ms, reason) of every snapshot moved aside."""
        self.puts = 0
        """Puts that added a snapshot."""

    async def put(self, record: StoredRecord) -> bool:
        """Keep ``record``; False when its (dispensary, fetched_at) is held or it is older
        than the dispensary's history window."""
        held = self._records.setdefault(record.dispensary_id, [])
        times = [stored.fetched_at_ms for stored in held]
        index = bisect.bisect_left(times, record.fetched_at_ms)
        if index < len(times) and times[index] == record.fetched_at_ms:
            return False
        if len(held) >= self._history and index == 0:
            return False
        held.insert(index, record)
        del held[: max(0, len(held) - self._history)]
        self.puts += 1
        return True

    async def newest(self, dispensary_id: str) -> StoredRecord | None:
        held = self._records.get(dispensary_id)
        return held[-1] if held else None

    async def at(self, dispensary_id: str, t_ms: int) -> StoredRecord | None:
        held = self._records.get(dispensary_id, [])
        index = bisect.bisect_right([stored.fetched_at_ms for stored in held], t_ms)
        return held[index - 1] if index else None

    async def history(self, dispensary_id: str, limit: int) -> list[StoredRecord]:
        if limit <= 0:
            return []
        return self._records.get(dispensary_id, [])[::-1][:limit]

    async def discard(self, dispensary_id: str) -> int:
        """Forget every snapshot of a dispensary; return how many were held."""
        return len(self._records.pop(dispensary_id, []))

    async def delete(self, dispensary_id: str, fetched_at_ms: int) -> bool:
        held = self._records.get(dispensary_id, [])
        for index, stored in enumerate(held):
            if stored.fetched_at_ms == fetched_at_ms:
                del held[index]
                if not held:
                    del self._records[dispensary_id]
                return True
        return False

    async def quarantine(self, dispensary_id: str, fetched_at_ms: int, reason: str) -> bool:
        moved = await self.delete(dispensary_id, fetched_at_ms)
        if moved:
            self.quarantined.append((dispensary_id, fetched_at_ms, reason))
        return moved

    async def change_times(self, dispensary_id: str, *, include_first: bool = False) -> list[int]:
        times: list[int] = []
        previous: bytes | None = None
        for stored in self._records.get(dispensary_id, []):
            if (previous is None and include_first) or (
                previous is not None and stored.content_hash != previous
            ):
                times.append(stored.fetched_at_ms)
            previous = stored.content_hash
        return times

    async def dispensaries(self) -> list[str]:
        return sorted(self._records)

    def held_records(self) -> int:
        """Snapshots held, all dispensaries together."""
        return sum(len(held) for held in self._records.values())

    def held_bytes(self) -> int:
        """Bytes of the snapshots held (``StoredRecord.nbytes``)."""
        return sum(stored.nbytes for held in self._records.values() for stored in held)

    async def iter_newest(self) -> AsyncIterator[StoredRecord]:
        """The newest snapshot of every dispensary, by dispensary id."""
        for dispensary_id in sorted(self._records):
            held = self._records.get(dispensary_id)
            if held:
                yield held[-1]
