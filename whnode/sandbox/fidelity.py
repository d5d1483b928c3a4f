"""Fidelity: compare what an adapter served with the sandbox's own truth, product by product,
size by size, price by price.

The sandbox generates each menu as clean ``Item`` values (``whnode.sandbox.catalog``) and each
vendor module renders them in its API's shape. ``compare(menu, items, shape)`` matches every
served product to its item (by the id the vendor module gave it, else by name) and counts what
differs, within what each shape can say at all (``CAPABILITIES``: Jane has no stock and folds
lineage into four words, Weedmaps discovery puts the lineage only on flower, and so on). One
comparison serves the tests of every vendor and ``whnode bench fidelity``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from whnode.record.model import (
    Category,
    Lineage,
    Menu,
    Potency,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    Vendor,
)
from whnode.sandbox.catalog import Item, Option

__all__ = [
    "CAPABILITIES",
    "FIELDS",
    "SHAPES",
    "Capabilities",
    "FidelityReport",
    "compare",
    "expected_id",
]

FIELDS: Final = (
    "source_id",
    "name",
    "brand",
    "category",
    "lineage",
    "thc",
    "cbd",
    "description",
    "image_url",
    "price",
    "special_price",
    "stock",
)
"""Fields compared, product fields first, then the fields of each size."""
MAX_EXAMPLES: Final = 3
"""Product names kept as examples per wrong field."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one API shape can state about an item."""

    specials: bool = True
    """Special (sale) prices."""
    stock: bool = True
    """Stock per size."""
    lineage: str = "full"
    """``full``, ``jane`` (four words), ``flower`` (only on flower, three words)."""
    thc: str = "full"
    """``full``, or ``percent-high`` (one % value, the high end of a range)."""
    stock_when: Callable[[Item], bool] | None = None
    """With ``stock``: which items carry it (None: all)."""

    def has_stock(self, item: Item) -> bool:
        return self.stock and (self.stock_when is None or self.stock_when(item))


def _jsonapi_has_variants(item: Item) -> bool:
    from whnode.sandbox.vendors.weedmaps import jsonapi_has_variants

    return jsonapi_has_variants(item)


CAPABILITIES: Final[Mapping[str, Capabilities]] = {
    "dutchie": Capabilities(),
    "jane": Capabilities(stock=False, lineage="jane", thc="percent-high"),
    "weedmaps": Capabilities(stock=False, lineage="flower"),
    "weedmaps-v1": Capabilities(specials=False, stock_when=_jsonapi_has_variants),
    "leafly": Capabilities(specials=False),
    "treez": Capabilities(),
    "flowhub": Capabilities(specials=False),
}
"""Per API shape (``vendor`` or ``vendor-variant``): what it carries."""
SHAPES: Final = tuple(CAPABILITIES)

_JANE_LINEAGE: Final = {
    Lineage.INDICA_HYBRID: Lineage.INDICA,
    Lineage.SATIVA_HYBRID: Lineage.SATIVA,
    Lineage.BALANCED: Lineage.HIGH_CBD,
}
_WEEDMAPS_FLOWER_LINEAGE: Final = {
    Lineage.INDICA: Lineage.INDICA,
    Lineage.SATIVA: Lineage.SATIVA,
    Lineage.HYBRID: Lineage.HYBRID,
    Lineage.INDICA_HYBRID: Lineage.INDICA,
    Lineage.SATIVA_HYBRID: Lineage.SATIVA,
}


def expected_id(shape: str, item: Item) -> str:
    """The source id the vendor module gave ``item`` in ``shape``."""
    from whnode.sandbox.vendors import flowhub, jane, leafly, treez, weedmaps

    vendor = Vendor(shape.partition("-")[0])
    if vendor is Vendor.JANE:
        return str(jane.jane_product_id(item))
    if vendor is Vendor.WEEDMAPS:
        return str(weedmaps.weedmaps_id(item))
    if vendor is Vendor.LEAFLY:
        return str(leafly.leafly_ids(item)[0])
    if vendor is Vendor.TREEZ:
        return treez.treez_ids(item)[0]
    if vendor is Vendor.FLOWHUB:
        return flowhub.flowhub_ids(item)[0]
    return item.key[:24]


def _lineage(capabilities: Capabilities, item: Item) -> Lineage:
    if capabilities.lineage == "jane":
        return _JANE_LINEAGE.get(item.lineage, item.lineage)
    if capabilities.lineage == "flower":
        if item.category is not Category.FLOWER:
            return Lineage.UNKNOWN
        return _WEEDMAPS_FLOWER_LINEAGE.get(item.lineage, Lineage.UNKNOWN)
    return item.lineage


def _potency(capabilities: Capabilities, potency: Potency | None) -> Potency | None:
    if capabilities.thc == "percent-high":
        if potency is None or potency.unit is not PotencyUnit.PERCENT:
            return None
        return Potency(potency.high, potency.high, PotencyUnit.PERCENT)
    return potency


@dataclass(slots=True)
class FidelityReport:
    """What differs between served products and the truth, for one shape (added up over
    any number of menus)."""

    shape: str
    menus: int = 0
    products_expected: int = 0
    products_served: int = 0
    missing: int = 0
    """Items of the truth no served product stands for."""
    duplicated: int = 0
    """Served products beyond the first that stand for one item."""
    extra: int = 0
    """Served products that stand for no item."""
    sizes_expected: int = 0
    sizes_served: int = 0
    sizes_missing: int = 0
    """Sizes of served products' items that the product lacks (missing products not
    counted again)."""
    sizes_extra: int = 0
    wrong: Counter[str] = field(default_factory=Counter)
    """Wrong values by field (``FIELDS``)."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """A few item names per wrong field or loss (``missing``, ``sizes_missing``...)."""

    @property
    def exact(self) -> bool:
        """Nothing missing, duplicated, extra or wrong."""
        return not (
            self.missing
            or self.duplicated
            or self.extra
            or self.sizes_missing
            or self.sizes_extra
            or sum(self.wrong.values())
        )

    def note(self, what: str, name: str, count: int = 1) -> None:
        """Count ``count`` of ``what`` (a field or a loss) for the item called ``name``."""
        if what in FIELDS:
            self.wrong[what] += count
        else:
            setattr(self, what, getattr(self, what) + count)
        kept = self.examples.setdefault(what, [])
        if len(kept) < MAX_EXAMPLES and name not in kept:
            kept.append(name)

    def add(self, other: FidelityReport) -> None:
        """Add ``other``'s counts to these."""
        for name in (
            "menus",
            "products_expected",
            "products_served",
            "missing",
            "duplicated",
            "extra",
            "sizes_expected",
            "sizes_served",
            "sizes_missing",
            "sizes_extra",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.wrong.update(other.wrong)
        for what, names in other.examples.items():
            kept = self.examples.setdefault(what, [])
            kept.extend(n for n in names if n not in kept and len(kept) < MAX_EXAMPLES)

    def line(self) -> str:
        """One line: the shape, products and sizes expected / served / lost, wrong fields."""
        wrong = ", ".join(f"{name} {count}" for name, count in sorted(self.wrong.items()))
        return (
            f"{self.shape:<12} {self.menus:3} menus  products expected {self.products_expected:6,}"
            f" served {self.products_served:6,} missing {self.missing:5,} duplicated "
            f"{self.duplicated:4,} extra {self.extra:4,}  sizes expected {self.sizes_expected:6,}"
            f" served {self.sizes_served:6,} missing {self.sizes_missing:5,} extra "
            f"{self.sizes_extra:4,}  wrong fields: {wrong or 'none'}"
        )

    def details(self) -> list[str]:
        """Lines naming a few items per loss or wrong field."""
        return [f"    {what}: {', '.join(names)}" for what, names in sorted(self.examples.items())]


def _compare_sizes(
    report: FidelityReport, capabilities: Capabilities, product: Product, item: Item
) -> None:
    served: dict[Quantity, PriceOption] = {o.quantity: o for o in product.price_options}
    wanted: dict[Quantity, Option] = {o.quantity: o for o in item.options}
    for quantity, option in wanted.items():
        got = served.get(quantity)
        if got is None:
            report.note("sizes_missing", item.name)
            continue
        special = option.special_price_cents if capabilities.specials else None
        stock = option.stock if capabilities.has_stock(item) else None
        if got.price_cents != option.price_cents:
            report.note("price", item.name)
        if got.special_price_cents != special:
            report.note("special_price", item.name)
        if got.stock != stock:
            report.note("stock", item.name)
    extra = len(set(served) - set(wanted))
    if extra:
        report.note("sizes_extra", item.name, extra)
    report.sizes_served += len(served)


def _compare_product(
    report: FidelityReport, shape: str, capabilities: Capabilities, product: Product, item: Item
) -> None:
    checks: tuple[tuple[str, object, object], ...] = (
        ("source_id", product.source_id, expected_id(shape, item)),
        ("name", product.name, item.name),
        ("brand", (product.brand or "").casefold(), (item.brand or "").casefold()),
        ("category", product.category, item.category),
        ("lineage", product.lineage, _lineage(capabilities, item)),
        ("thc", product.thc, _potency(capabilities, item.thc)),
        ("cbd", product.cbd, _potency(capabilities, item.cbd)),
        ("description", product.description, item.description),
        ("image_url", product.image_url, item.image_url),
    )
    for what, got, want in checks:
        if got != want:
            report.note(what, item.name)
    _compare_sizes(report, capabilities, product, item)


def compare(menu: Menu | Iterable[Product], items: Iterable[Item], shape: str) -> FidelityReport:
    """Compare served products (a menu or its products) with the items behind them.

    ``shape``: one of ``SHAPES`` (``weedmaps`` is the discovery API, ``weedmaps-v1`` the
    JSON:API menu). The report counts one menu."""
    capabilities = CAPABILITIES[shape]
    products = list(menu.products if isinstance(menu, Menu) else menu)
    truth = list(items)
    report = FidelityReport(shape, menus=1)
    report.products_expected = len(truth)
    report.products_served = len(products)
    report.sizes_expected = sum(len(item.options) for item in truth)
    by_id = {expected_id(shape, item): item for item in truth}
    by_name = {item.name: item for item in truth}
    matched: dict[int, list[Product]] = {}
    for product in products:
        item = by_id.get(product.source_id) or by_name.get(product.name)
        if item is None:
            report.note("extra", product.name)
            continue
        matched.setdefault(item.number, []).append(product)
    for item in truth:
        found = matched.get(item.number)
        if not found:
            report.note("missing", item.name)
            continue
        if len(found) > 1:
            report.note("duplicated", item.name, len(found) - 1)
        _compare_product(report, shape, capabilities, found[0], item)
    return report
