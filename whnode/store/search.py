"""The search index: the products of the newest snapshot of every dispensary a node holds.

A SQLite file of its own beside the store (``search.sqlite3`` in the data directory): it
holds nothing that is not derived from the store, so it is rebuilt from the store's newest
snapshots when it is missing, unreadable or of another schema version, and a node may delete
it at any time. Writes go through one connection on one thread (``WorkerThreads``); queries
run on ``READERS`` threads, each with a read-only connection of its own (WAL: readers never
wait for the writer nor for each other), so concurrent searches do not queue behind one
another. Never on the event loop.

Tables: ``product`` (one row per product: dispensary, position, source id, folded name and
brand, category, lineage, THC in percent at the middle of its range, lowest price paid,
lowest price per gram), ``product_doc`` (the product's JSON document as text, in three parts:
what precedes its ``price_options`` array, the options' JSON joined by ``OPTION_SEPARATOR``,
and what follows: an answer is put together from them without decoding any JSON),
``option`` (one row per price option: size, price paid, price per gram, special, and its
product's category), ``product_text`` (FTS5 over the folded
name and brand, for words), ``snapshot`` (the record each dispensary's rows come from).
Indexes on every sort key and filter let a query read only the top of its order
(``whnode.store.search_query`` says how a query is answered).

Queries follow ``whnode.record.query`` exactly (the same ``ProductQuery``; the tests compare
the two on generated menus): words are prefixes of the folded words of the name or brand
(FTS5 prefix queries on pre-folded text), option filters and the option-dependent sort keys
look at the matching options only, and ties go by folded name, dispensary and source id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from whnode.record.documents import product_document
from whnode.record.model import Menu
from whnode.record.query import (
    ProductQuery,
    fold,
    price_cents,
    price_per_gram,
    thc_percent,
    words_of,
)
from whnode.record.signed import SignedRecord
from whnode.store.search_query import TOTAL_CAP, find
from whnode.store.threads import WorkerThreads

__all__ = ["SCHEMA_VERSION", "SearchHit", "SearchIndex", "SearchPage"]

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 3
READERS: Final = 4
"""Threads (each with a read-only connection) that answer searches at once."""
READER_CACHE_KIB: Final = 16 * 1024
READER_MMAP_BYTES: Final = 512 * 1024 * 1024
"""Readers map the file: the pages they read are shared through the OS page cache."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS snapshot (
    dispensary_id TEXT PRIMARY KEY,
    fetched_at_ms INTEGER NOT NULL,
    content_hash BLOB NOT NULL,
    publisher BLOB NOT NULL,
    size_bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS product (
    id INTEGER PRIMARY KEY,
    dispensary_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    source_id TEXT NOT NULL,
    name_key TEXT NOT NULL,
    brand_key TEXT,
    category TEXT NOT NULL,
    lineage TEXT NOT NULL,
    thc REAL,
    min_paid INTEGER NOT NULL,
    min_ppg REAL
);
CREATE TABLE IF NOT EXISTS product_doc (
    id INTEGER PRIMARY KEY,
    head TEXT NOT NULL,
    options TEXT NOT NULL,
    tail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS product_dispensary ON product(dispensary_id);
CREATE INDEX IF NOT EXISTS product_name ON product(name_key, dispensary_id, source_id);
CREATE INDEX IF NOT EXISTS product_category
    ON product(category, name_key, dispensary_id, source_id);
CREATE INDEX IF NOT EXISTS product_lineage ON product(lineage, name_key, dispensary_id, source_id);
CREATE INDEX IF NOT EXISTS product_brand ON product(brand_key);
CREATE INDEX IF NOT EXISTS product_thc ON product(thc);
CREATE TABLE IF NOT EXISTS option (
    product_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    unit TEXT NOT NULL,
    amount REAL NOT NULL,
    paid INTEGER NOT NULL,
    ppg REAL,
    special INTEGER NOT NULL,
    category TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS option_product ON option(product_id);
CREATE INDEX IF NOT EXISTS option_paid ON option(paid, product_id);
CREATE INDEX IF NOT EXISTS option_ppg ON option(ppg, product_id);
CREATE INDEX IF NOT EXISTS option_category_paid ON option(category, paid, product_id);
CREATE INDEX IF NOT EXISTS option_category_ppg ON option(category, ppg, product_id);
CREATE INDEX IF NOT EXISTS option_size ON option(unit, amount, special, paid, product_id);
CREATE INDEX IF NOT EXISTS option_special_size
    ON option(special, unit, amount, paid, product_id);
CREATE VIRTUAL TABLE IF NOT EXISTS product_text
    USING fts5(text, tokenize = 'unicode61 remove_diacritics 0');
"""


@dataclass(frozen=True, slots=True)
class SearchHit:
    dispensary_id: str
    document: str
    """The product's JSON document (compact JSON text, as the API answers it);
    ``price_options`` lists the matching options only."""

    @property
    def product(self) -> dict[str, Any]:
        """The product's JSON document, decoded."""
        result: dict[str, Any] = json.loads(self.document)
        return result


@dataclass(frozen=True, slots=True)
class SearchPage:
    total: int
    hits: list[SearchHit]
    snapshots: dict[str, dict[str, Any]]
    """Dispensary -> the record its hits come from (publisher, content hash, fetch time)."""
    total_exact: bool = True
    """False: more than ``total`` products match (totals are counted up to a cap)."""
    more: bool = False
    """A page follows this one."""


_Row = tuple[tuple[Any, ...], list[tuple[Any, ...]], tuple[str, str, str]]
"""(product row, option rows, JSON document in three parts) of one product."""

OPTION_SEPARATOR: Final = "\x1e"
"""Joins the JSON of a product's options in ``product_doc``: JSON text never holds it raw
(control characters in strings are escaped)."""
_OPTIONS_KEY: Final = '"price_options":'


def _dumps(document: object) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _document_parts(document: dict[str, Any]) -> tuple[str, str, str]:
    """(text before the options array, the options' JSON joined, text after the array)."""
    text = _dumps({**document, "price_options": []})
    # a quote inside a string is escaped, so only the key itself reads '"price_options":[]'
    head, tail = text.split(_OPTIONS_KEY + "[]", 1)
    options = OPTION_SEPARATOR.join(_dumps(option) for option in document["price_options"])
    return head + _OPTIONS_KEY, options, tail


def _document(parts: tuple[str, str, str], kept: list[int] | None) -> str:
    head, options, tail = parts
    if kept is None:
        return f"{head}[{options.replace(OPTION_SEPARATOR, ',')}]{tail}"
    fragments = options.split(OPTION_SEPARATOR)
    return f"{head}[{','.join(fragments[index] for index in kept)}]{tail}"


def _rows(menu: Menu, documents: Sequence[dict[str, Any]]) -> list[_Row]:
    rows = []
    for position, (product, document) in enumerate(zip(menu.products, documents, strict=True)):
        options = []
        for index, option in enumerate(product.price_options):
            paid = price_cents(option)
            options.append(
                (
                    index,
                    option.quantity.unit.value,
                    option.quantity.amount,
                    paid,
                    price_per_gram(paid, option.quantity),
                    int(option.special_price_cents is not None),
                    product.category.value,
                )
            )
        per_gram = [row[4] for row in options if row[4] is not None]
        rows.append(
            (
                (
                    menu.dispensary_id,
                    position,
                    product.source_id,
                    fold(product.name),
                    None if product.brand is None else fold(product.brand),
                    product.category.value,
                    product.lineage.value,
                    thc_percent(product),
                    min(row[3] for row in options),
                    min(per_gram) if per_gram else None,
                ),
                options,
                _document_parts(document),
            )
        )
    return rows


class SearchIndex:
    """The search index of one node (see the module docstring)."""

    def __init__(self, path: Path, *, readers: int = READERS, total_cap: int = TOTAL_CAP) -> None:
        self.path = path
        self.total_cap = total_cap
        self._threads = WorkerThreads("whnode-search", 1)
        self._connection: sqlite3.Connection | None = None
        self._reader_count = readers
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._indexed: dict[str, int] = {}
        self.rebuilt = False
        self.queries = 0
        self.updates = 0

    async def open(self) -> None:
        self._threads.start(asyncio.get_running_loop())
        self._indexed = await self._threads.call(self._open_blocking)
        self._pool = ThreadPoolExecutor(self._reader_count, thread_name_prefix="whnode-search-read")

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown)  # waits for the queries running
            with self._readers_lock:
                readers, self._readers = self._readers, []
            for connection in readers:
                connection.close()
        if self._connection is not None:
            await self._threads.call(self._close_blocking)
        self._threads.close()

    def __len__(self) -> int:
        return len(self._indexed)

    def fresh_since(self, since_ms: int) -> list[str]:
        """Dispensaries whose indexed snapshot was fetched at ``since_ms`` or later."""
        return [d for d, fetched_at_ms in self._indexed.items() if fetched_at_ms >= since_ms]

    def indexed_at(self, dispensary_id: str) -> int | None:
        """Fetch time of the snapshot indexed for ``dispensary_id``, if any."""
        return self._indexed.get(dispensary_id)

    async def rebuild(self, records: AsyncIterator[tuple[SignedRecord, Menu]]) -> int:
        """Index every snapshot ``records`` yields that is newer than the one indexed."""
        count = 0
        async for record, menu in records:
            if await self.update(record, menu):
                count += 1
        return count

    async def update(self, record: SignedRecord, menu: Menu) -> bool:
        """Index ``menu`` (opened from ``record``) when it is newer than what is indexed for
        its dispensary; False when it is not."""
        held = self._indexed.get(record.dispensary_id)
        if held is not None and held >= record.fetched_at_ms:
            return False
        documents = [product_document(product) for product in menu.products]
        rows = _rows(menu, documents)
        snapshot = (
            record.dispensary_id,
            record.fetched_at_ms,
            bytes(record.content_hash),
            bytes(record.publisher),
            len(record.encoded),
        )
        texts = [" ".join(words_of(f"{p.name} {p.brand or ''}")) for p in menu.products]
        done = await self._threads.call(self._update_blocking, snapshot, rows, texts)
        if done:
            self._indexed[record.dispensary_id] = record.fetched_at_ms
            self.updates += 1
        return done

    async def search(
        self,
        query: ProductQuery,
        *,
        dispensaries: Sequence[str] | None,
        limit: int,
        offset: int,
    ) -> SearchPage:
        self.queries += 1
        assert self._pool is not None, "SearchIndex.search before open"
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._search_blocking, query, dispensaries, limit, offset
        )

    # ------------------------------------------------------------------ on the threads
    def _reader(self) -> sqlite3.Connection:
        """This reader thread's read-only connection (opened on its first query)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                f"{self.path.absolute().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,  # closed by aclose, after its thread has ended
            )
            connection.execute("PRAGMA query_only = ON")
            connection.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
            connection.execute(f"PRAGMA mmap_size = {READER_MMAP_BYTES}")  # pages shared
            connection.execute("PRAGMA temp_store = MEMORY")
            with self._readers_lock:
                self._readers.append(connection)
            self._local.connection = connection
        return connection

    def _open_blocking(self) -> dict[str, int]:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            log.warning("search index %s unreadable (%s): rebuilding it", self.path, exc)
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            self.path.unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> dict[str, int]:
        fresh = not self.path.exists()
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._connection = connection
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA cache_size = -65536")  # 64 MiB: the narrow tables stay in it
        connection.execute("PRAGMA temp_store = MEMORY")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if not fresh and version != SCHEMA_VERSION:
            connection.close()
            self.path.unlink()
            return self._connect()
        connection.executescript(_SCHEMA)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self.rebuilt = fresh
        return dict(connection.execute("SELECT dispensary_id, fetched_at_ms FROM snapshot"))

    def _close_blocking(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _update_blocking(
        self,
        snapshot: tuple[Any, ...],
        rows: list[_Row],
        texts: list[str],
    ) -> bool:
        connection = self._connection
        assert connection is not None
        dispensary_id, fetched_at_ms = snapshot[0], snapshot[1]
        connection.execute("BEGIN IMMEDIATE")
        try:
            held = connection.execute(
                "SELECT fetched_at_ms FROM snapshot WHERE dispensary_id = ?", (dispensary_id,)
            ).fetchone()
            if held is not None and held[0] >= fetched_at_ms:
                connection.execute("ROLLBACK")
                return False
            old = [row[0] for row in connection.execute(
                "SELECT id FROM product WHERE dispensary_id = ?", (dispensary_id,)
            )]  # fmt: skip
            connection.executemany("DELETE FROM option WHERE product_id = ?", [(i,) for i in old])
            connection.executemany("DELETE FROM product_text WHERE rowid = ?", [(i,) for i in old])
            connection.executemany("DELETE FROM product_doc WHERE id = ?", [(i,) for i in old])
            connection.execute("DELETE FROM product WHERE dispensary_id = ?", (dispensary_id,))
            for (product, options, document), text in zip(rows, texts, strict=True):
                cursor = connection.execute(
                    "INSERT INTO product (dispensary_id, position, source_id, name_key, "
                    "brand_key, category, lineage, thc, min_paid, min_ppg) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    product,
                )
                product_id = cursor.lastrowid
                connection.execute(
                    "INSERT INTO product_doc (id, head, options, tail) VALUES (?, ?, ?, ?)",
                    (product_id, *document),
                )
                connection.executemany(
                    "INSERT INTO option (product_id, idx, unit, amount, paid, ppg, special, "
                    "category) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(product_id, *option) for option in options],
                )
                connection.execute(
                    "INSERT INTO product_text (rowid, text) VALUES (?, ?)", (product_id, text)
                )
            connection.execute("INSERT OR REPLACE INTO snapshot VALUES (?, ?, ?, ?, ?)", snapshot)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return True

    def _search_blocking(
        self,
        query: ProductQuery,
        dispensaries: Sequence[str] | None,
        limit: int,
        offset: int,
    ) -> SearchPage:
        if dispensaries is not None and not dispensaries:
            return SearchPage(0, [], {})
        connection = self._reader()
        connection.execute("BEGIN")  # one snapshot for every statement of this search
        try:
            return self._page(connection, query, dispensaries, limit, offset)
        finally:
            connection.execute("COMMIT")

    def _page(
        self,
        connection: sqlite3.Connection,
        query: ProductQuery,
        dispensaries: Sequence[str] | None,
        limit: int,
        offset: int,
    ) -> SearchPage:
        found = find(connection, query, dispensaries, limit, offset, total_cap=self.total_cap)
        ids = [row[0] for row in found.rows]
        documents = {
            row[0]: row[1:]
            for row in connection.execute(
                "SELECT id, head, options, tail FROM product_doc "
                f"WHERE id IN ({', '.join('?' * len(ids))})",
                ids,
            )
        }
        hits = [
            SearchHit(
                dispensary_id,
                _document(
                    documents[product_id],
                    None if found.kept is None else found.kept[product_id],
                ),
            )
            for product_id, dispensary_id in found.rows
        ]
        named = sorted({hit.dispensary_id for hit in hits})
        snapshots: dict[str, dict[str, Any]] = {}
        if named:
            for row in connection.execute(
                "SELECT dispensary_id, fetched_at_ms, content_hash, publisher, size_bytes "
                f"FROM snapshot WHERE dispensary_id IN ({', '.join('?' * len(named))})",
                named,
            ):
                snapshots[row[0]] = {
                    "publisher": bytes(row[3]).hex(),
                    "content_hash": bytes(row[2]).hex(),
                    "fetched_at_ms": row[1],
                    "size_bytes": row[4],
                }
        return SearchPage(found.total, hits, snapshots, found.exact, found.more)
