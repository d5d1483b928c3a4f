"""Deterministic menus: which dispensaries the sandbox serves and what each one sells.

Everything here is a pure function of ``(seed, dispensary, version)``. Each dispensary draws
its products from ``random.Random(f"{seed}:{dispensary_id}:{number}")``, so adding
dispensaries never changes the others. Items are vendor-neutral and *clean* (the truth a
correct adapter recovers); the vendor modules in ``whnode.sandbox.vendors`` render them in each
API's shape with that API's quirks.

Change over time: a menu's version (epoch) is ``floor((now - start) / change_interval)``
plus the versions added by ``advance``. With a change rate r > 0, item prices and stock move
once every ``round(1 / r)`` versions (each item with its own phase); about r of the items come
and go (``churn`` items appear, ``removable`` ones disappear, in alternation); and every
version puts a 37-cent bump on one item (a different one from the previous version), so that
consecutive versions always differ. Regular prices end in 99 cents; a bumped one never does.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from whnode.record.model import (
    Category,
    Lineage,
    Potency,
    PotencyUnit,
    Quantity,
    QuantityUnit,
    Vendor,
)

__all__ = [
    "LARGE",
    "NAMED_IDS",
    "QUIRKY",
    "REALISTIC",
    "SMALL",
    "TINY",
    "DispensarySpec",
    "Item",
    "Option",
    "SizeClass",
    "SizeKind",
    "menu_at",
    "named_catalog",
    "population",
]

VENDOR_ORDER: Final = (Vendor.WEEDMAPS, Vendor.DUTCHIE, Vendor.JANE, Vendor.LEAFLY)
POS_ORDER: Final = (Vendor.TREEZ, Vendor.FLOWHUB)
"""The keyed POS APIs: named menus (tiny to large) after the others, no generated population."""
LARGE_ITEMS: Final = 2500
"""Items of the large menus (the largest real menus seen hold ~2,450)."""
MEDIAN_ITEMS: Final = 245
"""Median size of a generated population menu (real menus: ~245)."""
BUMP_CENTS: Final = 37
"""The per-version bump on one item's price."""
DAY_MS: Final = 86_400_000
EPOCH_ORIGIN_MS: Final = 1_672_531_200_000
"""2023-01-01T00:00:00Z: items are created after it."""


class SizeClass(enum.StrEnum):
    TINY = "tiny"
    """3 to 6 items: one page everywhere."""
    SMALL = "small"
    """About 50 items."""
    REALISTIC = "realistic"
    """About 250 items (the median real menu)."""
    LARGE = "large"
    """2,500 items: many pages everywhere."""
    QUIRKY = "quirky"
    """Hand-written items exercising every quirk (static: versions do not change it)."""
    POPULATION = "population"
    """A generated dispensary sized like real menus."""


TINY: Final[dict[Vendor, str]] = {
    Vendor.WEEDMAPS: "weedmaps:ultra-health-gallup",
    Vendor.DUTCHIE: "dutchie:67068790432055b33dc37888",
    Vendor.JANE: "jane:1547",
    Vendor.LEAFLY: "leafly:sunny-side-cannabis",
    Vendor.TREEZ: "treez:sunrise-pos",
    Vendor.FLOWHUB: "flowhub:3f0c6a52-9d1e-4b7a-8c21-5e6f7a8b9c01",
}
SMALL: Final[dict[Vendor, str]] = {
    Vendor.WEEDMAPS: "weedmaps:high-desert-remedies",
    Vendor.DUTCHIE: "dutchie:5e8f6a2b9c4d3e1f0a7b8c9d",
    Vendor.JANE: "jane:2210",
    Vendor.LEAFLY: "leafly:the-herbal-cure",
    Vendor.TREEZ: "treez:canyon-collective",
    Vendor.FLOWHUB: "flowhub:7a1b2c3d-4e5f-4a6b-9c8d-0e1f2a3b4c5d",
}
REALISTIC: Final[dict[Vendor, str]] = {
    Vendor.WEEDMAPS: "weedmaps:green-valley-collective",
    Vendor.DUTCHIE: "dutchie:6123abcd4567ef8901234567",
    Vendor.JANE: "jane:3318",
    Vendor.LEAFLY: "leafly:peak-provisions",
    Vendor.TREEZ: "treez:river-road-wellness",
    Vendor.FLOWHUB: "flowhub:c0ffee00-1234-4abc-8def-0123456789ab",
}
LARGE: Final[dict[Vendor, str]] = {
    Vendor.WEEDMAPS: "weedmaps:mega-leaf-superstore",
    Vendor.DUTCHIE: "dutchie:64f0c0ffee0ddba11c0ffee0",
    Vendor.JANE: "jane:4404",
    Vendor.LEAFLY: "leafly:canna-warehouse-xl",
    Vendor.TREEZ: "treez:big-sky-supply",
    Vendor.FLOWHUB: "flowhub:9e8d7c6b-5a49-4382-a716-05f4e3d2c1b0",
}
QUIRKY: Final[dict[Vendor, str]] = {
    Vendor.WEEDMAPS: "weedmaps:quirky-buds-emporium",
    Vendor.DUTCHIE: "dutchie:6a0de1ec7ab1e5ca1ab1ec0d",
    Vendor.JANE: "jane:5150",
    Vendor.LEAFLY: "leafly:odd-lot-dispensary",
}
_NAMED: Final = (
    (SizeClass.TINY, TINY),
    (SizeClass.SMALL, SMALL),
    (SizeClass.REALISTIC, REALISTIC),
    (SizeClass.LARGE, LARGE),
    (SizeClass.QUIRKY, QUIRKY),
)
_POS_NAMED: Final = _NAMED[:4]
NAMED_IDS: Final = tuple(ids[vendor] for _, ids in _NAMED for vendor in VENDOR_ORDER) + tuple(
    ids[vendor] for _, ids in _POS_NAMED for vendor in POS_ORDER
)
"""Every named dispensary id, tiny ones first, quirky ones next, the POS menus last."""


@dataclass(frozen=True, slots=True)
class DispensarySpec:
    """One dispensary the sandbox serves."""

    dispensary_id: str
    vendor: Vendor
    store: str
    """The id's store part (slug, 24-hex id, store number) as the vendor's API takes it."""
    name: str
    """Display name (served where the API carries one)."""
    size_class: SizeClass
    items: int
    """Items at version 0 (quirky: 0, the vendor module holds them)."""


def _display_name(store: str) -> str:
    return " ".join(part.capitalize() for part in store.replace("_", "-").split("-"))


def _spec(dispensary_id: str, size_class: SizeClass, items: int, name: str) -> DispensarySpec:
    vendor_name, _, store = dispensary_id.partition(":")
    return DispensarySpec(dispensary_id, Vendor(vendor_name), store, name, size_class, items)


def named_catalog(seed: int) -> tuple[DispensarySpec, ...]:
    """The named dispensaries: tiny, small, realistic, large and quirky for every vendor (the
    POS APIs: tiny to large)."""
    specs: list[DispensarySpec] = []
    named = [(size_class, ids, vendor) for size_class, ids in _NAMED for vendor in VENDOR_ORDER]
    named += [(size_class, ids, vendor) for size_class, ids in _POS_NAMED for vendor in POS_ORDER]
    for size_class, ids, vendor in named:
        dispensary_id = ids[vendor]
        rng = random.Random(f"{seed}:{dispensary_id}:size")
        items = {
            SizeClass.TINY: rng.randint(3, 6),
            SizeClass.SMALL: rng.randint(45, 55),
            SizeClass.REALISTIC: rng.randint(230, 270),
            SizeClass.LARGE: LARGE_ITEMS,
            SizeClass.QUIRKY: 0,
        }[size_class]
        store = dispensary_id.partition(":")[2]
        name = _display_name(store) if not store.isdigit() and len(store) != 24 else ""
        name = name or f"{vendor.capitalize()} Store {store[:6]}"
        specs.append(_spec(dispensary_id, size_class, items, name))
    return tuple(specs)


def population(count: int, seed: int, max_items: int) -> tuple[DispensarySpec, ...]:
    """``count`` generated dispensaries (``weedmaps:store-0001``, ``dutchie:store-0002``...)
    with log-normal sizes around the real median, between 3 and ``max_items`` items."""
    specs: list[DispensarySpec] = []
    for index in range(1, count + 1):
        vendor = VENDOR_ORDER[(index - 1) % len(VENDOR_ORDER)]
        rng = random.Random(f"{seed}:population:{index}")
        size = int(rng.lognormvariate(math.log(MEDIAN_ITEMS), 0.9))
        size = max(3, min(max_items, LARGE_ITEMS, size))
        dispensary_id = f"{vendor}:store-{index:04d}"
        specs.append(_spec(dispensary_id, SizeClass.POPULATION, size, f"Sandbox Store {index:04d}"))
    return tuple(specs)


# --------------------------------------------------------------------------- items
class SizeKind(enum.StrEnum):
    """A size a menu sells; ``EACH`` items are sized by their name (100mg, 0.5g x 5, 10pk)."""

    HALF_GRAM = "half_gram"
    GRAM = "gram"
    TWO_GRAM = "two_gram"
    EIGHTH = "eighth"
    QUARTER = "quarter"
    HALF_OUNCE = "half_ounce"
    OUNCE = "ounce"
    EACH = "each"


SIZE_GRAMS: Final[dict[SizeKind, float]] = {
    SizeKind.HALF_GRAM: 0.5,
    SizeKind.GRAM: 1.0,
    SizeKind.TWO_GRAM: 2.0,
    SizeKind.EIGHTH: 3.5,
    SizeKind.QUARTER: 7.0,
    SizeKind.HALF_OUNCE: 14.0,
    SizeKind.OUNCE: 28.0,
}


@dataclass(frozen=True, slots=True)
class Option:
    """One size of an item, with the values a correct adapter must recover."""

    size: SizeKind
    quantity: Quantity
    """The normalized size (for EACH: what the item's name says, else one unit)."""
    price_cents: int
    special_price_cents: int | None
    stock: int | None


@dataclass(frozen=True, slots=True)
class Item:
    """One product of a generated menu at one version (clean values: the truth)."""

    number: int
    """Position in the dispensary's generation order (stable across versions)."""
    key: str
    """sha256 hex of (seed, dispensary, number): vendor ids and quirk choices derive from it."""
    name: str
    brand: str | None
    category: Category
    lineage: Lineage
    thc: Potency | None
    cbd: Potency | None
    options: tuple[Option, ...]
    description: str | None
    """Plain text, one paragraph per line."""
    image_url: str | None
    created_ms: int
    updated_ms: int
    version: int
    """The item's own version (how many times it changed)."""


class _Role(enum.Enum):
    STABLE = "stable"
    REMOVABLE = "removable"
    CHURN = "churn"


@dataclass(frozen=True, slots=True)
class _Template:
    number: int
    key: str
    name: str
    brand: str | None
    category: Category
    lineage: Lineage
    thc: Potency | None
    cbd: Potency | None
    sizes: tuple[tuple[SizeKind, Quantity, int], ...]
    """(size, normalized quantity, base price in cents)."""
    description: str | None
    image_url: str | None
    created_ms: int
    stock: int | None
    role: _Role
    phase: int


ADJECTIVES: Final = (
    "Blue", "Purple", "Lemon", "Golden", "Sour", "Cosmic", "Midnight", "Velvet", "Northern",
    "Electric", "Tropical", "Frosted", "Wild", "Royal", "Desert", "Cherry", "Mango", "Silver",
    "Ghost", "Sunset", "Emerald", "Mystic", "Black", "Glacier", "Peach", "Citrus", "Smoky",
)  # fmt: skip
NOUNS: Final = (
    "Dream", "Haze", "Kush", "Diesel", "Cookies", "Gelato", "Runtz", "Widow", "Cake", "Breath",
    "Mints", "Punch", "Sherbet", "Zkittlez", "Glue", "Skunk", "Lights", "Thunder", "Express",
    "Tangie", "Candy", "Cheese", "Octane", "Truffle", "Sundae", "Rocket", "Lotus",
)  # fmt: skip
FLAVOURS: Final = (
    "Watermelon", "Sour Apple", "Blackberry", "Peach Mango", "Dark Chocolate", "Lime",
    "Pineapple", "Strawberry Lemonade", "Cold Brew", "Huckleberry", "Pomegranate", "Ginger",
)  # fmt: skip
BRANDS: Final = (
    "High Desert Farms", "Green Valley Growers", "Mama J's", "Sunrise Extracts", "Cloud Nine",
    "Ridgeline", "Old Pal Co.", "Canyon Craft", "Terra Bloom", "Lucky Duck", "Mesa Verde",
    "Blue River", "North Star Labs", "Kind Harvest",
)  # fmt: skip
CONCENTRATE_FORMS: Final = ("Wax", "Shatter", "Live Resin", "Badder", "Rosin")
DESCRIPTIONS: Final = (
    "Grown indoors in small batches and hand trimmed.",
    "A balanced, uplifting profile with notes of citrus and pine.",
    "Cured for 21 days for a smooth smoke.",
    "Lab tested for potency and purity.",
    "Relaxing evening choice with earthy, sweet aromas.",
    "Solventless and full spectrum.",
    "Each piece is precisely dosed.",
)
CATEGORY_WEIGHTS: Final = (
    (Category.FLOWER, 30),
    (Category.PRE_ROLL, 14),
    (Category.VAPE, 15),
    (Category.CONCENTRATE, 10),
    (Category.EDIBLE, 15),
    (Category.BEVERAGE, 3),
    (Category.TINCTURE, 3),
    (Category.TOPICAL, 3),
    (Category.CAPSULE, 2),
    (Category.ACCESSORY, 4),
    (Category.SEED_CLONE, 1),
)
SMOKABLE: Final = frozenset(
    {Category.FLOWER, Category.PRE_ROLL, Category.VAPE, Category.CONCENTRATE}
)
PRICE_RANGES: Final[dict[SizeKind, tuple[int, int]]] = {
    SizeKind.HALF_GRAM: (18, 40),
    SizeKind.GRAM: (9, 60),
    SizeKind.TWO_GRAM: (30, 90),
    SizeKind.EIGHTH: (25, 60),
    SizeKind.QUARTER: (50, 110),
    SizeKind.HALF_OUNCE: (90, 190),
    SizeKind.OUNCE: (160, 330),
}
"""Base price ranges in whole dollars."""


def _units(amount: float, unit: QuantityUnit) -> Quantity:
    return Quantity(amount, unit)


def _grams(size: SizeKind) -> Quantity:
    return Quantity(SIZE_GRAMS[size], QuantityUnit.GRAMS)


def _price(rng: random.Random, low: int, high: int) -> int:
    return rng.randint(low, high) * 100 - 1


def _sizes(
    rng: random.Random, category: Category
) -> tuple[str, tuple[tuple[SizeKind, Quantity, int], ...]]:
    """(name suffix, sizes) for an item of ``category``."""

    def weighed(*sizes: SizeKind) -> tuple[tuple[SizeKind, Quantity, int], ...]:
        return tuple((s, _grams(s), _price(rng, *PRICE_RANGES[s])) for s in sizes)

    each = SizeKind.EACH
    if category is Category.FLOWER:
        choices = [
            (SizeKind.EIGHTH,),
            (SizeKind.GRAM, SizeKind.EIGHTH),
            (SizeKind.EIGHTH, SizeKind.QUARTER, SizeKind.HALF_OUNCE, SizeKind.OUNCE),
            (SizeKind.GRAM, SizeKind.TWO_GRAM, SizeKind.EIGHTH),
            (SizeKind.OUNCE,),
        ]
        return "", weighed(*rng.choice(choices))
    if category is Category.PRE_ROLL:
        if rng.random() < 0.3:
            return " Minis 0.5g x 5", (
                (each, _units(2.5, QuantityUnit.GRAMS), _price(rng, 20, 38)),
            )
        return " Pre-Roll", weighed(rng.choice([SizeKind.GRAM, SizeKind.HALF_GRAM]))
    if category is Category.VAPE:
        return " Cartridge", weighed(
            *rng.choice([(SizeKind.HALF_GRAM,), (SizeKind.HALF_GRAM, SizeKind.GRAM)])
        )
    if category is Category.CONCENTRATE:
        form = rng.choice(CONCENTRATE_FORMS)
        return f" {form}", weighed(
            *rng.choice(
                [(SizeKind.GRAM,), (SizeKind.HALF_GRAM, SizeKind.GRAM), (SizeKind.TWO_GRAM,)]
            )
        )
    if category is Category.EDIBLE:
        mg = rng.choice([50, 100, 100, 200])
        return f" Gummies {mg}mg", (
            (each, _units(mg, QuantityUnit.MILLIGRAMS), _price(rng, 12, 30)),
        )
    if category is Category.BEVERAGE:
        mg = rng.choice([5, 10, 25])
        return f" Sparkling Tonic {mg}mg", (
            (each, _units(mg, QuantityUnit.MILLIGRAMS), _price(rng, 5, 12)),
        )
    if category is Category.TINCTURE:
        mg = rng.choice([300, 500, 1000])
        return f" Tincture {mg}mg", (
            (each, _units(mg, QuantityUnit.MILLIGRAMS), _price(rng, 30, 80)),
        )
    if category is Category.CAPSULE:
        count = rng.choice([10, 20, 30])
        return f" Capsules {count}pk", (
            (each, _units(count, QuantityUnit.UNITS), _price(rng, 18, 45)),
        )
    if category is Category.TOPICAL:
        return " Relief Balm", ((each, _units(1, QuantityUnit.UNITS), _price(rng, 20, 50)),)
    if category is Category.SEED_CLONE:
        return " Clone", ((each, _units(1, QuantityUnit.UNITS), _price(rng, 10, 25)),)
    return "", ((each, _units(1, QuantityUnit.UNITS), _price(rng, 5, 60)),)


ACCESSORIES: Final = ("Glass Spoon Pipe", "Rolling Papers", "Herb Grinder", "510 Battery",
                      "Stash Jar", "Lighter", "Hemp Wick", "Rolling Tray")  # fmt: skip


def _base_name(rng: random.Random, category: Category) -> str:
    if category is Category.ACCESSORY:
        return rng.choice(ACCESSORIES)
    if category in (Category.EDIBLE, Category.BEVERAGE, Category.TINCTURE, Category.TOPICAL,
                    Category.CAPSULE):  # fmt: skip
        return rng.choice(FLAVOURS)
    return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"


def _lineage(rng: random.Random, category: Category) -> Lineage:
    if category in SMOKABLE or category is Category.SEED_CLONE:
        return rng.choices(
            [Lineage.INDICA, Lineage.SATIVA, Lineage.HYBRID, Lineage.INDICA_HYBRID,
             Lineage.SATIVA_HYBRID, Lineage.UNKNOWN],
            weights=[25, 20, 35, 8, 7, 5],
        )[0]  # fmt: skip
    if category is Category.ACCESSORY:
        return Lineage.UNKNOWN
    return rng.choices([Lineage.UNKNOWN, Lineage.HIGH_CBD, Lineage.BALANCED], [80, 10, 10])[0]


def _potency(
    rng: random.Random, category: Category, sizes: Sequence[tuple[SizeKind, Quantity, int]]
) -> tuple[Potency | None, Potency | None]:
    if category in (Category.FLOWER, Category.PRE_ROLL):
        low = round(rng.uniform(14, 29), 1)
        high = low if rng.random() < 0.6 else round(low + rng.uniform(0.5, 3), 1)
        cbd = round(rng.uniform(0.01, 1.5), 2) if rng.random() < 0.5 else None
        thc = Potency(low, high, PotencyUnit.PERCENT)
        return thc, None if cbd is None else Potency(cbd, cbd, PotencyUnit.PERCENT)
    if category in (Category.VAPE, Category.CONCENTRATE):
        value = round(rng.uniform(60, 92), 1)
        return Potency(value, value, PotencyUnit.PERCENT), None
    milligrams = next((q for _, q, _ in sizes if q.unit is QuantityUnit.MILLIGRAMS), None)
    if milligrams is not None and category is not Category.TINCTURE:
        return Potency(milligrams.amount, milligrams.amount, PotencyUnit.MILLIGRAMS), None
    if category in (Category.TINCTURE, Category.TOPICAL, Category.CAPSULE):
        value = float(rng.choice([100, 250, 500]))
        cbd = float(rng.choice([100, 250, 500])) if rng.random() < 0.5 else None
        return Potency(value, value, PotencyUnit.MILLIGRAMS), (
            None if cbd is None else Potency(cbd, cbd, PotencyUnit.MILLIGRAMS)
        )
    return None, None


def _key(seed: int, dispensary_id: str, number: int) -> str:
    return hashlib.sha256(f"{seed}:{dispensary_id}:{number}".encode()).hexdigest()


def _period(change_rate: float) -> int:
    return max(1, round(1 / change_rate)) if change_rate > 0 else 1


@functools.lru_cache(maxsize=64)
def _templates(spec: DispensarySpec, seed: int, change_rate: float) -> tuple[_Template, ...]:
    period = _period(change_rate)
    churn = max(1, spec.items // 20) if change_rate > 0 and spec.items >= 20 else 0
    names: set[str] = set()
    templates: list[_Template] = []
    for number in range(spec.items + churn):
        rng = random.Random(f"{seed}:{spec.dispensary_id}:{number}")
        category = rng.choices(
            [c for c, _ in CATEGORY_WEIGHTS], weights=[w for _, w in CATEGORY_WEIGHTS]
        )[0]
        suffix, sizes = _sizes(rng, category)
        name = _base_name(rng, category) + suffix
        batch = 1
        while name.casefold() in names:
            batch += 1
            name = f"{_base_name(rng, category)}{suffix} Batch {batch}"
        names.add(name.casefold())
        thc, cbd = _potency(rng, category, sizes)
        if number >= spec.items:
            role = _Role.CHURN
        elif spec.items >= 20 and rng.random() < 0.05:
            role = _Role.REMOVABLE
        else:
            role = _Role.STABLE
        key = _key(seed, spec.dispensary_id, number)
        description = None
        if rng.random() < 0.6:
            lines = rng.sample(DESCRIPTIONS, rng.choice([1, 1, 2]))
            description = "\n".join(lines)
        templates.append(
            _Template(
                number=number,
                key=key,
                name=name,
                brand=None if rng.random() < 0.15 else rng.choice(BRANDS),
                category=category,
                lineage=_lineage(rng, category),
                thc=thc,
                cbd=cbd,
                sizes=sizes,
                description=description,
                image_url=(
                    f"https://images.sandbox.whnode.test/products/{key[:20]}.jpg"
                    if rng.random() < 0.85
                    else None
                ),
                created_ms=EPOCH_ORIGIN_MS + rng.randrange(400 * DAY_MS),
                stock=None if rng.random() < 0.1 else rng.randint(0, 80),
                role=role,
                phase=rng.randrange(period),
            )
        )
    return tuple(templates)


def _item(template: _Template, version: int, bumped: bool) -> Item:
    rng = random.Random(f"{template.key}:{version}")
    multiplier = 1.0 if version == 0 else rng.choice([0.9, 0.95, 1.0, 1.05, 1.1])
    options: list[Option] = []
    for index, (size, quantity, base) in enumerate(template.sizes):
        price = max(99, round((base + 1) * multiplier / 100) * 100 - 1)
        if bumped and index == 0:
            price += BUMP_CENTS
        special = round(price * 0.8) if rng.random() < 0.12 else None
        stock = None
        if template.stock is not None:
            stock = max(0, template.stock + (rng.randint(-5, 5) if version else 0) - 3 * index)
        options.append(Option(size, quantity, price, special, stock))
    return Item(
        number=template.number,
        key=template.key,
        name=template.name,
        brand=template.brand,
        category=template.category,
        lineage=template.lineage,
        thc=template.thc,
        cbd=template.cbd,
        options=tuple(options),
        description=template.description,
        image_url=template.image_url,
        created_ms=template.created_ms,
        updated_ms=template.created_ms + version * DAY_MS + (60_000 if bumped else 0),
        version=version,
    )


@functools.lru_cache(maxsize=64)
def menu_at(spec: DispensarySpec, seed: int, change_rate: float, epoch: int) -> tuple[Item, ...]:
    """The items of a generated menu at version ``epoch`` (see the module docstring)."""
    if spec.size_class is SizeClass.QUIRKY:
        return ()
    templates = _templates(spec, seed, change_rate)
    period = _period(change_rate)
    stable = [t for t in templates if t.role is _Role.STABLE]
    bumped = None
    if change_rate > 0 and epoch > 0 and stable:
        bumped = stable[(int(stable[0].key[:8], 16) + epoch) % len(stable)].number
    items: list[Item] = []
    for template in templates:
        version = (epoch + template.phase) // period if change_rate > 0 else 0
        if template.role is _Role.CHURN and version % 2 == 0:
            continue
        if template.role is _Role.REMOVABLE and version % 2 == 1:
            continue
        items.append(_item(template, version, template.number == bumped))
    return tuple(items)
