"""The sandbox's deterministic menus: the named catalog, the population, change over time."""

from __future__ import annotations

import itertools
import re

from whnode.record.model import QuantityUnit, Vendor, parse_dispensary_id
from whnode.sandbox import LARGE, NAMED_IDS, QUIRKY, REALISTIC, SMALL, TINY, SizeClass
from whnode.sandbox.catalog import DispensarySpec, Item, menu_at, named_catalog, population


def _spec(dispensary_id: str, seed: int = 1) -> DispensarySpec:
    return next(s for s in named_catalog(seed) if s.dispensary_id == dispensary_id)


def test_named_catalog_sizes_and_ids() -> None:
    specs = named_catalog(1)
    assert [s.dispensary_id for s in specs] == list(NAMED_IDS)
    assert len(specs) == 28
    for spec in specs:
        parse_dispensary_id(spec.dispensary_id)
        assert spec.dispensary_id == f"{spec.vendor}:{spec.store}"
        if spec.vendor is Vendor.DUTCHIE:
            assert re.fullmatch(r"[0-9a-f]{24}", spec.store), spec.store
        if spec.vendor is Vendor.JANE:
            assert spec.store.isdigit()
    sizes = {s.dispensary_id: s.items for s in specs}
    for vendor in (Vendor.WEEDMAPS, Vendor.DUTCHIE, Vendor.JANE, Vendor.LEAFLY):
        assert 3 <= sizes[TINY[vendor]] <= 6
        assert 45 <= sizes[SMALL[vendor]] <= 55
        assert 230 <= sizes[REALISTIC[vendor]] <= 270
        assert sizes[LARGE[vendor]] == 2500
        assert _spec(QUIRKY[vendor]).size_class is SizeClass.QUIRKY
    assert TINY[Vendor.WEEDMAPS] == "weedmaps:ultra-health-gallup"
    assert TINY[Vendor.DUTCHIE] == "dutchie:67068790432055b33dc37888"
    assert TINY[Vendor.JANE] == "jane:1547"


def test_menus_are_a_function_of_seed_and_version() -> None:
    spec = _spec(SMALL[Vendor.JANE])
    first = menu_at(spec, 1, 0.02, 0)
    assert len(first) == spec.items
    menu_at.cache_clear()
    assert menu_at(spec, 1, 0.02, 0) == first, "deterministic, not cached luck"
    assert menu_at(spec, 2, 0.02, 0) != first
    assert menu_at(_spec(SMALL[Vendor.JANE], seed=2), 2, 0.02, 0) != first
    names = [item.name for item in first]
    assert len(set(names)) == len(names)


def _prices(items: tuple[Item, ...]) -> dict[int, tuple[int, ...]]:
    return {item.number: tuple(o.price_cents for o in item.options) for item in items}


def test_every_version_changes_something_and_only_a_little() -> None:
    spec = _spec(LARGE[Vendor.DUTCHIE])
    versions = [menu_at(spec, 1, 0.02, epoch) for epoch in range(6)]
    for before, after in itertools.pairwise(versions):
        assert before != after
        old, new = _prices(before), _prices(after)
        changed = sum(1 for n in old.keys() & new.keys() if old[n] != new[n])
        assert 1 <= changed <= 150, changed
    counts = {len(version) for version in versions}
    assert max(counts) - min(counts) <= 2 * (2500 // 20)
    tiny = _spec(TINY[Vendor.WEEDMAPS])
    tiny_versions = [menu_at(tiny, 1, 0.02, epoch) for epoch in range(10)]
    for before, after in itertools.pairwise(tiny_versions):
        assert _prices(before) != _prices(after), "even a tiny menu changes every version"


def test_items_come_and_go() -> None:
    spec = _spec(REALISTIC[Vendor.LEAFLY])
    seen = [{item.number for item in menu_at(spec, 1, 0.1, epoch)} for epoch in range(12)]
    assert seen[0] == set(range(spec.items))
    assert any(numbers - seen[0] for numbers in seen), "items were added"
    assert any(seen[0] - numbers for numbers in seen), "items were removed"


def test_a_zero_change_rate_freezes_menus() -> None:
    spec = _spec(SMALL[Vendor.WEEDMAPS])
    assert menu_at(spec, 1, 0.0, 0) == menu_at(spec, 1, 0.0, 7)


def test_prices_end_in_99_cents_unless_bumped() -> None:
    spec = _spec(REALISTIC[Vendor.DUTCHIE])
    items = menu_at(spec, 1, 0.02, 3)
    endings = [o.price_cents % 100 for item in items for o in item.options]
    assert endings.count(36) == 1, "one bumped item per version"
    assert set(endings) == {99, 36}
    assert all(
        o.special_price_cents is None or o.special_price_cents < o.price_cents
        for item in items
        for o in item.options
    )


def test_every_category_and_unit_appears_in_a_large_menu() -> None:
    items = menu_at(_spec(LARGE[Vendor.WEEDMAPS]), 1, 0.02, 0)
    assert len({item.category for item in items}) >= 11
    assert {o.quantity.unit for item in items for o in item.options} == set(QuantityUnit)
    assert any(item.brand is None for item in items)
    assert any(item.description and "\n" in item.description for item in items)


def test_population_spreads_over_vendors_with_capped_sizes() -> None:
    specs = population(300, 1, 40)
    assert [s.dispensary_id for s in specs[:5]] == [
        "weedmaps:store-0001",
        "dutchie:store-0002",
        "jane:store-0003",
        "leafly:store-0004",
        "weedmaps:store-0005",
    ]
    assert {s.vendor for s in specs} == set(Vendor) - {Vendor.TREEZ, Vendor.FLOWHUB}
    assert all(3 <= s.items <= 40 for s in specs)
    capped = sum(1 for s in specs if s.items == 40)
    assert 200 < capped < 300, "real sizes, capped: most at the cap, a few below"
    wide = population(300, 1, 2500)
    sizes = sorted(s.items for s in wide)
    assert 150 <= sizes[150] <= 350, "median near the real ~245"
    assert max(sizes) <= 2500
    assert population(300, 1, 2500) == wide
