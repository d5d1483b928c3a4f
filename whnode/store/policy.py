"""Every rule about what the durable store keeps, in one place, as write transactions.

This module owns: the duplicate rule (the first record of a (dispensary, fetched_at) stays),
the per-dispensary history cap, the byte quota's eviction order, expiry, and the
``is_newest`` invariant (exactly one newest row per dispensary). docs/store.md explains why.

Each function runs inside one ``BEGIN IMMEDIATE`` transaction on the writer thread
(``whnode.store.durable`` opens and ends it) and records what it changed in a ``Delta``. The
caller commits and then applies the delta to its running totals, or rolls back when the
function sets ``delta.rollback``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from whnode.store import schema
from whnode.store.schema import Row
from whnode.store.types import StoredRecord

__all__ = [
    "EVICTION_BATCH",
    "EXPIRE_BATCH",
    "Delta",
    "Limits",
    "delete_one",
    "discard",
    "enforce_caps",
    "expire_batch",
    "put",
]

EVICTION_BATCH: Final = 64
"""Candidates read per query when the quota evicts."""
EXPIRE_BATCH: Final = 512
"""Snapshots deleted per transaction by expiry (other writes run between batches)."""


@dataclass(slots=True)
class Delta:
    """What one transaction changed; applied to the running totals only once committed."""

    bytes: int = 0
    records: int = 0
    dispensaries: int = 0
    puts: int = 0
    refused: int = 0
    trimmed: int = 0
    evictions: int = 0
    expired: int = 0
    deleted: int = 0
    rollback: bool = False
    """Set when the transaction must be rolled back (its ``refused`` still counts)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The caps in force and the byte total before the transaction."""

    history_per_dispensary: int
    max_bytes: int
    held_bytes: int


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    return [Row(*row) for row in cursor]


def _refuse(delta: Delta) -> bool:
    delta.refused += 1
    delta.rollback = True
    return False


def put(connection: sqlite3.Connection, delta: Delta, record: StoredRecord, limits: Limits) -> bool:
    """Insert ``record``, trim its dispensary's history, evict for the quota.

    Returns False (and asks for a rollback) when the key is already held, when the record is
    older than the full history window, or when the quota would evict it at once.
    """
    if record.nbytes > limits.max_bytes:
        return _refuse(delta)
    dispensary = record.dispensary_id
    current = connection.execute(schema.CURRENT, (dispensary,)).fetchone()
    is_newest = current is None or record.fetched_at_ms > current[1]
    cursor = connection.execute(
        schema.INSERT,
        (dispensary, record.fetched_at_ms, record.content_hash, record.nbytes, int(is_newest)),
    )
    if cursor.rowcount != 1:
        return _refuse(delta)
    new_id = cursor.lastrowid
    connection.execute(schema.INSERT_BLOB, (new_id, record.data))
    if current is None:
        delta.dispensaries += 1
    elif is_newest:
        connection.execute(schema.DEMOTE, (current[0],))
    delta.bytes += record.nbytes
    delta.records += 1
    beyond = _rows(
        connection.execute(schema.BEYOND_CAP, (dispensary, limits.history_per_dispensary))
    )
    if any(row.id == new_id for row in beyond):
        return _refuse(delta)
    delta.trimmed += _delete_rows(connection, delta, beyond)
    if not _evict(connection, delta, limits, protect=new_id):
        return _refuse(delta)
    delta.puts += 1
    return True


def enforce_caps(connection: sqlite3.Connection, delta: Delta, limits: Limits) -> None:
    """At open: apply a history cap or quota smaller than the file was written with."""
    beyond = _rows(connection.execute(schema.ALL_BEYOND_CAP, (limits.history_per_dispensary,)))
    delta.trimmed += _delete_rows(connection, delta, beyond)
    _evict(connection, delta, limits, protect=None)


def expire_batch(connection: sqlite3.Connection, delta: Delta, older_than_ms: int) -> int:
    """Delete up to EXPIRE_BATCH snapshots fetched before ``older_than_ms``; return how many."""
    rows = _rows(connection.execute(schema.EXPIRED, (0, older_than_ms, EXPIRE_BATCH)))
    if len(rows) < EXPIRE_BATCH:
        rows += _rows(
            connection.execute(schema.EXPIRED, (1, older_than_ms, EXPIRE_BATCH - len(rows)))
        )
    removed = _delete_rows(connection, delta, rows)
    delta.expired += removed
    return removed


def discard(connection: sqlite3.Connection, delta: Delta, dispensary_id: str) -> int:
    """Delete every snapshot of a dispensary; return how many."""
    rows = _rows(connection.execute(schema.OF_DISPENSARY, (dispensary_id,)))
    removed = _delete_rows(connection, delta, rows)
    delta.deleted += removed
    return removed


def delete_one(
    connection: sqlite3.Connection, delta: Delta, dispensary_id: str, fetched_at_ms: int
) -> bool:
    """Delete one snapshot; True if it existed."""
    rows = _rows(connection.execute(schema.ONE, (dispensary_id, fetched_at_ms)))
    removed = _delete_rows(connection, delta, rows)
    delta.deleted += removed
    return removed > 0


def _evict(
    connection: sqlite3.Connection, delta: Delta, limits: Limits, *, protect: int | None
) -> bool:
    """Delete oldest history first, then the oldest newest-only snapshots, to fit the quota.

    False when the quota would evict ``protect`` itself (the caller refuses the put).
    """
    over = limits.held_bytes + delta.bytes - limits.max_bytes
    while over > 0:
        rows = _rows(connection.execute(schema.OLDEST, (0, EVICTION_BATCH)))
        if not rows:
            rows = _rows(connection.execute(schema.OLDEST, (1, EVICTION_BATCH)))
        if not rows:
            return True
        chosen: list[Row] = []
        for row in rows:
            if row.id == protect:
                return False
            chosen.append(row)
            over -= row.nbytes
            if over <= 0:
                break
        delta.evictions += _delete_rows(connection, delta, chosen)
    return True


def _delete_rows(connection: sqlite3.Connection, delta: Delta, rows: Sequence[Row]) -> int:
    """Delete snapshots and their bytes; promote the next newest where a newest went."""
    if not rows:
        return 0
    ids = [(row.id,) for row in rows]
    connection.executemany(schema.DELETE_SNAPSHOT, ids)
    connection.executemany(schema.DELETE_BLOB, ids)
    delta.bytes -= sum(row.nbytes for row in rows)
    delta.records -= len(rows)
    for dispensary in {row.dispensary_id for row in rows if row.is_newest}:
        if connection.execute(schema.PROMOTE, (dispensary,)).rowcount == 0:
            delta.dispensaries -= 1
    return len(rows)
