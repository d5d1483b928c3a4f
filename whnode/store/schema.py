"""What the durable store's SQLite file holds: the schema, its version and every statement.

``snapshots`` is small per row, so scans, counts and eviction never touch record bytes;
``blobs`` (same id) holds the record bytes. ``is_newest`` is 1 on exactly one row per
dispensary (``whnode.store.policy`` keeps it so). Functions here run on the writer thread.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final, NamedTuple

from whnode.store.exceptions import StoreCorrupt

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "Row",
    "check_or_create",
    "read_totals",
]

SCHEMA_VERSION: Final = 1
"""``PRAGMA user_version`` of the schema below; any other non-zero version is refused."""
APPLICATION_ID: Final = 0x77686E64
"""``PRAGMA application_id`` marking a whnode store ("whnd"); a foreign file is refused."""

SCHEMA: Final = (
    """
    CREATE TABLE snapshots (
        id            INTEGER PRIMARY KEY,
        dispensary_id TEXT    NOT NULL,
        fetched_at_ms INTEGER NOT NULL,
        content_hash  BLOB    NOT NULL,
        nbytes        INTEGER NOT NULL,
        is_newest     INTEGER NOT NULL,
        UNIQUE (dispensary_id, fetched_at_ms)
    )
    """,
    "CREATE INDEX snapshots_by_age ON snapshots (is_newest, fetched_at_ms)",
    "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
)
"""Run one statement at a time inside the creating transaction (executescript would COMMIT)."""

# --- reads (reader threads) -----------------------------------------------------------------
ONE_DATA: Final = """
SELECT b.data FROM snapshots AS s JOIN blobs AS b ON b.id = s.id
WHERE s.dispensary_id = ? AND s.fetched_at_ms = ?
"""
NEWEST: Final = """
SELECT s.dispensary_id, s.fetched_at_ms, s.content_hash, b.data
FROM snapshots AS s JOIN blobs AS b ON b.id = s.id
WHERE s.dispensary_id = ? ORDER BY s.fetched_at_ms DESC LIMIT 1
"""
AT: Final = """
SELECT s.dispensary_id, s.fetched_at_ms, s.content_hash, b.data
FROM snapshots AS s JOIN blobs AS b ON b.id = s.id
WHERE s.dispensary_id = ? AND s.fetched_at_ms <= ? ORDER BY s.fetched_at_ms DESC LIMIT 1
"""
HISTORY: Final = """
SELECT s.dispensary_id, s.fetched_at_ms, s.content_hash, b.data
FROM snapshots AS s JOIN blobs AS b ON b.id = s.id
WHERE s.dispensary_id = ? ORDER BY s.fetched_at_ms DESC LIMIT ?
"""
NEWEST_PAGE: Final = """
SELECT s.dispensary_id, s.fetched_at_ms, s.content_hash, b.data
FROM snapshots AS s JOIN blobs AS b ON b.id = s.id
WHERE +s.is_newest = 1 AND s.dispensary_id > ? ORDER BY s.dispensary_id LIMIT ?
"""
"""The unary ``+`` keeps the planner on the (dispensary_id, fetched_at_ms) index: a range
scan that stops after one page, instead of sorting every newest row (and its bytes)."""
HASHES: Final = """
SELECT fetched_at_ms, content_hash FROM snapshots WHERE dispensary_id = ? ORDER BY fetched_at_ms
"""
DISPENSARIES: Final = "SELECT dispensary_id FROM snapshots WHERE is_newest = 1"
INTEGRITY_CHECK: Final = "PRAGMA integrity_check"

# --- writes (writer thread) -----------------------------------------------------------------
CURRENT: Final = """
SELECT id, fetched_at_ms FROM snapshots WHERE dispensary_id = ? ORDER BY fetched_at_ms DESC LIMIT 1
"""
INSERT: Final = """
INSERT OR IGNORE INTO snapshots (dispensary_id, fetched_at_ms, content_hash, nbytes, is_newest)
VALUES (?, ?, ?, ?, ?)
"""
INSERT_BLOB: Final = "INSERT INTO blobs (id, data) VALUES (?, ?)"
DEMOTE: Final = "UPDATE snapshots SET is_newest = 0 WHERE id = ?"
PROMOTE: Final = """
UPDATE snapshots SET is_newest = 1 WHERE id =
    (SELECT id FROM snapshots WHERE dispensary_id = ? ORDER BY fetched_at_ms DESC LIMIT 1)
"""
DELETE_SNAPSHOT: Final = "DELETE FROM snapshots WHERE id = ?"
DELETE_BLOB: Final = "DELETE FROM blobs WHERE id = ?"

# Each selects the bookkeeping columns of ``Row``.
BEYOND_CAP: Final = """
SELECT id, dispensary_id, nbytes, is_newest FROM snapshots
WHERE dispensary_id = ? ORDER BY fetched_at_ms DESC LIMIT -1 OFFSET ?
"""
ALL_BEYOND_CAP: Final = """
SELECT id, dispensary_id, nbytes, is_newest FROM (
    SELECT id, dispensary_id, nbytes, is_newest,
           ROW_NUMBER() OVER (PARTITION BY dispensary_id ORDER BY fetched_at_ms DESC) AS position
    FROM snapshots)
WHERE position > ?
"""
OLDEST: Final = """
SELECT id, dispensary_id, nbytes, is_newest FROM snapshots
WHERE is_newest = ? ORDER BY fetched_at_ms, id LIMIT ?
"""
EXPIRED: Final = """
SELECT id, dispensary_id, nbytes, is_newest FROM snapshots
WHERE is_newest = ? AND fetched_at_ms < ? LIMIT ?
"""
OF_DISPENSARY: Final = """
SELECT id, dispensary_id, nbytes, is_newest FROM snapshots WHERE dispensary_id = ?
"""
ONE: Final = """
SELECT id, dispensary_id, nbytes, is_newest FROM snapshots
WHERE dispensary_id = ? AND fetched_at_ms = ?
"""


class Row(NamedTuple):
    """A snapshot's bookkeeping columns (no record bytes)."""

    id: int
    dispensary_id: str
    nbytes: int
    is_newest: int


def check_or_create(connection: sqlite3.Connection, path: Path) -> None:
    """Inside a write transaction: create the schema in an empty file, else check it is ours."""
    (application_id,) = connection.execute("PRAGMA application_id").fetchone()
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    (objects,) = connection.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()
    if application_id == 0 and version == 0 and objects == 0:
        for statement in SCHEMA:
            connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    if application_id != APPLICATION_ID:
        raise StoreCorrupt(
            f"{path} is not a whnode store (application_id {application_id:#x})",
            operation="open",
        )
    if version != SCHEMA_VERSION:
        raise StoreCorrupt(
            f"{path} has schema version {version}; this code knows {SCHEMA_VERSION}",
            operation="open",
        )


def read_totals(connection: sqlite3.Connection) -> tuple[int, int, int]:
    """(records, bytes, dispensaries) held: read once at open, then kept as running totals."""
    records, total = connection.execute(
        "SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM snapshots"
    ).fetchone()
    (dispensaries,) = connection.execute(
        "SELECT COUNT(*) FROM snapshots WHERE is_newest = 1"
    ).fetchone()
    return int(records), int(total), int(dispensaries)
