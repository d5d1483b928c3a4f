"""The normalized menu model: what every upstream is turned into and every record carries.

Frozen, slotted dataclasses that refuse invalid values at construction (``ModelError``), so
that a ``Menu`` in memory is always one that can be encoded, and one decoded from a record is
always one that passed the same checks. Money is integer cents; quantities are normalized to
grams, milligrams or units; times are integer milliseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Final, NewType

from whnode import limits
from whnode.record.exceptions import ModelError

__all__ = [
    "DISPENSARY_ID_PATTERN",
    "Category",
    "CategoryStatistics",
    "DispensaryId",
    "DropCount",
    "DropReason",
    "Lineage",
    "Menu",
    "MenuStatistics",
    "ParseReport",
    "Potency",
    "PotencyUnit",
    "PriceOption",
    "Product",
    "Quantity",
    "QuantityUnit",
    "Vendor",
    "parse_dispensary_id",
]

DispensaryId = NewType("DispensaryId", str)
"""``vendor:store``, e.g. ``weedmaps:ultra-health-gallup`` or ``jane:1547``."""

DISPENSARY_ID_PATTERN = re.compile(r"^([a-z][a-z0-9]{1,15}):([A-Za-z0-9][A-Za-z0-9._~-]{0,127})$")


class Vendor(enum.StrEnum):
    """The upstream a menu came from."""

    DUTCHIE = "dutchie"
    JANE = "jane"
    WEEDMAPS = "weedmaps"
    LEAFLY = "leafly"
    TREEZ = "treez"
    FLOWHUB = "flowhub"


class Category(enum.StrEnum):
    """One product category enum across every vendor."""

    FLOWER = "flower"
    PRE_ROLL = "pre_roll"
    VAPE = "vape"
    CONCENTRATE = "concentrate"
    EDIBLE = "edible"
    BEVERAGE = "beverage"
    TINCTURE = "tincture"
    TOPICAL = "topical"
    CAPSULE = "capsule"
    SEED_CLONE = "seed_clone"
    ACCESSORY = "accessory"
    OTHER = "other"


class Lineage(enum.StrEnum):
    """Strain lineage; ``UNKNOWN`` when the source gives none."""

    INDICA = "indica"
    SATIVA = "sativa"
    HYBRID = "hybrid"
    INDICA_HYBRID = "indica_hybrid"
    SATIVA_HYBRID = "sativa_hybrid"
    HIGH_CBD = "high_cbd"
    BALANCED = "balanced"
    UNKNOWN = "unknown"


class PotencyUnit(enum.StrEnum):
    PERCENT = "%"
    MILLIGRAMS = "mg"
    MILLIGRAMS_PER_GRAM = "mg/g"


class QuantityUnit(enum.StrEnum):
    GRAMS = "g"
    MILLIGRAMS = "mg"
    UNITS = "unit"


def parse_dispensary_id(value: str) -> DispensaryId:
    """Return ``value`` as a DispensaryId, or raise ModelError."""
    if not isinstance(value, str) or len(value) > limits.MAX_DISPENSARY_ID_CHARS:
        raise ModelError(
            f"dispensary id must be a string of at most {limits.MAX_DISPENSARY_ID_CHARS} characters"
        )
    if DISPENSARY_ID_PATTERN.fullmatch(value) is None:
        raise ModelError(f"invalid dispensary id {value[:80]!r}: expected 'vendor:store'")
    return DispensaryId(value)


def _check_text(name: str, value: object, max_chars: int, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ModelError(f"{name} must be a string")
    if len(value) > max_chars:
        raise ModelError(f"{name} longer than {max_chars} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ModelError(f"{name} is not valid Unicode") from None
    if not allow_empty and not value.strip():
        raise ModelError(f"{name} must not be empty")


def _check_optional_text(name: str, value: object, max_chars: int) -> None:
    if value is not None:
        _check_text(name, value, max_chars)


def _check_number(name: str, value: object, *, minimum: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(f"{name} must be a number")
    if not math.isfinite(value) or value < minimum:
        raise ModelError(f"{name} must be finite and >= {minimum}")


def _check_int(name: str, value: object, *, minimum: int = 0, maximum: int = 2**53) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"{name} must be an integer")
    if not minimum <= value <= maximum:
        raise ModelError(f"{name} must be between {minimum} and {maximum}")


@dataclass(frozen=True, slots=True)
class Potency:
    """A cannabinoid content: one value (``low == high``) or a range, with its unit."""

    low: float
    high: float
    unit: PotencyUnit

    def __post_init__(self) -> None:
        _check_number("potency low", self.low)
        _check_number("potency high", self.high)
        if not isinstance(self.unit, PotencyUnit):
            raise ModelError("potency unit must be a PotencyUnit")
        if self.low > self.high:
            raise ModelError("potency low must not exceed high")
        if self.unit is PotencyUnit.PERCENT and self.high > 100:
            raise ModelError("a percentage potency must not exceed 100")
        if self.high > 1_000_000:
            raise ModelError("potency too large")

    @property
    def is_range(self) -> bool:
        return self.low != self.high


@dataclass(frozen=True, slots=True)
class Quantity:
    """A normalized size: grams, milligrams or a count of units."""

    amount: float
    unit: QuantityUnit

    def __post_init__(self) -> None:
        _check_number("quantity amount", self.amount)
        if self.amount <= 0 or self.amount > 100_000:
            raise ModelError("quantity amount must be > 0 and <= 100000")
        if not isinstance(self.unit, QuantityUnit):
            raise ModelError("quantity unit must be a QuantityUnit")


@dataclass(frozen=True, slots=True)
class PriceOption:
    """One purchasable size of a product. Prices are integer cents."""

    quantity: Quantity
    price_cents: int
    special_price_cents: int | None = None
    stock: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.quantity, Quantity):
            raise ModelError("price option quantity must be a Quantity")
        _check_int("price", self.price_cents, minimum=1, maximum=100_000_000)
        if self.special_price_cents is not None:
            _check_int("special price", self.special_price_cents, minimum=0, maximum=100_000_000)
        if self.stock is not None:
            _check_int("stock", self.stock, minimum=0, maximum=10_000_000)


@dataclass(frozen=True, slots=True)
class Product:
    """One normalized product."""

    source_id: str
    name: str
    category: Category
    price_options: tuple[PriceOption, ...]
    brand: str | None = None
    lineage: Lineage = Lineage.UNKNOWN
    thc: Potency | None = None
    cbd: Potency | None = None
    image_url: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        _check_text("source id", self.source_id, limits.MAX_NAME_CHARS)
        _check_text("product name", self.name, limits.MAX_NAME_CHARS)
        _check_optional_text("brand", self.brand, limits.MAX_NAME_CHARS)
        if not isinstance(self.category, Category):
            raise ModelError("category must be a Category")
        if not isinstance(self.lineage, Lineage):
            raise ModelError("lineage must be a Lineage")
        if not isinstance(self.price_options, tuple) or not all(
            isinstance(option, PriceOption) for option in self.price_options
        ):
            raise ModelError("price options must be a tuple of PriceOption")
        if len(self.price_options) > limits.MAX_PRICE_OPTIONS:
            raise ModelError(f"more than {limits.MAX_PRICE_OPTIONS} price options")
        for potency in (self.thc, self.cbd):
            if potency is not None and not isinstance(potency, Potency):
                raise ModelError("potency must be a Potency")
        if self.image_url is not None:
            _check_text("image url", self.image_url, 2048)
            if not self.image_url.startswith(("https://", "http://")):
                raise ModelError("image url must be http(s)")
        if self.description is not None:
            _check_text("description", self.description, limits.MAX_TEXT_CHARS, allow_empty=True)


@dataclass(frozen=True, slots=True)
class CategoryStatistics:
    """Statistics of one category of a menu; price per gram in cents, None without grams."""

    category: Category
    product_count: int
    price_per_gram_min: float | None = None
    price_per_gram_median: float | None = None
    price_per_gram_max: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.category, Category):
            raise ModelError("category must be a Category")
        _check_int("product count", self.product_count)
        values = (self.price_per_gram_min, self.price_per_gram_median, self.price_per_gram_max)
        present = [value for value in values if value is not None]
        if present and len(present) != 3:
            raise ModelError("price per gram min, median and max go together")
        for value in present:
            _check_number("price per gram", value)


class DropReason(enum.StrEnum):
    """Why a parse left out an upstream item or one of its price options."""

    NOT_AN_ITEM = "not_an_item"
    """The entry is not an object of the item type (null, a number, another resource)."""
    NO_ID = "no_id"
    NO_NAME = "no_name"
    NO_SIZE = "no_size"
    """No field of the option states a size the parser reads."""
    NO_PRICE = "no_price"
    """The price is missing or unreadable."""
    SENTINEL = "sentinel"
    """The vendor says the size is not offered (price 0 or 9999999); every option of an item
    dropped this way drops the item for the same reason."""
    DUPLICATE = "duplicate"
    """An item seen again (pages overlap; the newest copy is kept) or a size repeated within
    one item (the first is kept)."""
    OTHER_STORE = "other_store"
    """An item of another store (Jane ads)."""
    INACTIVE = "inactive"
    """The vendor marks the item inactive."""
    INVALID = "invalid"
    """Values the menu model refuses (a name too long, too many sizes...)."""

    @property
    def loses_data(self) -> bool:
        """Whether a drop for this reason loses something the vendor offers (duplicates,
        other stores, inactive items and sentinels lose nothing)."""
        return self not in _LOSSLESS_DROPS


_LOSSLESS_DROPS: Final = frozenset(
    {DropReason.SENTINEL, DropReason.DUPLICATE, DropReason.OTHER_STORE, DropReason.INACTIVE}
)


@dataclass(frozen=True, slots=True)
class DropCount:
    """Items or options dropped for one reason, with a few example source ids."""

    reason: DropReason
    count: int
    examples: tuple[str, ...] = ()
    """Up to ``limits.MAX_DROP_EXAMPLES`` source ids (``"id"`` or ``"id option"``; ``"page N
    #M"`` for an item without an id)."""

    def __post_init__(self) -> None:
        if not isinstance(self.reason, DropReason):
            raise ModelError("drop reason must be a DropReason")
        _check_int("drop count", self.count)
        if self.count < 1:
            raise ModelError("a drop count is at least 1")
        if not isinstance(self.examples, tuple) or len(self.examples) > limits.MAX_DROP_EXAMPLES:
            raise ModelError(f"at most {limits.MAX_DROP_EXAMPLES} drop examples")
        for example in self.examples:
            _check_text("drop example", example, limits.MAX_DROP_EXAMPLE_CHARS)


def _check_drops(what: str, drops: object) -> None:
    if not isinstance(drops, tuple) or not all(isinstance(d, DropCount) for d in drops):
        raise ModelError(f"{what} must be a tuple of DropCount")
    if len({d.reason for d in drops}) != len(drops):
        raise ModelError(f"a reason appears twice in {what}")


@dataclass(frozen=True, slots=True)
class ParseReport:
    """What one parse of upstream pages kept and left out (nothing is dropped silently)."""

    items_seen: int
    """Entries in the pages' item lists (duplicates included)."""
    products_kept: int
    """Products in the menu (Leafly's one-item-per-size entries merge into one)."""
    options_kept: int
    """Price options in the menu."""
    items_dropped: tuple[DropCount, ...] = ()
    """Items left out, by reason."""
    options_dropped: tuple[DropCount, ...] = ()
    """Price options left out of items, by reason (an item whose every option was dropped is
    counted under ``items_dropped`` too)."""

    def __post_init__(self) -> None:
        for name in ("items_seen", "products_kept", "options_kept"):
            _check_int(name, getattr(self, name))
        _check_drops("items_dropped", self.items_dropped)
        _check_drops("options_dropped", self.options_dropped)

    @property
    def items_lost(self) -> int:
        """Items dropped for a reason that loses data (``DropReason.loses_data``)."""
        return sum(d.count for d in self.items_dropped if d.reason.loses_data)

    @property
    def options_lost(self) -> int:
        """Options dropped for a reason that loses data."""
        return sum(d.count for d in self.options_dropped if d.reason.loses_data)

    @property
    def items_kept(self) -> int:
        """Items whose content is in the menu: seen, minus those lost."""
        return self.items_seen - self.items_lost


@dataclass(frozen=True, slots=True)
class MenuStatistics:
    """Per-menu statistics computed when a menu is parsed.

    ``thc_percent_histogram`` counts products with a THC potency in % by bucket of 5 points:
    index i counts values in [5i, 5i+5), the last bucket includes 100.
    """

    categories: tuple[CategoryStatistics, ...]
    thc_percent_histogram: tuple[int, ...]
    parse_report: ParseReport | None = None
    """What the parse of the upstream pages kept and left out (None in records made before
    parse reports existed)."""

    def __post_init__(self) -> None:
        if not isinstance(self.categories, tuple) or not all(
            isinstance(item, CategoryStatistics) for item in self.categories
        ):
            raise ModelError("categories must be a tuple of CategoryStatistics")
        if len({item.category for item in self.categories}) != len(self.categories):
            raise ModelError("a category appears twice in the statistics")
        if (
            not isinstance(self.thc_percent_histogram, tuple)
            or len(self.thc_percent_histogram) != 20
        ):
            raise ModelError("thc histogram must have 20 buckets")
        for count in self.thc_percent_histogram:
            _check_int("histogram count", count)
        if self.parse_report is not None and not isinstance(self.parse_report, ParseReport):
            raise ModelError("parse_report must be a ParseReport")


@dataclass(frozen=True, slots=True)
class Menu:
    """A dispensary's whole menu at one fetch time."""

    dispensary_id: DispensaryId
    name: str
    vendor: Vendor
    fetched_at_ms: int
    products: tuple[Product, ...]
    statistics: MenuStatistics | None = field(default=None)

    def __post_init__(self) -> None:
        parse_dispensary_id(self.dispensary_id)
        _check_text("menu name", self.name, limits.MAX_NAME_CHARS)
        if not isinstance(self.vendor, Vendor):
            raise ModelError("vendor must be a Vendor")
        _check_int("fetched_at_ms", self.fetched_at_ms, minimum=0, maximum=2**53)
        if not isinstance(self.products, tuple) or not all(
            isinstance(product, Product) for product in self.products
        ):
            raise ModelError("products must be a tuple of Product")
        if len(self.products) > limits.MAX_PRODUCTS_PER_MENU:
            raise ModelError(f"more than {limits.MAX_PRODUCTS_PER_MENU} products")
        if self.statistics is not None and not isinstance(self.statistics, MenuStatistics):
            raise ModelError("statistics must be MenuStatistics")
