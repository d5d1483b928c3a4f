"""Where records live on a node: the in-memory hot cache and the durable SQLite store.

Both hold opaque encoded records (``StoredRecord``) and never decode them; the service
validates records on the way in and on the way out. docs/store.md explains the schema, the
WAL and durability choice, quota and eviction, and crash safety.
"""

from __future__ import annotations

from whnode.store.durable import DurableStore
from whnode.store.exceptions import (
    InvalidStoredRecord,
    StoreClosed,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreUsageError,
)
from whnode.store.hot import HotCache
from whnode.store.types import HotCacheStatistics, StoredRecord, StoreStatistics, Synchronous

__all__ = [
    "DurableStore",
    "HotCache",
    "HotCacheStatistics",
    "InvalidStoredRecord",
    "StoreClosed",
    "StoreCorrupt",
    "StoreError",
    "StoreFull",
    "StoreStatistics",
    "StoreUnavailable",
    "StoreUsageError",
    "StoredRecord",
    "Synchronous",
]
