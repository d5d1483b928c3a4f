"""The durable store: snapshots per dispensary in one SQLite file in WAL mode.

Threads. Every SQLite call runs off the event loop. Writes run on one dedicated thread that
owns the only write connection, so writes are serialized in submission order and never meet
"database is locked" inside the process. Reads run on a few reader threads (``readers``),
each with its own read-only connection: in WAL mode readers never block the writer nor each
other, and each read is one SQL statement, hence one consistent snapshot of the database.
A third thread runs WAL checkpoints (``PRAGMA wal_checkpoint(PASSIVE)``, on its own
connection) every CHECKPOINT_AFTER_BYTES written, so that copying the WAL into the database
and its fsync never stall a put. The threads are ``whnode.store.threads.WorkerThreads`` (an
executor that hands results back to the loop in batches).

Durability. ``put`` returns after its transaction has committed. With ``synchronous=NORMAL``
(the default) a commit is in the WAL file (in the OS page cache) before ``put`` returns: a
killed process (SIGKILL, OOM) loses nothing committed; a power loss or OS crash may roll back
the last commits but never corrupts the file. ``synchronous=FULL`` adds one fsync per commit.
A cache whose records are replicated on several owners and can be refetched does not need
FULL; docs/store.md has the reasoning and the measured cost.

Self-repair. A row that can no longer be read as a StoredRecord (a blob over
``MAX_RECORD_BYTES``, an empty or non-blob value, a damaged index field), or that the service
found unacceptable (``quarantine``), is moved aside: its bytes are written to a file in
``<store>.quarantine/`` (at most ``QUARANTINE_FILES`` files, oldest removed first), the row is
deleted in one transaction, the ``quarantined`` counter goes up and one WARNING names it. A
read that met such a row is then answered as if the row had never been there (the next
older snapshot, or None), so that the dispensary is refilled from replicas or upstream
instead of failing on every request.

Accounting. The byte total (sum of ``nbytes``), record and dispensary counts are read once at
open and then kept as running totals, updated on the writer thread after each commit, so that
``statistics()`` does no I/O and ``put`` never sums the table.

The schema and its statements are in ``whnode.store.schema``; every rule about what is kept
(history cap, quota eviction order, expiry) in ``whnode.store.policy``; docs/store.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, Self, TypeVar

from whnode.lifecycle import AsyncClosing, deprecated_alias
from whnode.store import policy, schema
from whnode.store.exceptions import (
    InvalidStoredRecord,
    StoreClosed,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreUsageError,
)
from whnode.store.threads import WorkerThreads
from whnode.store.types import StoredRecord, StoreStatistics, Synchronous

__all__ = ["DEFAULT_READERS", "DurableStore"]

_T = TypeVar("_T")
_P = ParamSpec("_P")

LOG = logging.getLogger(__name__)

DEFAULT_READERS: Final = 2
"""Reader threads (each with its own connection) by default."""
BUSY_TIMEOUT_MS: Final = 5_000
"""How long a connection waits on a lock held by another process before failing."""
CACHE_KIB: Final = 8 * 1024
"""Page cache of each connection, in KiB (metadata and indexes; blobs come from the OS)."""
JOURNAL_SIZE_LIMIT_BYTES: Final = 64 * 1024 * 1024
"""Size the WAL file is truncated back to after a checkpoint."""
CHECKPOINT_AFTER_BYTES: Final = 16 * 1024 * 1024
"""Record bytes committed between two background WAL checkpoints."""
WRITER_AUTOCHECKPOINT_PAGES: Final = 16 * 1024
"""Backstop: the writer checkpoints itself when the WAL reaches this many pages (64 MiB at
4 KiB), which bounds the WAL under a sustained burst of writes."""
NEWEST_PAGE: Final = 128
"""Records read per query by ``iter_newest``."""
QUARANTINE_FILES: Final = 64
"""Quarantined rows kept as files for inspection (the oldest file is removed first)."""
READ_REPAIRS: Final = 8
"""Bad rows a single read quarantines before it gives up (StoreCorrupt)."""

_CORRUPT_CODES: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_FULL_CODES: Final = frozenset({13})  # SQLITE_FULL


def _translate(exc: sqlite3.Error, operation: str) -> StoreError:
    """The StoreError for a sqlite3 exception (by SQLite's primary result code)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    message = str(exc) or type(exc).__name__
    if primary in _CORRUPT_CODES:
        return StoreCorrupt(message, operation=operation)
    if primary in _FULL_CODES:
        return StoreFull(message, operation=operation)
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(message, operation=operation)
    return StoreError(message, operation=operation)


def _record(row: tuple[str, int, bytes, bytes]) -> StoredRecord:
    """A row read back (InvalidStoredRecord when it breaks StoredRecord's rules)."""
    return StoredRecord(
        dispensary_id=row[0], fetched_at_ms=row[1], content_hash=row[2], data=row[3]
    )


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=64
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        if read_only:
            connection.execute("PRAGMA query_only = 1")
    except BaseException:
        connection.close()
        raise
    return connection


class DurableStore(AsyncClosing):
    """Snapshots per dispensary with history, quota, expiry; survives restart and kill -9.

    Open with ``await DurableStore.open(path, ...)``; use as an async context manager or call
    ``aclose()``. Methods raise StoreError (translated from sqlite3) and StoreClosed.
    """

    def __init__(
        self,
        path: Path,
        *,
        history_per_dispensary: int,
        max_bytes: int,
        synchronous: Synchronous,
        readers: int,
    ) -> None:
        """Prefer ``open``; this only allocates (no I/O, no threads started)."""
        if history_per_dispensary < 1:
            raise StoreUsageError("history_per_dispensary must be >= 1")
        if max_bytes < 1:
            raise StoreUsageError("max_bytes must be >= 1")
        if readers < 1:
            raise StoreUsageError("readers must be >= 1")
        self._path = path
        self._history = history_per_dispensary
        self._max_bytes = max_bytes
        self._synchronous = synchronous
        self._writer = WorkerThreads("whnode-store-write", 1)
        self._readers = WorkerThreads("whnode-store-read", readers)
        self._checkpointer = WorkerThreads("whnode-store-checkpoint", 1)
        self._checkpoint_connection: sqlite3.Connection | None = None
        self._uncheckpointed_bytes = 0
        """Record bytes committed since the last background checkpoint was queued."""
        self._checkpoints = 0
        self._write_connection: sqlite3.Connection | None = None
        self._local = threading.local()
        self._read_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        """Guards the counters below (written on the writer thread, read on the loop)."""
        self._closed = False
        self._bytes = 0
        self._records = 0
        self._dispensaries = 0
        self._puts = 0
        self._refused = 0
        self._trimmed = 0
        self._evictions = 0
        self._expired = 0
        self._deleted = 0
        self._reads = 0
        self._errors = 0
        self._quarantined = 0

    # ------------------------------------------------------------------ lifetime
    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        history_per_dispensary: int,
        max_bytes: int,
        synchronous: Synchronous = Synchronous.NORMAL,
        readers: int = DEFAULT_READERS,
    ) -> Self:
        """Open (creating if absent) the store at ``path``; enforce the caps on what it holds.

        A smaller history cap or quota than the file was written with takes effect here.
        """
        store = cls(
            Path(path),
            history_per_dispensary=history_per_dispensary,
            max_bytes=max_bytes,
            synchronous=synchronous,
            readers=readers,
        )
        loop = asyncio.get_running_loop()
        store._writer.start(loop)
        store._readers.start(loop)
        store._checkpointer.start(loop)
        try:
            await store._call_writer("open", store._open_blocking)
        except BaseException:
            store._closed = True
            try:
                await store._writer.call(store._close_blocking)
            except Exception as exc:  # keep the error that made open fail
                LOG.debug("closing %s after a failed open: %s", store._path, exc)
            finally:
                store._writer.close()
            raise
        return store

    async def aclose(self) -> None:
        """Finish queued operations, close every connection and stop the threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._writer.call(self._close_blocking)
        finally:
            self._writer.close()

    close = deprecated_alias(aclose, "close")
    """Deprecated name of :meth:`aclose`, kept for a release."""

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    # ------------------------------------------------------------------ writes
    async def put(self, record: StoredRecord) -> bool:
        """Store ``record``; True once committed, False if it added nothing.

        False when (dispensary, fetched_at) is already stored (the first one is kept), when
        the record is older than the dispensary's history window, or when the quota would
        evict it at once. Committed when this returns (see the module docstring); a put
        cancelled while running may or may not have committed.
        """
        return await self._call_writer(
            "put", lambda: self._transaction(policy.put, record, self._limits())
        )

    async def expire(self, older_than_ms: int) -> int:
        """Delete every snapshot fetched before ``older_than_ms``; return how many.

        Runs in batches of ``policy.EXPIRE_BATCH``, each its own transaction, so that puts
        run in between.
        """
        removed = 0
        while True:
            batch = await self._call_writer(
                "expire", lambda: self._transaction(policy.expire_batch, older_than_ms)
            )
            removed += batch
            if batch < policy.EXPIRE_BATCH:
                return removed

    async def discard(self, dispensary_id: str) -> int:
        """Delete every snapshot of a dispensary; return how many."""
        return await self._call_writer(
            "discard", lambda: self._transaction(policy.discard, dispensary_id)
        )

    async def delete(self, dispensary_id: str, fetched_at_ms: int) -> bool:
        """Delete one snapshot (e.g. one found invalid on the way out); True if it existed."""
        return await self._call_writer(
            "delete", lambda: self._transaction(policy.delete_one, dispensary_id, fetched_at_ms)
        )

    # ------------------------------------------------------------------ reads
    async def newest(self, dispensary_id: str) -> StoredRecord | None:
        """The newest snapshot of the dispensary, or None (bad rows are quarantined)."""
        return await self._one_readable("newest", schema.NEWEST, (dispensary_id,))

    async def at(self, dispensary_id: str, t_ms: int) -> StoredRecord | None:
        """The snapshot current at ``t_ms``: the newest with fetched_at <= t_ms, or None."""
        return await self._one_readable("at", schema.AT, (dispensary_id, t_ms))

    async def history(self, dispensary_id: str, limit: int) -> list[StoredRecord]:
        """Up to ``limit`` snapshots of the dispensary, newest first (bad rows quarantined)."""
        if limit <= 0:
            return []
        for _ in range(READ_REPAIRS):
            rows = await self._fetch_all("history", schema.HISTORY, (dispensary_id, limit))
            records, bad = await self._readable(rows)
            if not bad:
                return records
        raise StoreCorrupt(
            f"unreadable rows of {dispensary_id!r} keep appearing", operation="history"
        )

    async def _one_readable(
        self, operation: str, sql: str, parameters: Sequence[object]
    ) -> StoredRecord | None:
        for _ in range(READ_REPAIRS):
            row = await self._fetch_one(operation, sql, parameters)
            if row is None:
                return None
            records, bad = await self._readable([row])
            if not bad:
                return records[0]
        raise StoreCorrupt(f"unreadable rows keep appearing ({operation})", operation=operation)

    async def _readable(self, rows: Sequence[Any]) -> tuple[list[StoredRecord], int]:
        """The rows that read as StoredRecords; the others are quarantined (and counted)."""
        records: list[StoredRecord] = []
        bad = 0
        for row in rows:
            try:
                records.append(_record(row))
            except InvalidStoredRecord as exc:
                bad += 1
                await self._quarantine_row(row[0], row[1], f"unreadable row: {exc}")
        return records, bad

    async def quarantine(self, dispensary_id: str, fetched_at_ms: int, reason: str) -> bool:
        """Move one snapshot aside (e.g. a record that fails acceptance on the way out):
        written to the quarantine directory, deleted, counted, logged once. True if it
        existed."""
        return await self._quarantine_row(dispensary_id, fetched_at_ms, reason)

    async def _quarantine_row(
        self, dispensary_id: object, fetched_at_ms: object, reason: str
    ) -> bool:
        moved: bool = await self._call_writer(
            "quarantine",
            lambda: self._quarantine_blocking(dispensary_id, fetched_at_ms),
        )
        if moved:
            with self._lock:
                self._quarantined += 1
            LOG.warning(
                "store: snapshot %.80r at %s quarantined (%s); it will be refetched",
                dispensary_id,
                fetched_at_ms,
                reason[:200],
            )
        return moved

    @property
    def quarantine_dir(self) -> Path:
        """Where quarantined snapshots are written (beside the SQLite file)."""
        return self._path.with_name(self._path.name + ".quarantine")

    def _quarantine_blocking(self, dispensary_id: object, fetched_at_ms: object) -> bool:
        """On the writer thread: copy the row's bytes to a file, then delete the row."""
        connection = self._connection()
        row = connection.execute(schema.ONE_DATA, (dispensary_id, fetched_at_ms)).fetchone()
        if row is None:
            return False
        data = row[0]
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        elif not isinstance(data, bytes):
            data = repr(data).encode()
        name = hashlib.sha256(repr((dispensary_id, fetched_at_ms)).encode()).hexdigest()[:24]
        directory = self.quarantine_dir
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            (directory / f"{name}.bin").write_bytes(data)
            files = sorted(directory.glob("*.bin"), key=lambda path: path.stat().st_mtime)
            for old in files[:-QUARANTINE_FILES]:
                old.unlink(missing_ok=True)
        except OSError as exc:  # the row is still removed: serving matters more
            LOG.warning("store: cannot keep a quarantined snapshot in %s: %s", directory, exc)
        return bool(
            self._transaction(policy.delete_one, dispensary_id, fetched_at_ms)  # type: ignore[arg-type]
        )

    async def change_times(self, dispensary_id: str, *, include_first: bool = False) -> list[int]:
        """fetched_at_ms of the snapshots whose content_hash differs from the previous one.

        Oldest first. The oldest snapshot held has no previous one: it is included only with
        ``include_first`` (its content has been current at least since then).
        """
        rows = await self._fetch_all("change_times", schema.HASHES, (dispensary_id,))
        times: list[int] = []
        previous: bytes | None = None
        for fetched_at_ms, content_hash in rows:
            if (previous is None and include_first) or (
                previous is not None and content_hash != previous
            ):
                times.append(fetched_at_ms)
            previous = content_hash
        return times

    async def dispensaries(self) -> list[str]:
        """Every dispensary with at least one snapshot, sorted."""
        rows = await self._fetch_all("dispensaries", schema.DISPENSARIES, ())
        return sorted(row[0] for row in rows)

    async def iter_newest(self, *, page: int = NEWEST_PAGE) -> AsyncIterator[StoredRecord]:
        """The newest snapshot of every dispensary, by dispensary id, read ``page`` at a time.

        Each page is one consistent read; a dispensary put while iterating may be missed or
        its older snapshot returned, as in any scan of a live store.
        """
        after = ""
        while True:
            rows = await self._fetch_all("all_newest", schema.NEWEST_PAGE, (after, page))
            records, _ = await self._readable(rows)  # a bad row is quarantined and skipped
            for record in records:
                yield record
            if len(rows) < page:
                return
            after = rows[-1][0]

    async def all_newest(self) -> list[StoredRecord]:
        """The newest snapshot of every dispensary (for republish and hand-off)."""
        return [record async for record in self.iter_newest()]

    async def check_integrity(self) -> list[str]:
        """Run ``PRAGMA integrity_check``; return the problems found (empty when sound)."""
        rows = await self._fetch_all("integrity_check", schema.INTEGRITY_CHECK, ())
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    def statistics(self) -> StoreStatistics:
        """A frozen snapshot of the counters (no I/O)."""
        with self._lock:
            return StoreStatistics(
                bytes=self._bytes,
                records=self._records,
                dispensaries=self._dispensaries,
                max_bytes=self._max_bytes,
                history_per_dispensary=self._history,
                puts=self._puts,
                refused=self._refused,
                reads=self._reads,
                trimmed=self._trimmed,
                evictions=self._evictions,
                expired=self._expired,
                deleted=self._deleted,
                checkpoints=self._checkpoints,
                errors=self._errors,
                quarantined=self._quarantined,
            )

    # ------------------------------------------------------------------ event-loop side
    async def _call_writer(self, operation: str, function: Callable[[], _T]) -> _T:
        if self._closed and operation != "open":
            raise StoreClosed(f"{operation} on a closed store ({self._path})")
        try:
            return await self._writer.call(function)
        except sqlite3.Error as exc:
            self._count_error()
            raise _translate(exc, operation) from exc

    async def _fetch_one(self, operation: str, sql: str, parameters: Sequence[object]) -> Any:
        return await self._call_reader(operation, self._read_one, sql, parameters)

    async def _fetch_all(self, operation: str, sql: str, parameters: Sequence[object]) -> list[Any]:
        rows: list[Any] = await self._call_reader(operation, self._read_all, sql, parameters)
        return rows

    async def _call_reader(
        self,
        operation: str,
        function: Callable[[str, Sequence[object]], _T],
        sql: str,
        parameters: Sequence[object],
    ) -> _T:
        if self._closed:
            raise StoreClosed(f"{operation} on a closed store ({self._path})")
        try:
            result = await self._readers.call(function, sql, parameters)
        except sqlite3.Error as exc:
            self._count_error()
            raise _translate(exc, operation) from exc
        with self._lock:
            self._reads += 1
        return result

    def _count_error(self) -> None:
        with self._lock:
            self._errors += 1

    # ------------------------------------------------------------------ reader threads
    def _reader_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = _connect(self._path, read_only=True)
            self._local.connection = connection
            with self._lock:
                self._read_connections.append(connection)
        return connection

    def _read_one(self, sql: str, parameters: Sequence[object]) -> Any:
        return self._reader_connection().execute(sql, parameters).fetchone()

    def _read_all(self, sql: str, parameters: Sequence[object]) -> list[Any]:
        return self._reader_connection().execute(sql, parameters).fetchall()

    # ------------------------------------------------------------------ writer thread
    def _connection(self) -> sqlite3.Connection:
        assert self._write_connection is not None, "used before open"
        return self._write_connection

    def _limits(self) -> policy.Limits:
        """On the writer thread (the only one changing ``_bytes``)."""
        return policy.Limits(
            history_per_dispensary=self._history,
            max_bytes=self._max_bytes,
            held_bytes=self._bytes,
        )

    def _open_blocking(self) -> None:
        connection = self._write_connection = _connect(self._path, read_only=False)
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreUnavailable(f"journal_mode is {mode}, not wal", operation="open")
        connection.execute(f"PRAGMA synchronous = {self._synchronous.value.upper()}")
        connection.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
        connection.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}")
        connection.execute("BEGIN IMMEDIATE")
        try:
            schema.check_or_create(connection, self._path)
            records, total, dispensaries = schema.read_totals(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        with self._lock:
            self._records, self._bytes, self._dispensaries = records, total, dispensaries
        self._transaction(lambda c, d: policy.enforce_caps(c, d, self._limits()))

    def _close_blocking(self) -> None:
        """On the writer thread, after every queued write: drain readers, close connections."""
        self._readers.close()
        self._checkpointer.close()
        self._readers.join()
        self._checkpointer.join()
        if self._checkpoint_connection is not None:
            self._checkpoint_connection.close()
            self._checkpoint_connection = None
        with self._lock:
            connections = list(self._read_connections)
            self._read_connections.clear()
        for connection in connections:
            connection.close()
        if self._write_connection is not None:
            self._write_connection.close()
            self._write_connection = None

    def _transaction(
        self,
        body: Callable[Concatenate[sqlite3.Connection, policy.Delta, _P], _T],
        *arguments: _P.args,
        **keywords: _P.kwargs,
    ) -> _T:
        """Run ``body(connection, delta, ...)`` in BEGIN IMMEDIATE ... COMMIT (or ROLLBACK).

        The running totals change only once COMMIT has succeeded; a body that sets
        ``delta.rollback`` is rolled back and only its ``refused`` count is kept.
        """
        connection = self._connection()
        delta = policy.Delta()
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = body(connection, delta, *arguments, **keywords)
            connection.execute("ROLLBACK" if delta.rollback else "COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        if delta.rollback:
            with self._lock:
                self._refused += delta.refused
        else:
            self._apply(delta)
        return result

    def _apply(self, delta: policy.Delta) -> None:
        if delta.bytes > 0:
            self._uncheckpointed_bytes += delta.bytes
            if self._uncheckpointed_bytes >= CHECKPOINT_AFTER_BYTES:
                self._uncheckpointed_bytes = 0
                self._checkpointer.submit_nowait(self._checkpoint_blocking)
        with self._lock:
            self._bytes += delta.bytes
            self._records += delta.records
            self._dispensaries += delta.dispensaries
            self._puts += delta.puts
            self._refused += delta.refused
            self._trimmed += delta.trimmed
            self._evictions += delta.evictions
            self._expired += delta.expired
            self._deleted += delta.deleted

    # ------------------------------------------------------------------ checkpoint thread
    def _checkpoint_blocking(self) -> None:
        """Copy committed WAL frames into the database file (never blocks the writer)."""
        try:
            if self._checkpoint_connection is None:
                self._checkpoint_connection = _connect(self._path, read_only=False)
            self._checkpoint_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            LOG.warning("background checkpoint of %s failed: %s", self._path, exc)
            with self._lock:
                self._errors += 1
            return
        with self._lock:
            self._checkpoints += 1
