"""The search index: the products of the newest snapshot of every dispensary a node holds.

A SQLite file of its own beside the store (``search.sqlite3`` in the data directory): it
holds nothing that is not derived from the store, so it is rebuilt from the store's newest
snapshots when it is missing, unreadable or of another schema version, and a node may delete
it at any time. One thread does every call (``WorkerThreads``), never the event loop.

Tables: ``product`` (one row per product: dispensary, position, source id, folded name and
brand, category, lineage, THC in percent at the middle of its range, lowest price paid,
lowest price per gram, the product's JSON document), ``option`` (one row per price option:
size, price paid, price per gram, special), ``product_text`` (FTS5 over the folded name and
brand, for words), ``snapshot`` (the record each dispensary's rows come from). Ordinary
indexes serve the dispensary, category and price conditions.

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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from whnode.record.documents import product_document
from whnode.record.model import Menu
from whnode.record.query import (
    SIZE_TOLERANCE,
    ProductQuery,
    SortKey,
    fold,
    price_cents,
    price_per_gram,
    thc_percent,
    words_of,
)
from whnode.record.signed import SignedRecord
from whnode.store.threads import WorkerThreads

__all__ = ["SCHEMA_VERSION", "SearchHit", "SearchIndex", "SearchPage"]

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2

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
CREATE TABLE IF NOT EXISTS product_doc (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS product_dispensary ON product(dispensary_id);
CREATE INDEX IF NOT EXISTS product_category ON product(category, min_paid);
CREATE INDEX IF NOT EXISTS product_ppg ON product(min_ppg);
CREATE TABLE IF NOT EXISTS option (
    product_id INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    unit TEXT NOT NULL,
    amount REAL NOT NULL,
    paid INTEGER NOT NULL,
    ppg REAL,
    special INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS option_product ON option(product_id);
CREATE INDEX IF NOT EXISTS option_ppg ON option(ppg);
CREATE INDEX IF NOT EXISTS option_size ON option(unit, amount);
CREATE VIRTUAL TABLE IF NOT EXISTS product_text
    USING fts5(text, tokenize = 'unicode61 remove_diacritics 0');
"""


@dataclass(frozen=True, slots=True)
class SearchHit:
    dispensary_id: str
    product: dict[str, Any]
    """The product's JSON document; ``price_options`` lists the matching options only."""


@dataclass(frozen=True, slots=True)
class SearchPage:
    total: int
    hits: list[SearchHit]
    snapshots: dict[str, dict[str, Any]]
    """Dispensary -> the record its hits come from (publisher, content hash, fetch time)."""


_Row = tuple[tuple[Any, ...], list[tuple[Any, ...]], str]
"""(product row, option rows, JSON document) of one product."""


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
                json.dumps(document, ensure_ascii=False, separators=(",", ":")),
            )
        )
    return rows


class SearchIndex:
    """The search index of one node (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = WorkerThreads("whnode-search", 1)
        self._connection: sqlite3.Connection | None = None
        self._indexed: dict[str, int] = {}
        self.rebuilt = False
        self.queries = 0
        self.updates = 0

    async def open(self) -> None:
        self._threads.start(asyncio.get_running_loop())
        self._indexed = await self._threads.call(self._open_blocking)

    async def aclose(self) -> None:
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
        return await self._threads.call(self._search_blocking, query, dispensaries, limit, offset)

    # ------------------------------------------------------------------ on the thread
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
                    "INSERT INTO product_doc (id, doc) VALUES (?, ?)", (product_id, document)
                )
                connection.executemany(
                    "INSERT INTO option (product_id, idx, unit, amount, paid, ppg, special) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        connection = self._connection
        assert connection is not None
        if dispensaries is not None and not dispensaries:
            return SearchPage(0, [], {})
        where: list[str] = []
        parameters: list[Any] = []

        def among(column: str, values: Sequence[str]) -> None:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            parameters.extend(values)

        if dispensaries is not None:
            among("p.dispensary_id", list(dispensaries))
        if query.categories:
            among("p.category", sorted(category.value for category in query.categories))
        if query.lineages:
            among("p.lineage", sorted(lineage.value for lineage in query.lineages))
        if query.brands:
            among("p.brand_key", sorted(query.brands))
        if query.words:  # folded words: letters and digits only, safe inside quotes
            match = " AND ".join(f'"{word}"*' for word in query.words)
            where.append("p.id IN (SELECT rowid FROM product_text WHERE product_text MATCH ?)")
            parameters.append(match)
        if query.min_thc is not None:
            where.append("p.thc IS NOT NULL AND p.thc >= ?")
            parameters.append(query.min_thc)
        if query.max_thc is not None:
            where.append("p.thc IS NOT NULL AND p.thc <= ?")
            parameters.append(query.max_thc)
        option_conditions: list[str] = []
        option_parameters: list[Any] = []
        if query.max_price_cents is not None:
            option_conditions.append("o.paid <= ?")
            option_parameters.append(query.max_price_cents)
        if query.max_price_per_gram_cents is not None:
            option_conditions.append("o.ppg IS NOT NULL AND o.ppg <= ?")
            option_parameters.append(query.max_price_per_gram_cents)
        if query.on_special is not None:
            option_conditions.append("o.special = ?")
            option_parameters.append(int(query.on_special))
        if query.size is not None:
            option_conditions.append("o.unit = ? AND abs(o.amount - ?) <= ?")
            option_parameters.extend(
                (query.size.unit.value, query.size.amount, SIZE_TOLERANCE * query.size.amount)
            )
        condition = " AND ".join(where) or "1"
        direction = "DESC" if query.descending else "ASC"
        if option_conditions:
            # the matching options drive the query: one pass over the option rows that pass
            # (their indexes), grouped by product, joined to the product conditions
            source = (
                "(SELECT o.product_id AS id, MIN(o.paid) AS paid, MIN(o.ppg) AS ppg, "
                "group_concat(o.idx) AS kept FROM option o WHERE "
                + " AND ".join(option_conditions)
                + " GROUP BY o.product_id) m JOIN product p ON p.id = m.id"
            )
            source_parameters: list[Any] = option_parameters
            kept, paid, ppg = "m.kept", "m.paid", "m.ppg"
        else:
            source, source_parameters = "product p", []
            kept, paid, ppg = "NULL", "p.min_paid", "p.min_ppg"
        if query.sort is SortKey.NAME:
            value = "NULL"
            order = f"p.name_key {direction}, p.dispensary_id {direction}, p.source_id {direction}"
        else:
            value = {SortKey.PRICE: paid, SortKey.PRICE_PER_GRAM: ppg, SortKey.THC: "p.thc"}[
                query.sort
            ]
            order = (
                f"(sort_value IS NULL), sort_value {direction}, "
                "p.name_key, p.dispensary_id, p.source_id"
            )
        rows = connection.execute(
            f"SELECT p.id, p.dispensary_id, {kept} AS kept, {value} AS sort_value, "
            f"COUNT(*) OVER () AS total FROM {source} WHERE {condition} "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            [*source_parameters, *parameters, limit, offset],
        ).fetchall()
        if rows:
            total = rows[0][4]
        else:
            total = connection.execute(
                f"SELECT COUNT(*) FROM {source} WHERE {condition}",
                [*source_parameters, *parameters],
            ).fetchone()[0]
        documents = (
            dict(
                connection.execute(
                    f"SELECT id, doc FROM product_doc WHERE id IN ({', '.join('?' * len(rows))})",
                    [row[0] for row in rows],
                )
            )
            if rows
            else {}
        )
        rows = [(row[1], documents[row[0]], row[2], row[3]) for row in rows]
        hits = []
        for dispensary_id, document_text, kept_text, _ in rows:
            document = json.loads(document_text)
            if kept_text is not None:
                indexes = {int(index) for index in kept_text.split(",")}
                document["price_options"] = [
                    option
                    for index, option in enumerate(document["price_options"])
                    if index in indexes
                ]
            hits.append(SearchHit(dispensary_id, document))
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
        return SearchPage(total, hits, snapshots)
