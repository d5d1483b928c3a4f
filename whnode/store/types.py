"""Values shared by the hot cache and the durable store.

The store never decodes record bytes: a ``StoredRecord`` carries the few fields the store
indexes on (dispensary, fetch time, content hash) beside the opaque encoded record. The
service validates records on the way in and on the way out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from whnode.limits import MAX_DISPENSARY_ID_CHARS, MAX_RECORD_BYTES
from whnode.store.exceptions import InvalidStoredRecord

__all__ = [
    "CONTENT_HASH_BYTES",
    "HotCacheStatistics",
    "StoreStatistics",
    "StoredRecord",
    "Synchronous",
]

CONTENT_HASH_BYTES: Final = 32
"""Length of a content hash (SHA-256)."""
_MAX_TIME_MS: Final = 2**63 - 1
"""Largest fetch time a record may carry (SQLite INTEGER range)."""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One snapshot as the store holds it: index fields plus the opaque encoded record."""

    dispensary_id: str
    """The dispensary the snapshot belongs to."""
    fetched_at_ms: int
    """When the snapshot was fetched upstream (ms since the epoch); unique per dispensary."""
    content_hash: bytes
    """SHA-256 of the menu content without fetch time and statistics (equal when unchanged)."""
    data: bytes = field(repr=False)
    """The full encoded record (COSE_Sign1 bytes), never decoded by the store."""
    decoded: object = field(default=None, repr=False, compare=False)
    """The caller's decoded form of ``data`` (the service keeps its verified record here),
    so that memory hits need not decode again. Not persisted; shares ``data``'s bytes."""

    def __post_init__(self) -> None:
        if not isinstance(self.dispensary_id, str) or not self.dispensary_id:
            raise InvalidStoredRecord("dispensary_id must be a non-empty str")
        if len(self.dispensary_id) > MAX_DISPENSARY_ID_CHARS:
            raise InvalidStoredRecord(
                f"dispensary_id longer than {MAX_DISPENSARY_ID_CHARS} characters"
            )
        if (
            not isinstance(self.fetched_at_ms, int)
            or isinstance(self.fetched_at_ms, bool)
            or not 0 <= self.fetched_at_ms <= _MAX_TIME_MS
        ):
            raise InvalidStoredRecord("fetched_at_ms must be an int in [0, 2**63)")
        if not isinstance(self.content_hash, bytes) or len(self.content_hash) != CONTENT_HASH_BYTES:
            raise InvalidStoredRecord(f"content_hash must be {CONTENT_HASH_BYTES} bytes")
        if not isinstance(self.data, bytes) or not self.data:
            raise InvalidStoredRecord("data must be non-empty bytes")
        if len(self.data) > MAX_RECORD_BYTES:
            raise InvalidStoredRecord(f"data larger than {MAX_RECORD_BYTES} bytes")

    @property
    def nbytes(self) -> int:
        """Size of the encoded record: what byte budgets and quotas count."""
        return len(self.data)


class Synchronous(enum.StrEnum):
    """SQLite ``PRAGMA synchronous`` levels the durable store supports (docs/store.md)."""

    NORMAL = "normal"
    """WAL fsynced at checkpoints only: a killed process loses nothing committed; a power
    loss or OS crash may roll back the last commits, never corrupt the file."""
    FULL = "full"
    """WAL fsynced at every commit: commits also survive power loss, at one fsync per put."""


@dataclass(frozen=True, slots=True)
class HotCacheStatistics:
    """A frozen snapshot of the hot cache's counters."""

    hits: int
    """Lookups (``newest``/``at``) answered from memory."""
    misses: int
    """Lookups that found nothing usable."""
    evictions: int
    """Records removed to keep within the byte budget (not those superseded by history)."""
    bytes: int
    """Sum of ``nbytes`` of the records held."""
    entries: int
    """Records held."""
    dispensaries: int
    """Dispensaries with at least one record held."""
    max_bytes: int
    """The byte budget."""


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """A frozen snapshot of the durable store's counters (no I/O to take it)."""

    bytes: int
    """Sum of ``nbytes`` of the snapshots stored (kept as a running total)."""
    records: int
    """Snapshots stored."""
    dispensaries: int
    """Dispensaries with at least one snapshot."""
    max_bytes: int
    """The byte quota."""
    history_per_dispensary: int
    """Snapshots kept per dispensary."""
    puts: int
    """Snapshots added since open."""
    refused: int
    """Puts since open that added nothing: a duplicate (dispensary, fetched_at), a record
    older than the history window, or one the quota would evict at once."""
    reads: int
    """Read operations completed since open."""
    trimmed: int
    """Snapshots dropped since open by the per-dispensary history cap."""
    evictions: int
    """Snapshots dropped since open by the byte quota."""
    expired: int
    """Snapshots dropped since open by ``expire``."""
    deleted: int
    """Snapshots dropped since open by ``discard`` and ``delete``."""
    checkpoints: int
    """Background WAL checkpoints completed since open."""
    errors: int
    """Operations that raised StoreError (and failed background checkpoints) since open."""
    quarantined: int = 0
    """Snapshots moved aside since open: unreadable rows, or records refused on the way out
    (written to the quarantine directory beside the file, then deleted)."""
