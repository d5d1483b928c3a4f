"""Diffs between snapshots (whnode.record.diff): round trip on generated changes, and the
summary against what was changed."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from whnode.record.diff import apply_diff, diff_menus
from whnode.record.model import Menu, Potency, PotencyUnit, Product
from whnode.testing.factories import evolve_menu, make_menu

BASE = make_menu("weedmaps:diff-target", 80, seed=11, fetched_at_ms=1_700_000_000_000)


def mutate(menu: Menu, seed: int, *, reorder: bool, duplicate: bool) -> Menu:
    """A later snapshot: prices, specials, THC and names changed, products removed and added,
    maybe reordered, maybe with a repeated source id."""
    rng = random.Random(seed)
    products: list[Product] = []
    for product in menu.products:
        roll = rng.random()
        if roll < 0.08:
            continue  # removed
        if roll < 0.2:
            option = product.price_options[0]
            special = None if option.special_price_cents else max(0, option.price_cents - 100)
            options = (replace(option, special_price_cents=special), *product.price_options[1:])
            product = replace(product, price_options=options)
        elif roll < 0.3:
            product = replace(product, thc=Potency(21.0, 21.0, PotencyUnit.PERCENT))
        elif roll < 0.35:
            product = replace(product, name=product.name + " (new batch)")
        elif roll < 0.4:
            product = replace(product, price_options=product.price_options[:1])
        products.append(product)
    extra = make_menu("weedmaps:diff-target", 10, seed=seed + 1).products
    for index, product in enumerate(extra[: rng.randint(0, 6)]):
        product = replace(product, source_id=f"new-{seed}-{index}")
        products.insert(rng.randint(0, len(products)), product)
    if duplicate and products:
        twin = replace(products[0], name="twin")
        products.insert(rng.randint(0, len(products)), twin)
    if reorder:
        rng.shuffle(products)
    changed = evolve_menu(menu, seed, menu.fetched_at_ms + 60_000, change=0.1)
    return replace(changed, products=tuple(products), name=menu.name + " Downtown")


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), reorder=st.booleans(), duplicate=st.booleans())
def test_applying_the_diff_to_the_old_snapshot_gives_the_new_one(
    seed: int, reorder: bool, duplicate: bool
) -> None:
    old = evolve_menu(BASE, seed, BASE.fetched_at_ms)
    new = mutate(old, seed, reorder=reorder, duplicate=duplicate)
    diff = diff_menus(old, new)
    assert apply_diff(old, diff) == new
    assert diff_menus(new, new).empty
    assert apply_diff(new, diff_menus(new, old)) == old  # and backwards


def test_the_summary_says_what_changed() -> None:
    plain = BASE.products[1]
    plain = replace(
        plain,
        price_options=tuple(replace(o, special_price_cents=None) for o in plain.price_options),
    )
    old = replace(BASE, products=(BASE.products[0], plain, *BASE.products[2:]))
    first, second, third, gone = old.products[:4]
    option = first.price_options[0]
    new_products = list(old.products)
    new_products[0] = replace(
        first,
        price_options=(
            replace(option, price_cents=option.price_cents + 300, special_price_cents=None),
            *first.price_options[1:],
        ),
    )
    new_products[1] = replace(
        second,
        price_options=tuple(
            replace(o, special_price_cents=o.price_cents // 2) for o in second.price_options
        ),
    )
    new_products[2] = replace(third, thc=Potency(30.0, 31.0, PotencyUnit.PERCENT), brand="Other")
    del new_products[3]
    newcomer = replace(first, source_id="brand-new", name="Brand New")
    new_products.append(newcomer)
    new = replace(old, fetched_at_ms=old.fetched_at_ms + 1000, products=tuple(new_products))
    diff = diff_menus(old, new)
    assert [product for _, product in diff.added] == [newcomer]
    assert [key for key, _ in diff.removed] == [(gone.source_id, 0)]
    changes = {change.key[0]: change for change in diff.changed}
    assert set(changes) == {first.source_id, second.source_id, third.source_id}
    price = changes[first.source_id].prices[0]
    assert (price.old_cents, price.new_cents) == (option.price_cents, option.price_cents + 300)
    assert price.quantity == option.quantity
    if option.special_price_cents is not None:
        assert changes[first.source_id].specials[0].ended
    assert all(special.started for special in changes[second.source_id].specials)
    assert len(changes[second.source_id].specials) == len(second.price_options)
    assert changes[second.source_id].prices == ()
    assert changes[third.source_id].thc == (third.thc, Potency(30.0, 31.0, PotencyUnit.PERCENT))
    assert "brand" in changes[third.source_id].fields
    assert diff.order is None  # nothing reordered
