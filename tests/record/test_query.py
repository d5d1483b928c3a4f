"""Product queries (whnode.record.query) against a brute-force reference on generated menus.

The reference below is written from the rules in the module docstring, independently of the
implementation: one product at a time, one option at a time, sorted with explicit keys.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from whnode.record.model import (
    Category,
    Lineage,
    Menu,
    Potency,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
)
from whnode.record.query import ProductQuery, SortKey, fold, price_per_gram, select
from whnode.testing.factories import make_menu
from whnode.upstream.statistics import compute_statistics


def _plain(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).lower()


def reference(menu: Menu, query: ProductQuery) -> list[tuple[str, tuple[PriceOption, ...]]]:
    """(source id, options kept) of every match, in the query's order."""
    kept: list[tuple[Product, tuple[PriceOption, ...]]] = []
    for product in menu.products:
        if query.categories and product.category not in query.categories:
            continue
        if query.lineages and product.lineage not in query.lineages:
            continue
        if query.brands and _plain(product.brand or "\x01") not in query.brands:
            continue
        tokens = re.split(r"[\W_]+", _plain(product.name) + " " + _plain(product.brand or ""))
        if not all(any(token.startswith(word) for token in tokens) for word in query.words):
            continue
        thc = None
        if product.thc is not None and product.thc.unit is PotencyUnit.PERCENT:
            thc = (product.thc.low + product.thc.high) / 2
        if query.min_thc is not None and (thc is None or thc < query.min_thc):
            continue
        if query.max_thc is not None and (thc is None or thc > query.max_thc):
            continue
        options = []
        for option in product.price_options:
            pay = (
                option.special_price_cents
                if option.special_price_cents is not None
                else option.price_cents
            )
            grams = option.quantity.amount if option.quantity.unit is QuantityUnit.GRAMS else None
            if query.max_price_cents is not None and pay > query.max_price_cents:
                continue
            if query.max_price_per_gram_cents is not None and (
                grams is None or pay / grams > query.max_price_per_gram_cents
            ):
                continue
            if query.on_special is True and option.special_price_cents is None:
                continue
            if query.on_special is False and option.special_price_cents is not None:
                continue
            if query.size is not None and (
                option.quantity.unit is not query.size.unit
                or abs(option.quantity.amount - query.size.amount) > 0.03 * query.size.amount
            ):
                continue
            options.append(option)
        if options:
            kept.append((product, tuple(options)))

    def value(item: tuple[Product, tuple[PriceOption, ...]]) -> float | None:
        product, options = item
        pays = [
            o.price_cents if o.special_price_cents is None else o.special_price_cents
            for o in options
        ]
        if query.sort is SortKey.PRICE:
            return min(pays)
        if query.sort is SortKey.PRICE_PER_GRAM:
            per = [
                p / o.quantity.amount
                for p, o in zip(pays, options, strict=True)
                if o.quantity.unit is QuantityUnit.GRAMS
            ]
            return min(per) if per else None
        if query.sort is SortKey.THC:
            if product.thc is None or product.thc.unit is not PotencyUnit.PERCENT:
                return None
            return (product.thc.low + product.thc.high) / 2
        return None

    def name_key(item: tuple[Product, tuple[PriceOption, ...]]) -> tuple[str, str]:
        return (_plain(item[0].name), item[0].source_id)

    if query.sort is SortKey.NAME:
        ordered = sorted(kept, key=name_key, reverse=query.descending)
    else:
        with_value = [item for item in kept if value(item) is not None]
        without = sorted((item for item in kept if value(item) is None), key=name_key)
        sign = -1 if query.descending else 1
        with_value.sort(key=lambda item: (sign * value(item), name_key(item)))  # type: ignore[operator]
        ordered = with_value + without
    return [(product.source_id, options) for product, options in ordered]


MENUS = [make_menu(f"weedmaps:query-{n}", 120, seed=n) for n in range(4)]

queries = st.builds(
    ProductQuery,
    categories=st.frozensets(st.sampled_from(list(Category)), max_size=3),
    lineages=st.frozensets(st.sampled_from(list(Lineage)), max_size=2),
    brands=st.frozensets(
        st.sampled_from([fold(p.brand) for p in MENUS[0].products if p.brand]), max_size=2
    ),
    words=st.lists(
        st.sampled_from(["og", "kush", "blue", "bl", "gummies", "x", "haze", "1", "ush"]),
        max_size=2,
    ).map(tuple),
    min_thc=st.none() | st.floats(0, 40),
    max_thc=st.none() | st.floats(5, 100),
    max_price_cents=st.none() | st.integers(500, 10_000),
    max_price_per_gram_cents=st.none() | st.floats(300, 3_000),
    on_special=st.none() | st.booleans(),
    size=st.none()
    | st.sampled_from(
        [
            Quantity(3.5, QuantityUnit.GRAMS),
            Quantity(3.5436, QuantityUnit.GRAMS),
            Quantity(1.0, QuantityUnit.GRAMS),
            Quantity(100.0, QuantityUnit.MILLIGRAMS),
            Quantity(1.0, QuantityUnit.UNITS),
        ]
    ),
    sort=st.sampled_from(list(SortKey)),
    descending=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(menu_index=st.integers(0, len(MENUS) - 1), query=queries)
def test_select_matches_the_reference(menu_index: int, query: ProductQuery) -> None:
    menu = MENUS[menu_index]
    found = [(match.product.source_id, match.options) for match in select(menu, query)]
    assert found == reference(menu, query)


def test_generated_menus_give_the_filters_something_to_do() -> None:
    """The generated menus hold what the property test needs to tell filters apart."""
    products = [p for menu in MENUS for p in menu.products]
    assert len({p.category for p in products}) >= 5
    assert any(o.special_price_cents is not None for p in products for o in p.price_options)
    assert any(p.thc is not None and p.thc.unit is PotencyUnit.PERCENT for p in products)
    assert any(o.quantity.unit is QuantityUnit.UNITS for p in products for o in p.price_options)
    flower = ProductQuery(
        categories=frozenset({Category.FLOWER}), size=Quantity(3.5, QuantityUnit.GRAMS)
    )
    assert 0 < len(select(MENUS[0], flower)) < len(MENUS[0].products)


def test_text_is_compared_without_case_or_accents() -> None:
    base = MENUS[0].products[0]
    product = replace(base, name="Crème BRÛLÉE Gummies", brand="Kïva")
    menu = replace(MENUS[0], products=(product, *MENUS[0].products[1:]))
    for words in (("creme", "brulee"), ("CRÈME".casefold(),), ("kiva",), ("bru", "gum")):
        query = ProductQuery(words=tuple(fold(word) for word in words))
        assert product in [match.product for match in select(menu, query)], words
    # a word matches the start of a word, not its middle
    assert product not in [m.product for m in select(menu, ProductQuery(words=("rulee",)))]
    assert select(menu, ProductQuery(brands=frozenset({fold("KIVA")})))[0].product is product


def test_price_per_gram_only_for_weights_in_grams() -> None:
    assert price_per_gram(3500, Quantity(3.5, QuantityUnit.GRAMS)) == 1000
    assert price_per_gram(2000, Quantity(100, QuantityUnit.MILLIGRAMS)) is None
    assert price_per_gram(2000, Quantity(2, QuantityUnit.UNITS)) is None
    # the statistics use the same rule: an edible's mg price never enters price per gram
    edible = Product(
        source_id="e1",
        name="Gummies 100mg",
        category=Category.EDIBLE,
        price_options=(PriceOption(Quantity(100, QuantityUnit.MILLIGRAMS), 2000),),
        thc=Potency(100, 100, PotencyUnit.MILLIGRAMS),
    )
    stats = compute_statistics(replace(MENUS[0], products=(edible,)))
    assert stats.categories[0].price_per_gram_min is None
    assert (
        select(
            replace(MENUS[0], products=(edible,)), ProductQuery(max_price_per_gram_cents=math.inf)
        )
        == []
    )
