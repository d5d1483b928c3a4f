"""What changed between two snapshots of one menu. Pure: two Menus in, a MenuDiff out.

A product is the same product in both snapshots when it has the same source id (the k-th
product with a source id is matched with the k-th one of the other snapshot: upstream ids
are not always unique). Then:

- ``added``: products of the new snapshot only, each with its index in the new snapshot;
- ``removed``: products of the old snapshot only;
- ``changed``: products in both whose content differs, with the new product in full and a
  summary: price changes per size (an option is matched by its size; a size that appears or
  disappears is a change from or to nothing), specials (per size, old and new special price:
  ``None`` to a price is a special that started, a price to ``None`` one that ended), THC
  (old and new), and the names of the other fields that changed.

``apply(old, diff)`` gives the new snapshot back exactly (round trip; the products' order
too: ``order`` is carried only when the products both snapshots hold were reordered), so a
client that holds the old snapshot can rebuild the new one from the diff alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields

from whnode.record.model import (
    Menu,
    MenuStatistics,
    Potency,
    PriceOption,
    Product,
    Quantity,
)

__all__ = [
    "MenuDiff",
    "PriceChange",
    "ProductChange",
    "SpecialChange",
    "apply_diff",
    "diff_menus",
]

ProductKey = tuple[str, int]
"""(source id, occurrence): the k-th product with that source id in a snapshot."""


@dataclass(frozen=True, slots=True)
class PriceChange:
    """The list price of one size: ``None`` on a side where the size is not offered."""

    quantity: Quantity
    old_cents: int | None
    new_cents: int | None


@dataclass(frozen=True, slots=True)
class SpecialChange:
    """The special price of one size: ``None`` on a side without a special."""

    quantity: Quantity
    old_cents: int | None
    new_cents: int | None

    @property
    def started(self) -> bool:
        return self.old_cents is None and self.new_cents is not None

    @property
    def ended(self) -> bool:
        return self.old_cents is not None and self.new_cents is None


@dataclass(frozen=True, slots=True)
class ProductChange:
    key: ProductKey
    product: Product
    """The product as the new snapshot has it."""
    prices: tuple[PriceChange, ...]
    specials: tuple[SpecialChange, ...]
    thc: tuple[Potency | None, Potency | None] | None
    """(old, new) when THC changed, else None."""
    fields: tuple[str, ...]
    """Other fields that changed (name, brand, category, stock, ...)."""


@dataclass(frozen=True, slots=True)
class MenuDiff:
    dispensary_id: str
    from_fetched_at_ms: int
    to_fetched_at_ms: int
    name: str
    """The dispensary's name in the new snapshot."""
    statistics: MenuStatistics | None
    """The new snapshot's statistics."""
    added: tuple[tuple[int, Product], ...]
    """(index in the new snapshot, product), by index."""
    removed: tuple[tuple[ProductKey, Product], ...]
    changed: tuple[ProductChange, ...]
    order: tuple[ProductKey | int, ...] | None = None
    """The new snapshot's order when kept products were reordered: a key of the old snapshot,
    or the index into ``added``; None when the order follows from the rest."""

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed) and self.order is None


def _keyed(products: Iterable[Product]) -> list[tuple[ProductKey, Product]]:
    seen: dict[str, int] = defaultdict(int)
    keyed = []
    for product in products:
        occurrence = seen[product.source_id]
        seen[product.source_id] += 1
        keyed.append(((product.source_id, occurrence), product))
    return keyed


def _by_size(options: tuple[PriceOption, ...]) -> dict[tuple[str, float, int], PriceOption]:
    sized: dict[tuple[str, float, int], PriceOption] = {}
    seen: dict[tuple[str, float], int] = defaultdict(int)
    for option in options:
        size = (option.quantity.unit.value, option.quantity.amount)
        sized[(*size, seen[size])] = option
        seen[size] += 1
    return sized


def _change(key: ProductKey, old: Product, new: Product) -> ProductChange:
    old_sizes, new_sizes = _by_size(old.price_options), _by_size(new.price_options)
    prices: list[PriceChange] = []
    specials: list[SpecialChange] = []
    stock_changed = False
    for size in [*old_sizes, *(size for size in new_sizes if size not in old_sizes)]:
        before, after = old_sizes.get(size), new_sizes.get(size)
        quantity = (after or before).quantity  # type: ignore[union-attr]
        old_price = before.price_cents if before else None
        new_price = after.price_cents if after else None
        if old_price != new_price:
            prices.append(PriceChange(quantity, old_price, new_price))
        old_special = before.special_price_cents if before else None
        new_special = after.special_price_cents if after else None
        if old_special != new_special:
            specials.append(SpecialChange(quantity, old_special, new_special))
        if before and after and before.stock != after.stock:
            stock_changed = True
    other = [
        field.name
        for field in fields(Product)
        if field.name not in ("price_options", "thc")
        and getattr(old, field.name) != getattr(new, field.name)
    ]
    if stock_changed:
        other.append("stock")
    thc = (old.thc, new.thc) if old.thc != new.thc else None
    return ProductChange(key, new, tuple(prices), tuple(specials), thc, tuple(other))


def diff_menus(old: Menu, new: Menu) -> MenuDiff:
    """What changed from ``old`` to ``new`` (two snapshots of one dispensary)."""
    if old.dispensary_id != new.dispensary_id:
        raise ValueError("the snapshots are of two dispensaries")
    old_keyed = _keyed(old.products)
    old_by_key = dict(old_keyed)
    new_keyed = _keyed(new.products)
    new_keys = {key for key, _ in new_keyed}
    added: list[tuple[int, Product]] = []
    changed: list[ProductChange] = []
    order: list[ProductKey | int] = []
    for index, (key, product) in enumerate(new_keyed):
        before = old_by_key.get(key)
        if before is None:
            order.append(len(added))
            added.append((index, product))
            continue
        order.append(key)
        if before != product:
            changed.append(_change(key, before, product))
    removed = tuple((key, product) for key, product in old_keyed if key not in new_keys)
    kept_order = [item for item in order if not isinstance(item, int)]
    expected = [key for key, _ in old_keyed if key in new_keys]
    return MenuDiff(
        dispensary_id=new.dispensary_id,
        from_fetched_at_ms=old.fetched_at_ms,
        to_fetched_at_ms=new.fetched_at_ms,
        name=new.name,
        statistics=new.statistics,
        added=tuple(added),
        removed=removed,
        changed=tuple(changed),
        order=None if kept_order == expected else tuple(order),
    )


def apply_diff(old: Menu, diff: MenuDiff) -> Menu:
    """The new snapshot, from the old one and the diff between them."""
    if old.dispensary_id != diff.dispensary_id or old.fetched_at_ms != diff.from_fetched_at_ms:
        raise ValueError("the diff does not start at this snapshot")
    removed = {key for key, _ in diff.removed}
    replaced = {change.key: change.product for change in diff.changed}
    if diff.order is not None:
        by_key = dict(_keyed(old.products))
        products = [
            diff.added[item][1] if isinstance(item, int) else replaced.get(item, by_key[item])
            for item in diff.order
        ]
    else:
        products = [
            replaced.get(key, product)
            for key, product in _keyed(old.products)
            if key not in removed
        ]
        for index, product in diff.added:
            products.insert(index, product)
    return Menu(
        dispensary_id=old.dispensary_id,
        name=diff.name,
        vendor=old.vendor,
        fetched_at_ms=diff.to_fetched_at_ms,
        products=tuple(products),
        statistics=diff.statistics,
    )
