"""The search index (whnode.store.search) on a real SQLite file: the same answers as
``whnode.record.query.select`` over each menu, merged, on generated menus and queries; kept
in step with newer snapshots only; rebuilt when deleted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whnode.record.documents import product_document
from whnode.record.keys import SigningKey
from whnode.record.model import Category, Lineage, Menu, Quantity, QuantityUnit
from whnode.record.query import (
    ProductMatch,
    ProductQuery,
    SortKey,
    fold,
    price_cents,
    price_per_gram,
    select,
    thc_percent,
)
from whnode.record.signed import sign_menu
from whnode.store.search import SearchIndex
from whnode.testing.factories import evolve_menu, make_menu

KEY = SigningKey.generate()
MENUS = [
    make_menu(f"weedmaps:search-{n}", 60, seed=100 + n, fetched_at_ms=10**12) for n in range(5)
]


def reference(query: ProductQuery, menus: list[Menu]) -> list[tuple[str, str, list[int]]]:
    """(dispensary, source id, kept option indexes) of every match, in the search order."""
    found: list[tuple[Menu, ProductMatch]] = [
        (menu, match) for menu in menus for match in select(menu, query)
    ]

    def value(match: ProductMatch) -> float | None:
        if query.sort is SortKey.PRICE:
            return min(price_cents(o) for o in match.options)
        if query.sort is SortKey.PRICE_PER_GRAM:
            values = [
                v
                for o in match.options
                if (v := price_per_gram(price_cents(o), o.quantity)) is not None
            ]
            return min(values) if values else None
        if query.sort is SortKey.THC:
            return thc_percent(match.product)
        return None

    def names(item: tuple[Menu, ProductMatch]) -> tuple[str, str, str]:
        return (fold(item[1].product.name), item[0].dispensary_id, item[1].product.source_id)

    if query.sort is SortKey.NAME:
        found.sort(key=names, reverse=query.descending)
    else:
        present = [item for item in found if value(item[1]) is not None]
        missing = sorted((item for item in found if value(item[1]) is None), key=names)
        present.sort(key=names)
        present.sort(key=lambda item: value(item[1]), reverse=query.descending)  # type: ignore[arg-type,return-value]
        found = present + missing
    return [
        (
            menu.dispensary_id,
            match.product.source_id,
            [match.product.price_options.index(option) for option in match.options],
        )
        for menu, match in found
    ]


@pytest.fixture(scope="module")
def index_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("search") / "search.sqlite3"


CAP = 25
"""Totals are counted up to this in the property test (the node's cap is 1,000), so that
both exact and capped totals are met on small menus."""


async def _filled(path: Path, total_cap: int = CAP) -> SearchIndex:
    index = SearchIndex(path, total_cap=total_cap)
    await index.open()
    for menu in MENUS:
        await index.update(sign_menu(menu, KEY), menu)
    return index


queries = st.builds(
    ProductQuery,
    categories=st.frozensets(st.sampled_from(list(Category)), max_size=2),
    lineages=st.frozensets(st.sampled_from(list(Lineage)), max_size=2),
    words=st.lists(st.sampled_from(["og", "kush", "bl", "gummies", "1", "haze"]), max_size=2).map(
        tuple
    ),
    min_thc=st.none() | st.floats(0, 30),
    max_thc=st.none() | st.floats(10, 100),
    max_price_cents=st.none() | st.integers(800, 8_000),
    max_price_per_gram_cents=st.none() | st.floats(300, 2_500),
    on_special=st.none() | st.booleans(),
    size=st.none()
    | st.sampled_from([Quantity(3.5, QuantityUnit.GRAMS), Quantity(1.0, QuantityUnit.UNITS)]),
    sort=st.sampled_from(list(SortKey)),
    descending=st.booleans(),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=queries, limit=st.integers(1, 40), offset=st.integers(0, 30))
async def test_search_matches_select_over_every_menu(
    index_path: Path, query: ProductQuery, limit: int, offset: int
) -> None:
    index = await _filled(index_path)
    try:
        page = await index.search(query, dispensaries=None, limit=limit, offset=offset)
    finally:
        await index.aclose()
    expected = reference(query, MENUS)
    if page.total_exact:
        assert page.total == len(expected)
    else:  # counted up to the cap: says so, never more than there are
        assert page.total == CAP < len(expected)
    assert page.total_exact or len(expected) > CAP
    assert page.more == (offset + limit < len(expected))
    got = []
    for hit in page.hits:
        menu = next(m for m in MENUS if m.dispensary_id == hit.dispensary_id)
        product = next(p for p in menu.products if p.source_id == hit.product["source_id"])
        documents = product_document(product)["price_options"]
        got.append(
            (
                hit.dispensary_id,
                hit.product["source_id"],
                [documents.index(option) for option in hit.product["price_options"]],
            )
        )
    assert got == expected[offset : offset + limit]
    for hit in page.hits:
        assert page.snapshots[hit.dispensary_id]["fetched_at_ms"] == 10**12


async def test_only_newer_snapshots_replace_a_dispensary_and_the_index_rebuilds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "search.sqlite3"
    index = await _filled(path)
    menu = MENUS[0]
    newer = evolve_menu(menu, 3, menu.fetched_at_ms + 1000, change=1.0)
    assert await index.update(sign_menu(newer, KEY), newer)
    assert not await index.update(sign_menu(menu, KEY), menu)  # older: ignored
    assert index.indexed_at(menu.dispensary_id) == newer.fetched_at_ms
    page = await index.search(
        ProductQuery(), dispensaries=[menu.dispensary_id], limit=500, offset=0
    )
    assert page.total == len(newer.products)
    assert [hit.product for hit in page.hits] == [
        product_document(match.product) for match in select(newer, ProductQuery())
    ]
    assert (await index.search(ProductQuery(), dispensaries=[], limit=5, offset=0)).total == 0
    await index.aclose()
    # a reopened index remembers what it holds; a deleted one starts empty and says so
    again = SearchIndex(path)
    await again.open()
    assert again.indexed_at(menu.dispensary_id) == newer.fetched_at_ms
    assert not again.rebuilt
    await again.aclose()
    path.unlink()
    fresh = SearchIndex(path)
    await fresh.open()
    assert fresh.rebuilt
    assert len(fresh) == 0
    await fresh.aclose()
    # an unreadable file is replaced, not fatal
    path.write_bytes(b"not a database" * 100)
    broken = SearchIndex(path)
    await broken.open()
    assert len(broken) == 0
    await broken.aclose()


async def _records(menus: list[Menu]) -> AsyncIterator[Any]:
    for menu in menus:
        yield sign_menu(menu, KEY), menu


async def test_concurrent_searches_run_beside_an_update(tmp_path: Path) -> None:
    """Searches on several reader threads at once, while the writer replaces a menu: each
    answer is the one a lone search gives (before or after the update, never a mixture)."""
    index = await _filled(tmp_path / "search.sqlite3", total_cap=1000)
    queries = [
        ProductQuery(sort=SortKey.PRICE, max_price_cents=4_000),
        ProductQuery(sort=SortKey.PRICE_PER_GRAM, categories=frozenset({Category.FLOWER})),
        ProductQuery(words=("og",)),
        ProductQuery(sort=SortKey.THC, descending=True, on_special=True),
    ]
    versions = [MENUS[1]]
    for step in range(1, 5):
        versions.append(evolve_menu(versions[-1], step, MENUS[1].fetched_at_ms + step, change=1.0))
    states = [
        [
            [(d, s) for d, s, _ in reference(query, [MENUS[0], version, *MENUS[2:]])]
            for version in versions
        ]
        for query in queries
    ]
    updating = True

    async def searching(kind: int) -> int:
        count = 0
        while updating or count < 3:
            page = await index.search(queries[kind], dispensaries=None, limit=500, offset=0)
            got = [(hit.dispensary_id, hit.product["source_id"]) for hit in page.hits]
            assert got in states[kind]
            count += 1
        return count

    searches = [asyncio.ensure_future(searching(number % 4)) for number in range(8)]
    for version in versions[1:]:
        assert await index.update(sign_menu(version, KEY), version)
    updating = False
    assert sum(await asyncio.gather(*searches)) >= 24
    await index.aclose()


async def test_rebuild_indexes_each_newest_snapshot(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "search.sqlite3")
    await index.open()
    assert await index.rebuild(_records(MENUS)) == len(MENUS)
    assert await index.rebuild(_records(MENUS)) == 0
    assert len(index) == len(MENUS)
    await index.aclose()


def test_the_store_does_not_import_the_api() -> None:
    """Layering: the index builds product documents from whnode.record, not whnode.api."""
    import subprocess
    import sys

    code = (
        "import sys, whnode.store.search; "
        "print(sorted(m for m in sys.modules if m.startswith('whnode.api') or m == 'aiohttp'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


async def test_documents_are_kept_as_text_and_read_back_whole_or_narrowed(tmp_path: Path) -> None:
    """Product JSON is stored in parts and put together without decoding: names holding
    quotes, control characters, the separator itself and accents come back unchanged."""
    import dataclasses
    import json

    menu = make_menu("weedmaps:search-odd", 4, seed=9, fetched_at_ms=10**12)
    odd = 'Crème "OG" \x1e Kush \\ "price_options":[] \u2603'
    products = (dataclasses.replace(menu.products[0], name=odd), *menu.products[1:])
    menu = dataclasses.replace(menu, products=products)
    index = SearchIndex(tmp_path / "search.sqlite3")
    await index.open()
    await index.update(sign_menu(menu, KEY), menu)
    page = await index.search(ProductQuery(words=("creme",)), dispensaries=None, limit=5, offset=0)
    assert [hit.product for hit in page.hits] == [product_document(products[0])]
    assert json.loads(page.hits[0].document) == product_document(products[0])
    narrowed = ProductQuery(words=("creme",), max_price_cents=10**9, on_special=False)
    page = await index.search(narrowed, dispensaries=None, limit=5, offset=0)
    expected = product_document(products[0])
    expected["price_options"] = [
        option for option in expected["price_options"] if option["special_price_cents"] is None
    ]
    assert [hit.product for hit in page.hits] == ([expected] if expected["price_options"] else [])
    await index.aclose()
