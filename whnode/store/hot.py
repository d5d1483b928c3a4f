"""The hot cache: verified records in memory, LRU over dispensaries under a byte budget.

Synchronous and free of I/O: every method runs in microseconds on the event loop thread. The
cache holds, per dispensary, the newest records it was given (``history_per_dispensary``,
by default only the newest one: a put older than it is refused, so the cache never goes
back in time).
When the byte budget is exceeded, whole dispensaries are evicted least recently used first; a
dispensary that alone exceeds the budget loses its oldest records first.

What ``at(d, T)`` may answer: the held records of a dispensary are always *all* the records
ever put for it that are newer than the last record it dropped (its "floor"); a put at or below
the floor is refused. So ``at`` answers exactly with respect to what was put here, and misses
(returns None) when T lies before the oldest held record. A caller that stores records in the
durable store without putting them here should answer ``at`` from the durable store.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from typing import Final

from whnode.store.exceptions import StoreUsageError
from whnode.store.types import HotCacheStatistics, StoredRecord

__all__ = ["HOT_HISTORY_PER_DISPENSARY", "HotCache"]

HOT_HISTORY_PER_DISPENSARY: Final = 1
"""Default number of records the hot cache keeps per dispensary: only the newest, since the
service reads only ``newest`` from it; the budget then holds as many dispensaries as it can.
Raise it to answer ``at`` from memory."""

_NO_FLOOR: Final = -1


class _Entry:
    """The records held for one dispensary, oldest first."""

    __slots__ = ("floor", "nbytes", "records", "times")

    def __init__(self) -> None:
        self.records: list[StoredRecord] = []
        self.times: list[int] = []
        self.nbytes = 0
        self.floor = _NO_FLOOR
        """fetched_at_ms of the newest record dropped so far; puts at or below are refused."""

    def insert(self, record: StoredRecord) -> None:
        index = bisect.bisect_left(self.times, record.fetched_at_ms)
        self.times.insert(index, record.fetched_at_ms)
        self.records.insert(index, record)
        self.nbytes += record.nbytes

    def drop_oldest(self) -> StoredRecord:
        record = self.records.pop(0)
        del self.times[0]
        self.nbytes -= record.nbytes
        self.floor = max(self.floor, record.fetched_at_ms)
        return record


class HotCache:
    """In-memory LRU cache of records under a byte budget (module docstring)."""

    def __init__(
        self, max_bytes: int, *, history_per_dispensary: int = HOT_HISTORY_PER_DISPENSARY
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise StoreUsageError("max_bytes must be a positive int")
        if history_per_dispensary < 1:
            raise StoreUsageError("history_per_dispensary must be >= 1")
        self._max_bytes = max_bytes
        self._history = history_per_dispensary
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._count = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    # ------------------------------------------------------------------ writes
    def put(self, record: StoredRecord) -> bool:
        """Hold ``record``; True if it is held now and was not before.

        False when (dispensary, fetched_at) is already held, when the record is older than
        what the dispensary's window keeps, or when it does not fit the budget at all.
        """
        if record.nbytes > self._max_bytes:
            return False
        dispensary = record.dispensary_id
        entry = self._entries.get(dispensary)
        if entry is None:
            entry = self._entries[dispensary] = _Entry()
        else:
            index = bisect.bisect_left(entry.times, record.fetched_at_ms)
            if index < len(entry.times) and entry.times[index] == record.fetched_at_ms:
                self._entries.move_to_end(dispensary)
                return False
            if record.fetched_at_ms <= entry.floor or (
                len(entry.times) >= self._history and index == 0
            ):
                return False
        self._entries.move_to_end(dispensary)
        entry.insert(record)
        self._bytes += record.nbytes
        self._count += 1
        while len(entry.records) > self._history:
            self._forget(entry.drop_oldest())
        self._fit(entry)
        return bool(entry.records) and entry.floor < record.fetched_at_ms

    def discard(self, dispensary_id: str) -> int:
        """Forget every record of a dispensary; return how many were held."""
        entry = self._entries.pop(dispensary_id, None)
        if entry is None:
            return 0
        self._bytes -= entry.nbytes
        self._count -= len(entry.records)
        return len(entry.records)

    def delete(self, dispensary_id: str, fetched_at_ms: int) -> bool:
        """Forget one record (e.g. one found invalid); True if it was held."""
        entry = self._entries.get(dispensary_id)
        if entry is None:
            return False
        index = bisect.bisect_left(entry.times, fetched_at_ms)
        if index == len(entry.times) or entry.times[index] != fetched_at_ms:
            return False
        record = entry.records.pop(index)
        del entry.times[index]
        entry.nbytes -= record.nbytes
        self._forget(record)
        if not entry.records:
            del self._entries[dispensary_id]
        return True

    # ------------------------------------------------------------------ reads
    def peek_newest(self, dispensary_id: str) -> StoredRecord | None:
        """The newest record held for the dispensary, or None; counts nothing and leaves
        the LRU order alone (a caller that uses the record then calls ``touch``)."""
        entry = self._entries.get(dispensary_id)
        return None if entry is None else entry.records[-1]

    def touch(self, dispensary_id: str) -> None:
        """Count a hit on a held dispensary and mark it most recently used (after
        ``peek_newest`` found what the caller uses)."""
        self._entries.move_to_end(dispensary_id)
        self._hits += 1

    def newest(self, dispensary_id: str) -> StoredRecord | None:
        """The newest record held for the dispensary, or None (a miss)."""
        entry = self._entries.get(dispensary_id)
        if entry is None:
            self._misses += 1
            return None
        self._entries.move_to_end(dispensary_id)
        self._hits += 1
        return entry.records[-1]

    def at(self, dispensary_id: str, t_ms: int) -> StoredRecord | None:
        """The held record current at ``t_ms`` (newest with fetched_at <= t_ms), or None.

        None also when ``t_ms`` lies before the oldest held record: an older snapshot may
        exist elsewhere.
        """
        entry = self._entries.get(dispensary_id)
        index = 0 if entry is None else bisect.bisect_right(entry.times, t_ms)
        if entry is None or index == 0:
            self._misses += 1
            return None
        self._entries.move_to_end(dispensary_id)
        self._hits += 1
        return entry.records[index - 1]

    def history(self, dispensary_id: str, limit: int) -> list[StoredRecord]:
        """Up to ``limit`` held records of the dispensary, newest first (no hit counted)."""
        entry = self._entries.get(dispensary_id)
        if entry is None or limit <= 0:
            return []
        return entry.records[::-1][:limit]

    def dispensaries(self) -> list[str]:
        """Dispensaries with a record held, least recently used first."""
        return list(self._entries)

    def __contains__(self, dispensary_id: object) -> bool:
        return dispensary_id in self._entries

    def statistics(self) -> HotCacheStatistics:
        """A frozen snapshot of the counters."""
        return HotCacheStatistics(
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            bytes=self._bytes,
            entries=self._count,
            dispensaries=len(self._entries),
            max_bytes=self._max_bytes,
        )

    # ------------------------------------------------------------------ internals
    def _forget(self, record: StoredRecord) -> None:
        self._bytes -= record.nbytes
        self._count -= 1

    def _fit(self, newest_entry: _Entry) -> None:
        """Evict until within budget: LRU dispensaries first, then the newest entry's oldest."""
        while self._bytes > self._max_bytes:
            dispensary, entry = next(iter(self._entries.items()))
            if entry is newest_entry:
                self._forget(entry.drop_oldest())
                self._evictions += 1
                if not entry.records:
                    del self._entries[dispensary]
                continue
            del self._entries[dispensary]
            self._bytes -= entry.nbytes
            self._count -= len(entry.records)
            self._evictions += len(entry.records)
