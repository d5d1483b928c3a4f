"""Menu factories for tests and benchmarks: a deterministic realistic menu and Hypothesis
strategies that generate any valid menu."""

from __future__ import annotations

import random
from typing import Any

from whnode.record.model import (
    Category,
    DispensaryId,
    Lineage,
    Menu,
    Potency,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
    Vendor,
)

__all__ = ["make_menu", "menus"]

_STRAINS = ("Blue Dream", "Wedding Cake", "Gelato", "OG Kush", "Sour Diesel", "Runtz")
_BRANDS = ("Kiva", "Wyld", "Raw Garden", "Select", None)
_WORDS = tuple(
    "earthy citrus pine diesel sweet skunk berry grape hand trimmed slow cured indoor "
    "sungrown craft small batch terpene rich dense nugs frosty trichomes smooth smoke "
    "uplifting relaxing creative sleepy balanced evening daytime lemon mango vanilla "
    "cookies cream gas fuel floral herbal spicy pepper woody mint cocoa tropical".split()
)


def make_menu(
    dispensary_id: str = "weedmaps:factory-store",
    n_products: int = 250,
    *,
    seed: int = 1,
    fetched_at_ms: int = 1_760_000_000_000,
) -> Menu:
    """A realistic menu of ``n_products`` products, the same for the same arguments."""
    rng = random.Random(seed)
    products = []
    for index in range(n_products):
        category = rng.choice(list(Category))
        grams = rng.choice((1.0, 3.5, 7.0, 14.0, 28.0))
        options = tuple(
            PriceOption(
                quantity=Quantity(grams * (i + 1), QuantityUnit.GRAMS),
                price_cents=rng.randint(500, 30000),
                special_price_cents=rng.choice((None, rng.randint(100, 400))),
                stock=rng.choice((None, rng.randint(0, 50))),
            )
            for i in range(rng.randint(1, 4))
        )
        thc = round(rng.uniform(10, 35), 1)
        products.append(
            Product(
                source_id=f"{seed}-{index:05d}",
                name=f"{rng.choice(_STRAINS)} {index}",
                category=category,
                price_options=options,
                brand=rng.choice(_BRANDS),
                lineage=rng.choice(list(Lineage)),
                thc=Potency(thc, thc, PotencyUnit.PERCENT),
                cbd=rng.choice((None, Potency(0.1, 0.5, PotencyUnit.PERCENT))),
                image_url=f"https://images.example.org/{seed}/{index}.jpg",
                description=" ".join(rng.choices(_WORDS, k=rng.randint(8, 60))).capitalize()
                + ".",
            )
        )
    return Menu(
        dispensary_id=DispensaryId(dispensary_id),
        name="Factory Store",
        vendor=Vendor.WEEDMAPS,
        fetched_at_ms=fetched_at_ms,
        products=tuple(products),
    )


def menus(max_products: int = 8) -> Any:
    """A Hypothesis strategy of valid menus (imported lazily: Hypothesis is a test dependency)."""
    from hypothesis import strategies as st

    text = st.text(min_size=1, max_size=40).filter(lambda value: value.strip() != "")
    amounts = st.floats(min_value=0.001, max_value=10_000, allow_nan=False)
    potency = st.builds(
        lambda low, extra, unit: Potency(low, low + extra, unit),
        st.floats(min_value=0, max_value=50, allow_nan=False),
        st.floats(min_value=0, max_value=50, allow_nan=False),
        st.sampled_from(list(PotencyUnit)),
    )
    option = st.builds(
        PriceOption,
        quantity=st.builds(Quantity, amounts, st.sampled_from(list(QuantityUnit))),
        price_cents=st.integers(1, 10_000_000),
        special_price_cents=st.none() | st.integers(0, 10_000_000),
        stock=st.none() | st.integers(0, 1_000_000),
    )
    product = st.builds(
        Product,
        source_id=text,
        name=text,
        category=st.sampled_from(list(Category)),
        price_options=st.lists(option, max_size=4).map(tuple),
        brand=st.none() | text,
        lineage=st.sampled_from(list(Lineage)),
        thc=st.none() | potency,
        cbd=st.none() | potency,
        image_url=st.none() | st.just("https://images.example.org/x.jpg"),
        description=st.none() | st.text(max_size=200),
    )
    return st.builds(
        Menu,
        dispensary_id=st.from_regex(
            r"\A(weedmaps|jane|dutchie|leafly):[a-z0-9][a-z0-9-]{0,20}\Z"
        ).map(DispensaryId),
        name=text,
        vendor=st.sampled_from(list(Vendor)),
        fetched_at_ms=st.integers(0, 2**53),
        products=st.lists(product, max_size=max_products).map(tuple),
    )
