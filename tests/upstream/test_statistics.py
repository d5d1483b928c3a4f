"""Menu statistics: counts per category, price per gram, THC histogram."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from whnode.record import model
from whnode.upstream.statistics import compute_statistics


def grams(amount: float, cents: int) -> model.PriceOption:
    return model.PriceOption(
        quantity=model.Quantity(amount, model.QuantityUnit.GRAMS), price_cents=cents
    )


def units(count: float, cents: int) -> model.PriceOption:
    return model.PriceOption(
        quantity=model.Quantity(count, model.QuantityUnit.UNITS), price_cents=cents
    )


def product(
    name: str,
    category: model.Category,
    *options: model.PriceOption,
    thc: model.Potency | None = None,
) -> model.Product:
    return model.Product(
        source_id=name, name=name, category=category, price_options=options, thc=thc
    )


def menu(*products: model.Product) -> model.Menu:
    return model.Menu(
        dispensary_id=model.parse_dispensary_id("dutchie:abc"),
        name="Test Store",
        vendor=model.Vendor.DUTCHIE,
        fetched_at_ms=1_700_000_000_000,
        products=products,
    )


def percent(low: float, high: float | None = None) -> model.Potency:
    return model.Potency(low, low if high is None else high, model.PotencyUnit.PERCENT)


def test_counts_and_price_per_gram_per_category() -> None:
    stats = compute_statistics(
        menu(
            product("a", model.Category.FLOWER, grams(3.5, 3500), grams(1, 1200), thc=percent(21)),
            product("b", model.Category.FLOWER, grams(28, 14000), thc=percent(18, 24)),
            product(
                "c",
                model.Category.EDIBLE,
                units(10, 2000),
                thc=model.Potency(100, 100, model.PotencyUnit.MILLIGRAMS),
            ),
            product("d", model.Category.VAPE, grams(0.5, 2500), units(1, 1999)),
            product("e", model.Category.EDIBLE, units(1, 500)),
        )
    )
    by_category = {item.category: item for item in stats.categories}
    assert [item.category for item in stats.categories] == [
        model.Category.FLOWER,
        model.Category.VAPE,
        model.Category.EDIBLE,
    ]  # enum order, only categories present
    flower = by_category[model.Category.FLOWER]
    assert flower.product_count == 2
    # 1000, 1200 and 500 cents per gram
    assert (flower.price_per_gram_min, flower.price_per_gram_median, flower.price_per_gram_max) == (
        500.0,
        1000.0,
        1200.0,
    )
    vape = by_category[model.Category.VAPE]
    assert vape.price_per_gram_min == vape.price_per_gram_max == 5000.0
    edible = by_category[model.Category.EDIBLE]
    assert edible.product_count == 2
    assert edible.price_per_gram_median is None  # no option in grams
    histogram = stats.thc_percent_histogram
    assert len(histogram) == 20
    assert histogram[4] == 2  # 21 % and the midpoint 21 % of 18-24 %
    assert sum(histogram) == 2  # milligrams are not percent


def test_histogram_bucket_edges() -> None:
    values = [0.0, 4.99, 5.0, 99.9, 100.0]
    stats = compute_statistics(
        menu(
            *(product(f"p{i}", model.Category.FLOWER, thc=percent(v)) for i, v in enumerate(values))
        )
    )
    histogram = stats.thc_percent_histogram
    assert histogram[0] == 2
    assert histogram[1] == 1
    assert histogram[19] == 2
    assert sum(histogram) == 5


def test_median_of_an_even_count_and_rounding() -> None:
    stats = compute_statistics(
        menu(
            product("a", model.Category.CONCENTRATE, grams(1, 3000), grams(1, 4000), grams(3, 1000))
        )
    )
    concentrate = stats.categories[0]
    assert concentrate.price_per_gram_min == 333.33
    assert concentrate.price_per_gram_median == 3000.0
    assert concentrate.price_per_gram_max == 4000.0


categories = st.sampled_from(list(model.Category))
options = st.one_of(
    st.builds(grams, st.floats(0.1, 1000), st.integers(1, 10_000_000)),
    st.builds(units, st.floats(1, 100), st.integers(1, 10_000_000)),
)
potencies = st.one_of(
    st.none(),
    st.floats(0, 100).flatmap(lambda low: st.builds(percent, st.just(low), st.floats(low, 100))),
    st.builds(lambda v: model.Potency(v, v, model.PotencyUnit.MILLIGRAMS), st.floats(0, 1000)),
)
products = st.builds(
    lambda index, category, opts, thc: product(f"p{index}", category, *opts, thc=thc),
    st.integers(0, 10**6),
    categories,
    st.lists(options, max_size=5),
    potencies,
)


@given(st.lists(products, max_size=40))
def test_invariants(items: list[model.Product]) -> None:
    stats = compute_statistics(menu(*items))
    assert sum(item.product_count for item in stats.categories) == len(items)
    percent_thc = [
        p for p in items if p.thc is not None and p.thc.unit is model.PotencyUnit.PERCENT
    ]
    assert sum(stats.thc_percent_histogram) == len(percent_thc)
    for item in stats.categories:
        if item.price_per_gram_min is not None:
            assert item.price_per_gram_median is not None
            assert item.price_per_gram_max is not None
            assert item.price_per_gram_min <= item.price_per_gram_median <= item.price_per_gram_max
