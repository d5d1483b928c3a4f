"""How the search index answers a query: SQL that stops as soon as the page is known.

A query over 80,000 products must not sort or count all of them. Three ways to find a page,
chosen by the query's shape (the answers are the same; the tests compare every way with
``whnode.record.query.select`` on generated menus):

- **Option order.** Sorted by the lowest (matching) price or price per gram, ascending: the
  option rows that pass the option filters are read in price order (``option_paid``,
  ``option_ppg``, or with one category ``option_category_paid`` / ``option_category_ppg``:
  each option row carries its product's category), joined to their products; a product's
  sort value is its first option seen, and reading stops once the page's products are all
  seen and the next price is higher (ties are then ordered by name). Products without a
  price per gram come last, by name, from a second query that runs only when a page
  reaches them.
- **Product order.** Sorted by name or THC: products are read in the order of an index on
  the sort key (``product_name``, ``product_category``, ``product_lineage``,
  ``product_thc``), each checked against the conditions (and "one option passes" when there
  are option filters), until the page is full; products without THC in percent come last,
  by name. A descending price sort without option filters reads the product's lowest price
  and price per gram columns with a bounded sort.
- **Grouped.** Anything else (a descending price sort with option filters, or words, whose
  few products are cheaper to group than to stream past): the matching options are grouped
  per product and the top of the page is taken with a bounded sort.

Totals are counted up to ``TOTAL_CAP`` products (an index range or a distinct option scan
that stops there): an answer says whether its total is exact or a lower bound. Whether a next
page exists is known exactly (each page query reads one row more than the page).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from whnode.record.query import SIZE_TOLERANCE, ProductQuery, SortKey

__all__ = ["TOTAL_CAP", "Found", "find"]

TOTAL_CAP: Final = 1000
"""Totals are exact up to this many products; beyond, an answer says "at least"."""
STREAM_MAX_ROWS: Final = 5000
"""An option-order query whose page lies deeper than this many products is grouped instead
(a deep page costs a full grouping either way)."""
_BATCH: Final = 256


@dataclass(slots=True)
class _Where:
    product: list[str] = field(default_factory=list)
    product_parameters: list[Any] = field(default_factory=list)
    option: list[str] = field(default_factory=list)
    option_parameters: list[Any] = field(default_factory=list)

    def among(self, column: str, values: Sequence[object], *, option: bool = False) -> None:
        clause = f"{column} IN ({', '.join('?' * len(values))})"
        if option:
            self.option.append(clause)
            self.option_parameters.extend(values)
        else:
            self.product.append(clause)
            self.product_parameters.extend(values)


@dataclass(frozen=True, slots=True)
class Found:
    """One page of a query: product ids in order, with their dispensaries."""

    rows: list[tuple[int, str]]
    kept: dict[int, list[int]] | None
    """Indexes of the matching options per product (None: no option filter, all match)."""
    total: int
    exact: bool
    """False: ``total`` is ``TOTAL_CAP`` and more match."""
    more: bool
    """A page follows this one."""


def _where(
    query: ProductQuery, dispensaries: Sequence[str] | None, *, option_category: bool
) -> _Where:
    where = _Where()
    if dispensaries is not None:
        where.among("p.dispensary_id", list(dispensaries))
    if query.categories:
        categories = sorted(category.value for category in query.categories)
        where.among("p.category", categories)
    if query.lineages:
        where.among("p.lineage", sorted(lineage.value for lineage in query.lineages))
    if query.brands:
        where.among("p.brand_key", sorted(query.brands))
    if query.words:  # folded words: letters and digits only, safe inside quotes
        where.product.append("p.id IN (SELECT rowid FROM product_text WHERE product_text MATCH ?)")
        where.product_parameters.append(" AND ".join(f'"{word}"*' for word in query.words))
    if query.min_thc is not None:
        where.product.append("p.thc >= ?")
        where.product_parameters.append(query.min_thc)
    if query.max_thc is not None:
        where.product.append("p.thc <= ?")
        where.product_parameters.append(query.max_thc)
    if query.max_price_cents is not None:
        where.option.append("o.paid <= ?")
        where.option_parameters.append(query.max_price_cents)
    if query.max_price_per_gram_cents is not None:
        where.option.append("o.ppg <= ?")
        where.option_parameters.append(query.max_price_per_gram_cents)
    if query.on_special is not None:
        where.option.append("o.special = ?")
        where.option_parameters.append(int(query.on_special))
    if query.size is not None:
        amount, tolerance = query.size.amount, SIZE_TOLERANCE * query.size.amount
        # the range finds the rows by index; abs() decides exactly as whnode.record.query
        where.option.append("o.unit = ? AND o.amount BETWEEN ? AND ? AND abs(o.amount - ?) <= ?")
        where.option_parameters.extend(
            (
                query.size.unit.value,
                (amount - tolerance) * 0.999,
                (amount + tolerance) * 1.001,
                amount,
                tolerance,
            )
        )
    if option_category and query.categories:  # option rows carry it: found by index
        where.among("o.category", sorted(c.value for c in query.categories), option=True)
    return where


def _and(clauses: Sequence[str]) -> str:
    return " AND ".join(clauses) or "1"


def find(
    connection: sqlite3.Connection,
    query: ProductQuery,
    dispensaries: Sequence[str] | None,
    limit: int,
    offset: int,
    *,
    total_cap: int = TOTAL_CAP,
) -> Found:
    """The page ``offset:offset+limit`` of ``query``'s matches (see the module docstring)."""
    options = query.filters_options
    price_sort = query.sort in (SortKey.PRICE, SortKey.PRICE_PER_GRAM)
    stream = (
        price_sort and not query.descending and not query.words and offset + limit < STREAM_MAX_ROWS
    )
    where = _where(query, dispensaries, option_category=options or stream)
    if stream:
        rows = _option_order(connection, query, where, limit + 1, offset)
    elif price_sort and options:
        rows = _grouped(connection, query, where, limit + 1, offset)
    else:
        rows = _product_order(connection, query, where, limit + 1, offset)
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows and offset == 0:
        total, exact = 0, True
    elif rows and not more:
        total, exact = offset + len(rows), True
    else:
        total, exact = _count(connection, where, total_cap)
    kept = _kept(connection, where, [row[0] for row in rows]) if options else None
    return Found(rows, kept, total, exact, more)


def _exists(where: _Where) -> tuple[list[str], list[Any]]:
    """The product conditions, with "one option passes" when there are option filters."""
    clauses, parameters = list(where.product), list(where.product_parameters)
    if where.option:
        clauses.append(
            f"EXISTS (SELECT 1 FROM option o WHERE o.product_id = p.id AND {_and(where.option)})"
        )
        parameters.extend(where.option_parameters)
    return clauses, parameters


def _names(direction: str = "ASC") -> str:
    return f"p.name_key {direction}, p.dispensary_id {direction}, p.source_id {direction}"


def _product_order(
    connection: sqlite3.Connection, query: ProductQuery, where: _Where, count: int, offset: int
) -> list[tuple[int, str]]:
    clauses, parameters = _exists(where)
    if query.sort is SortKey.NAME:
        return connection.execute(
            f"SELECT p.id, p.dispensary_id FROM product p WHERE {_and(clauses)} "
            f"ORDER BY {_names('DESC' if query.descending else 'ASC')} LIMIT ? OFFSET ?",
            [*parameters, count, offset],
        ).fetchall()
    column = {SortKey.PRICE: "p.min_paid", SortKey.PRICE_PER_GRAM: "p.min_ppg"}.get(
        query.sort, "p.thc"
    )
    direction = "DESC" if query.descending else "ASC"
    rows: list[tuple[int, str]] = connection.execute(
        f"SELECT p.id, p.dispensary_id FROM product p "
        f"WHERE {_and([*clauses, f'{column} IS NOT NULL'])} "
        f"ORDER BY {column} {direction}, {_names()} LIMIT ? OFFSET ?",
        [*parameters, count, offset],
    ).fetchall()
    if len(rows) == count:
        return rows
    # the products without the key follow, by name
    if rows or offset == 0:
        valued = offset + len(rows)
    else:
        valued = connection.execute(
            f"SELECT COUNT(*) FROM product p WHERE {_and([*clauses, f'{column} IS NOT NULL'])}",
            parameters,
        ).fetchone()[0]
    rows += connection.execute(
        f"SELECT p.id, p.dispensary_id FROM product p "
        f"WHERE {_and([*clauses, f'{column} IS NULL'])} ORDER BY {_names()} LIMIT ? OFFSET ?",
        [*parameters, count - len(rows), max(0, offset - valued)],
    ).fetchall()
    return rows


def _option_order(
    connection: sqlite3.Connection, query: ProductQuery, where: _Where, count: int, offset: int
) -> list[tuple[int, str]]:
    column = "o.paid" if query.sort is SortKey.PRICE else "o.ppg"
    wanted = offset + count
    cursor = connection.execute(
        "SELECT o.product_id, p.dispensary_id, "
        f"{column}, p.name_key, p.source_id FROM option o CROSS JOIN product p "
        f"ON p.id = o.product_id WHERE {_and([*where.option, f'{column} IS NOT NULL'])} "
        f"AND {_and(where.product)} ORDER BY {column}",
        [*where.option_parameters, *where.product_parameters],
    )
    seen: dict[int, tuple[float, str, str, str]] = {}
    boundary: float | None = None
    exhausted = True
    while batch := cursor.fetchmany(_BATCH):
        for product_id, dispensary_id, value, name_key, source_id in batch:
            if boundary is not None and value > boundary:
                exhausted = False
                break
            if product_id not in seen:
                seen[product_id] = (value, name_key, dispensary_id, source_id)
                if len(seen) == wanted:
                    boundary = value  # products of this same value still belong
        else:
            continue
        break
    cursor.close()
    ordered = sorted(seen.items(), key=lambda item: item[1])
    rows = [(product_id, key[2]) for product_id, key in ordered][offset:wanted]
    if not exhausted or len(rows) == count or query.sort is SortKey.PRICE:
        return rows  # (every option has a price: no product lacks the key)
    # products whose matching options have no price per gram follow, by name
    clauses, parameters = _exists(where)
    clauses.append(
        "NOT EXISTS (SELECT 1 FROM option o WHERE o.product_id = p.id AND "
        f"{_and([*where.option, 'o.ppg IS NOT NULL'])})"
    )
    parameters.extend(where.option_parameters)
    rows += connection.execute(
        f"SELECT p.id, p.dispensary_id FROM product p WHERE {_and(clauses)} "
        f"ORDER BY {_names()} LIMIT ? OFFSET ?",
        [*parameters, count - len(rows), max(0, offset - len(seen))],
    ).fetchall()
    return rows


def _grouped(
    connection: sqlite3.Connection, query: ProductQuery, where: _Where, count: int, offset: int
) -> list[tuple[int, str]]:
    column = "o.paid" if query.sort is SortKey.PRICE else "o.ppg"
    direction = "DESC" if query.descending else "ASC"
    if query.words:  # few products: each one's matching options, by its id
        source = (
            f"(SELECT p.id AS id, p.dispensary_id AS dispensary_id, p.name_key AS name_key, "
            f"p.source_id AS source_id, (SELECT MIN({column}) FROM option o WHERE "
            f"o.product_id = p.id AND {_and(where.option)}) AS value "
            f"FROM product p WHERE {_and(_exists(where)[0])})"
        )
        parameters = [*where.option_parameters, *_exists(where)[1]]
    else:
        source = (
            f"(SELECT p.id AS id, p.dispensary_id AS dispensary_id, p.name_key AS name_key, "
            f"p.source_id AS source_id, MIN({column}) AS value FROM option o CROSS JOIN "
            f"product p ON p.id = o.product_id WHERE {_and(where.option)} AND "
            f"{_and(where.product)} GROUP BY o.product_id)"
        )
        parameters = [*where.option_parameters, *where.product_parameters]
    return connection.execute(
        f"SELECT id, dispensary_id FROM {source} ORDER BY (value IS NULL), value {direction}, "
        "name_key, dispensary_id, source_id LIMIT ? OFFSET ?",
        [*parameters, count, offset],
    ).fetchall()


def _count(connection: sqlite3.Connection, where: _Where, cap: int) -> tuple[int, bool]:
    """Matching products, counted up to ``cap`` (and whether that is all of them)."""
    if where.option and not any("product_text" in clause for clause in where.product):
        inner = (
            "SELECT DISTINCT o.product_id FROM option o CROSS JOIN product p "
            f"ON p.id = o.product_id WHERE {_and(where.option)} AND {_and(where.product)}"
        )
        parameters = [*where.option_parameters, *where.product_parameters]
    else:
        clauses, parameters = _exists(where)
        inner = f"SELECT 1 FROM product p WHERE {_and(clauses)}"
    counted = connection.execute(
        f"SELECT COUNT(*) FROM ({inner} LIMIT ?)", [*parameters, cap + 1]
    ).fetchone()[0]
    return (cap, False) if counted > cap else (counted, True)


def _kept(
    connection: sqlite3.Connection, where: _Where, product_ids: list[int]
) -> dict[int, list[int]]:
    """The indexes of the options of ``product_ids`` that pass the option filters."""
    kept: dict[int, list[int]] = {product_id: [] for product_id in product_ids}
    if product_ids:
        for product_id, index in connection.execute(
            f"SELECT o.product_id, o.idx FROM option o INDEXED BY option_product "
            f"WHERE o.product_id IN "
            f"({', '.join('?' * len(product_ids))}) AND {_and(where.option)} ORDER BY o.idx",
            [*product_ids, *where.option_parameters],
        ):
            kept[product_id].append(index)
    return kept
