"""Exceptions of the store layer.

::

    UsageError
    └── StoreUsageError             the caller misused the store
        ├── InvalidStoredRecord     a StoredRecord field breaks its rules
        └── StoreClosed             an operation on a store after aclose()
    RemoteError
    └── StoreError                  the durable store (the SQLite file) failed
        ├── StoreCorrupt            not a whnode store, damaged, or an unknown schema version
        ├── StoreFull               the disk or the file system quota is full
        └── StoreUnavailable        the file could not be opened, read or written

``sqlite3`` exceptions never escape: ``whnode.store.durable`` translates each one at the edge
with ``raise ... from exc``. Every class has a ``reason`` string used as a metric label.
"""

from __future__ import annotations

from whnode.errors import RemoteError, UsageError

__all__ = [
    "InvalidStoredRecord",
    "StoreClosed",
    "StoreCorrupt",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "StoreUsageError",
]


class StoreUsageError(UsageError):
    """The caller misused the store."""

    reason = "store_usage"


class InvalidStoredRecord(StoreUsageError, ValueError):
    """A StoredRecord field breaks its rules (type, range or length)."""

    reason = "invalid_stored_record"


class StoreClosed(StoreUsageError):
    """The store was used after ``aclose()``."""

    reason = "store_closed"


class StoreError(RemoteError):
    """The durable store failed; ``operation`` names what was being done."""

    reason = "store_error"

    def __init__(self, message: str, *, operation: str) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation


class StoreCorrupt(StoreError):
    """The file is not a whnode store, is damaged, or has a schema version this code lacks."""

    reason = "store_corrupt"


class StoreFull(StoreError):
    """The disk or the file system quota is full."""

    reason = "store_full"


class StoreUnavailable(StoreError):
    """The file could not be opened, read or written (I/O error, permission, lock timeout)."""

    reason = "store_unavailable"
