"""Menu factories for tests and benchmarks.

- ``make_menu(dispensary_id, n_products, seed, fetched_at_ms)``: a deterministic, realistic
  menu: the category mix of real menus, sizes, units and potencies that fit each category
  (grams and % THC for flower, packs and mg for edibles, ...), brand names, strain names,
  marketing descriptions of real lengths (some shared by a brand, some missing), vendor-style
  ids and image URLs. The same arguments give the same menu; ``fetched_at_ms`` changes only
  the fetch time, so the content hash of two snapshots is equal.
- ``evolve_menu(menu, seed, fetched_at_ms, change)``: the next snapshot of a menu, with a
  fraction of prices, stock and specials changed.
- ``menus()``, ``products()``, ``menu_statistics()``: Hypothesis strategies of every valid
  value, for property tests (Hypothesis is imported only when they are called).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Any, Final

from whnode.record.model import (
    DISPENSARY_ID_PATTERN,
    Category,
    CategoryStatistics,
    DispensaryId,
    Lineage,
    Menu,
    MenuStatistics,
    Potency,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
    Vendor,
    parse_dispensary_id,
)

__all__ = [
    "evolve_menu",
    "make_menu",
    "make_product",
    "menu_statistics",
    "menus",
    "products",
]

DEFAULT_DISPENSARY: Final = "weedmaps:factory-store"
DEFAULT_FETCHED_AT_MS: Final = 1_760_000_000_000

_CATEGORY_WEIGHTS: Final = {
    Category.FLOWER: 30,
    Category.PRE_ROLL: 12,
    Category.VAPE: 17,
    Category.CONCENTRATE: 10,
    Category.EDIBLE: 15,
    Category.BEVERAGE: 3,
    Category.TINCTURE: 3,
    Category.TOPICAL: 3,
    Category.CAPSULE: 2,
    Category.SEED_CLONE: 1,
    Category.ACCESSORY: 3,
    Category.OTHER: 1,
}
_STRAINS: Final = (
    "Blue Dream", "Wedding Cake", "Gelato #33", "OG Kush", "Sour Diesel", "Runtz",
    "Gorilla Glue #4", "Girl Scout Cookies", "Zkittlez", "Purple Punch", "Jack Herer",
    "Granddaddy Purple", "Durban Poison", "Northern Lights", "Pineapple Express", "Ice Cream Cake",
    "Mimosa", "Tangie", "Lemon Cherry Gelato", "MAC 1", "Apple Fritter", "Biscotti", "Sherbanger",
    "Blue Zushi", "Cereal Milk", "Gary Payton", "Super Lemon Haze", "Trainwreck", "Bubba Kush",
    "Do-Si-Dos", "Forbidden Fruit", "Grape Ape", "Green Crack", "Harlequin", "Jealousy",
    "Kush Mints", "Larry OG", "Modified Grapes", "Oreoz", "Papaya", "Permanent Marker",
    "Rainbow Belts", "Slurricane", "Strawberry Cough", "Tropicana Cookies", "White Widow",
    "Zoap", "Alien Rock Candy", "Divine Storm", "Lemonade", "Nanitro", "Purple Kush",
)  # fmt: skip
_BRANDS: Final = (
    "Kiva", "Wyld", "Raw Garden", "Select", "Stiiizy", "Cookies", "Jeeter", "Alien Labs",
    "Connected", "Cresco", "Rythm", "Verano", "Kiva Camino", "Plus Products", "Papa & Barkley",
    "Mary's Medicinals", "Dixie", "Cann", "Pax", "Heavy Hitters", "Old Pal", "Lowell Farms",
    "Glass House", "Ultra Health Brand", "mama J's", "Grassroots", "Matter", "Kanha",
    "Good Tide", "Airo", "Dime Industries", "Friendly Farms", "Punch Edibles", "1906",
    "Care By Design", "Level", "Emerald Sky", "Korova", "Smokiez", "Presidential",
)  # fmt: skip
_FLAVORS: Final = (
    "Watermelon", "Sour Cherry", "Blood Orange", "Pomegranate", "Huckleberry", "Mango",
    "Peach Bellini", "Marionberry", "Lemon", "Blackberry", "Pina Colada", "Grape", "Dark Chocolate",
    "Mint Chip", "Cold Brew", "Elderberry", "Tropical Punch", "Raspberry", "Green Apple",
)  # fmt: skip
_TERPENES: Final = (
    "myrcene", "limonene", "caryophyllene", "linalool", "pinene", "terpinolene", "humulene",
    "ocimene", "bisabolol",
)  # fmt: skip
_AROMAS: Final = (
    "earthy", "citrus", "pine", "diesel", "sweet", "skunky", "berry", "grape", "gassy", "floral",
    "herbal", "spicy", "peppery", "woody", "minty", "cocoa", "tropical", "creamy", "doughy",
    "lemon zest", "fresh-cut grass", "sour candy", "vanilla", "cookie dough", "stone fruit",
)  # fmt: skip
_EFFECTS: Final = (
    "uplifted", "relaxed", "creative", "sleepy", "focused", "euphoric", "giggly", "hungry",
    "calm", "energized", "talkative", "clear-headed", "body-heavy", "tingly", "social",
)  # fmt: skip
_GENERAL: Final = (
    "Lab tested for potency, pesticides, heavy metals and residual solvents.",
    "Each batch is tested by a licensed third-party lab; see the certificate of analysis.",
    "{brand} has been making cannabis products in {place} since {year}.",
    "Our {product} is a customer favourite and a staff pick this month.",
    "Pairs well with {time}, a playlist and good company.",
    "Packaged in child-resistant, recyclable packaging with a nitrogen seal for freshness.",
    "Keep out of reach of children and pets. For use by adults 21 and older.",
    "This product contains cannabis, a Schedule I controlled substance under federal law.",
    "Consumers report feeling {effect} and {effect2}; best for {time}.",
    "Loyalty members earn {percent} points on every purchase of this item.",
    "Not available for delivery in every county; check at checkout.",
    "Prices include excise tax; local sales tax is added at the register.",
)
_PLANT: Final = (
    "{strain} is a {lineage} cross with a {aroma} nose and a {aroma2} finish.",
    "Expect a {aroma} aroma up front, backed by notes of {aroma2}.",
    "Grown {grow} and hand-trimmed, then slow-cured for {days} days to protect the terpenes.",
    "Dominant terpenes: {terpene} and {terpene2}.",
    "A {aroma} profile that fans of {strain2} will recognise, with a smoother finish.",
    "Dense, frosty buds with {color} hues and bright orange pistils.",
    "Bred from {strain2} and {strain3} by a small breeder in {place}.",
    "Harvested at peak ripeness on day {days} of the flowering cycle.",
    "Total terpenes {terpene_percent}% with {terpene} leading the blend.",
)
_EXTRACT: Final = (
    "Made with {extract} from whole plants frozen at harvest.",
    "Infused with {percent}% {extract} for a consistent, flavourful experience.",
    "Strain-specific {extract} extracted from {strain} grown {grow}.",
    "Dominant terpenes: {terpene} and {terpene2}; no added flavours or cutting agents.",
    "Fits any standard 510-thread battery; store upright away from heat.",
)
_INFUSED: Final = (
    "Start low and go slow: effects can take up to two hours to be felt.",
    "Each piece contains {strength} mg of THC; the package contains {total} mg.",
    "Made with real {flavor} juice and {extract}, vegan and gluten-free.",
    "Fast-acting nano-emulsion: onset in 15 to 30 minutes for most people.",
    "A {flavor} flavour that tastes like the fruit, not like the plant.",
    "Shake well before use; refrigerate after opening.",
)
_SENTENCES: Final = {
    Category.FLOWER: _PLANT,
    Category.PRE_ROLL: _PLANT,
    Category.VAPE: _EXTRACT,
    Category.CONCENTRATE: _EXTRACT,
    Category.EDIBLE: _INFUSED,
    Category.BEVERAGE: _INFUSED,
    Category.TINCTURE: _INFUSED,
    Category.CAPSULE: _INFUSED,
    Category.TOPICAL: _INFUSED,
}
_PLACES: Final = (
    "Humboldt County",
    "the Emerald Triangle",
    "Santa Barbara",
    "southern Oregon",
    "the Salinas Valley",
    "northern Michigan",
    "the high desert of New Mexico",
)
_EXTRACTS: Final = (
    "live resin",
    "cured resin",
    "rosin",
    "distillate",
    "live rosin",
    "full-spectrum oil",
    "CO2 oil",
)
_COLORS: Final = ("purple", "lime-green", "deep violet", "golden", "forest-green")


def _vendor_of(dispensary_id: str) -> Vendor:
    prefix = dispensary_id.split(":", 1)[0]
    try:
        return Vendor(prefix)
    except ValueError:
        return Vendor.WEEDMAPS


def _display_name(dispensary_id: str) -> str:
    store = dispensary_id.split(":", 1)[1]
    words = store.replace("_", "-").replace(".", "-").split("-")
    return " ".join(word.capitalize() for word in words if word) or store


def _source_id(vendor: Vendor, rng: random.Random, index: int) -> str:
    if vendor is Vendor.DUTCHIE:
        return f"{rng.getrandbits(96):024x}"
    if vendor is Vendor.JANE:
        return str(1_000_000 + rng.randrange(9_000_000))
    if vendor is Vendor.LEAFLY:
        return f"{rng.randrange(10**7, 10**8)}"
    return str(80_000_000 + rng.randrange(20_000_000) + index)


def _image_url(vendor: Vendor, rng: random.Random, name: str) -> str | None:
    if rng.random() < 0.1:
        return None
    slug = "".join(c if c.isalnum() else "_" for c in name.lower())[:40]
    if vendor is Vendor.DUTCHIE:
        return f"https://s3-us-west-2.amazonaws.com/dutchie-images/{rng.getrandbits(128):032x}"
    if vendor is Vendor.JANE:
        return (
            f"https://images.iheartjane.com/products/{rng.randrange(10**6)}/"
            f"{rng.getrandbits(64):016x}.jpg"
        )
    number = rng.randrange(1_000_000)
    return (
        f"https://images.weedmaps.com/products/000/{number // 1000:03d}/{number % 1000:03d}/"
        f"avatar/{1_600_000_000 + rng.randrange(10**8)}-{slug}.jpg"
    )


def _description(
    rng: random.Random, category: Category, fill: dict[str, str], shared: dict[str, str]
) -> str | None:
    roll = rng.random()
    if roll < 0.12:
        return None
    if roll < 0.2 and fill["brand"] in shared:  # brands copy one text onto every product
        return shared[fill["brand"]]
    specific = _SENTENCES.get(category, ())
    count = 1 if roll < 0.4 else rng.randint(2, 7)
    pool = specific + _GENERAL
    sentences = rng.sample(specific, min(len(specific), (count + 1) // 2)) + rng.sample(
        _GENERAL, count // 2
    )
    if not sentences:
        sentences = rng.sample(pool, 1)
    text = " ".join(sentence.format(**fill) for sentence in sentences)
    if rng.random() < 0.16:  # Weedmaps bodies are HTML in about 16% of menus
        text = f"<p>{text}</p>"
    shared.setdefault(fill["brand"], text)
    return text


def _price(rng: random.Random, low: int, high: int) -> int:
    return rng.randrange(low, high) // 5 * 5 + 4  # $x.x4 / $x.x9 style


def _options(
    rng: random.Random, category: Category
) -> tuple[tuple[PriceOption, ...], Potency | None, Potency | None, str]:
    """Price options, THC, CBD and a name suffix that fit ``category``."""

    def special(price: int) -> int | None:
        return price * rng.choice((70, 75, 80, 85)) // 100 if rng.random() < 0.15 else None

    def stock() -> int | None:
        return rng.randint(0, 60) if rng.random() < 0.6 else None

    def option(amount: float, unit: QuantityUnit, low: int, high: int) -> PriceOption:
        price = _price(rng, low, high)
        return PriceOption(Quantity(amount, unit), price, special(price), stock())

    def percent(low: float, high: float) -> Potency:
        value = round(rng.uniform(low, high), 1)
        if rng.random() < 0.2:
            return Potency(
                value, round(min(100.0, value + rng.uniform(0.5, 3)), 1), PotencyUnit.PERCENT
            )
        return Potency(value, value, PotencyUnit.PERCENT)

    def milligrams(value: float) -> Potency:
        return Potency(value, value, PotencyUnit.MILLIGRAMS)

    grams = QuantityUnit.GRAMS
    units = QuantityUnit.UNITS
    if category is Category.FLOWER:
        sizes = sorted(rng.sample((1.0, 3.5, 7.0, 14.0, 28.0), rng.randint(1, 4)))
        options = tuple(option(size, grams, int(900 * size), int(1500 * size)) for size in sizes)
        return options, percent(15, 32), _maybe_cbd(rng), ""
    if category is Category.PRE_ROLL:
        pack = rng.choice((1, 1, 2, 5, 7))
        size = rng.choice((0.5, 1.0))
        options = (option(pack * size, grams, 500 * pack, 1500 * pack),)
        suffix = f" Pre-Roll {size:g}g" if pack == 1 else f" PR {pack}pk {pack * size:g}g"
        return options, percent(18, 35), None, suffix
    if category in (Category.VAPE, Category.CONCENTRATE):
        sizes = sorted(rng.sample((0.5, 1.0, 2.0), rng.randint(1, 2)))
        options = tuple(option(size, grams, int(2500 * size), int(6000 * size)) for size in sizes)
        kind = rng.choice(_EXTRACTS).title()
        suffix = f" {kind} Cart" if category is Category.VAPE else f" {kind}"
        return options, percent(65, 92), None, suffix
    if category in (Category.EDIBLE, Category.CAPSULE):
        pieces = rng.choice((10, 10, 20, 2, 30))
        strength = rng.choice((100.0, 100.0, 50.0, 200.0))
        options = (option(pieces, units, 1200, 3500),)
        thc = milligrams(strength)
        cbd = milligrams(strength) if rng.random() < 0.15 else None
        noun = (
            "Capsules"
            if category is Category.CAPSULE
            else rng.choice(("Gummies", "Chocolate", "Mints"))
        )
        return options, thc, cbd, f" {noun} {pieces}pk {strength:g}mg"
    if category in (Category.BEVERAGE, Category.TINCTURE, Category.TOPICAL):
        strength = rng.choice((5.0, 10.0, 100.0, 300.0, 1000.0))
        options = (option(1, units, 500, 9000),)
        return options, milligrams(strength), _maybe_cbd(rng, milligrams=True), f" {strength:g}mg"
    if category is Category.SEED_CLONE:
        return (option(rng.choice((1, 5, 10)), units, 1500, 12000),), None, None, " Clone"
    return (option(1, units, 300, 8000),), None, None, ""


def _maybe_cbd(rng: random.Random, *, milligrams: bool = False) -> Potency | None:
    if rng.random() > 0.3:
        return None
    if milligrams:
        value = float(rng.choice((5, 10, 50, 100)))
        return Potency(value, value, PotencyUnit.MILLIGRAMS)
    value = round(rng.uniform(0.05, 1.5), 2)
    return Potency(value, value, PotencyUnit.PERCENT)


def _lineage(rng: random.Random, category: Category) -> Lineage:
    if category in (Category.ACCESSORY, Category.OTHER) or rng.random() < 0.15:
        return Lineage.UNKNOWN
    return rng.choice(
        (Lineage.INDICA, Lineage.SATIVA, Lineage.HYBRID, Lineage.HYBRID, Lineage.INDICA_HYBRID,
         Lineage.SATIVA_HYBRID, Lineage.HIGH_CBD, Lineage.BALANCED)
    )  # fmt: skip


def make_product(
    rng: random.Random, index: int, *, vendor: Vendor = Vendor.WEEDMAPS, shared: dict[str, str]
) -> Product:
    """One realistic product drawn from ``rng``; ``shared`` holds each brand's stock text."""
    category = rng.choices(list(_CATEGORY_WEIGHTS), weights=list(_CATEGORY_WEIGHTS.values()))[0]
    options, thc, cbd, suffix = _options(rng, category)
    strain = rng.choice(_STRAINS)
    brand = rng.choice(_BRANDS) if rng.random() < 0.9 else None
    if category in (Category.EDIBLE, Category.BEVERAGE, Category.TINCTURE, Category.CAPSULE):
        base = rng.choice(_FLAVORS)
    elif category in (Category.ACCESSORY, Category.OTHER):
        base = rng.choice(("Glass Spoon Pipe", "Rolling Papers 1 1/4", "510 Battery", "Grinder"))
    else:
        base = strain
    name = f"{brand}: {base}{suffix}" if brand and rng.random() < 0.3 else f"{base}{suffix}"
    lineage = _lineage(rng, category)
    terpenes = rng.sample(_TERPENES, 2)
    effects = rng.sample(_EFFECTS, 2)
    pieces = max(1.0, options[0].quantity.amount) if options else 1.0
    fill = {
        "strain": strain,
        "strain2": rng.choice(_STRAINS),
        "lineage": lineage.value.replace("_", "-") if lineage is not Lineage.UNKNOWN else "hybrid",
        "aroma": rng.choice(_AROMAS),
        "aroma2": rng.choice(_AROMAS),
        "grow": rng.choice(("indoors", "in a greenhouse", "under the sun", "in living soil")),
        "days": str(rng.randint(10, 30)),
        "strain3": rng.choice(_STRAINS),
        "terpene": terpenes[0],
        "terpene2": terpenes[1],
        "terpene_percent": f"{rng.uniform(0.8, 4.5):.2f}",
        "effect": effects[0],
        "effect2": effects[1],
        "flavor": rng.choice(_FLAVORS).lower(),
        "strength": f"{thc.low / pieces:g}" if thc else "10",
        "total": f"{thc.low:g}" if thc else "100",
        "time": rng.choice(("evenings", "daytime", "a lazy Sunday", "after work", "bedtime")),
        "brand": brand or "Our team",
        "place": rng.choice(_PLACES),
        "year": str(rng.randint(2008, 2022)),
        "extract": rng.choice(_EXTRACTS),
        "color": rng.choice(_COLORS),
        "product": category.value.replace("_", "-"),
        "percent": str(rng.randint(20, 95)),
    }
    return Product(
        source_id=_source_id(vendor, rng, index),
        name=name,
        category=category,
        price_options=options,
        brand=brand,
        lineage=lineage,
        thc=thc,
        cbd=cbd,
        image_url=_image_url(vendor, rng, name),
        description=_description(rng, category, fill, shared),
    )


def make_menu(
    dispensary_id: str = DEFAULT_DISPENSARY,
    n_products: int = 250,
    seed: int = 1,
    fetched_at_ms: int = DEFAULT_FETCHED_AT_MS,
) -> Menu:
    """A realistic menu of ``n_products`` products, the same for the same arguments.

    The vendor follows the id's prefix (``weedmaps`` when it is not a Vendor); no statistics
    (``whnode.upstream.statistics.compute_statistics`` adds them).
    """
    parse_dispensary_id(dispensary_id)
    digest = hashlib.sha256(f"{seed}\x00{dispensary_id}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    vendor = _vendor_of(dispensary_id)
    shared: dict[str, str] = {}
    products = tuple(
        make_product(rng, index, vendor=vendor, shared=shared) for index in range(n_products)
    )
    return Menu(
        dispensary_id=DispensaryId(dispensary_id),
        name=_display_name(dispensary_id),
        vendor=vendor,
        fetched_at_ms=fetched_at_ms,
        products=products,
    )


def evolve_menu(menu: Menu, seed: int, fetched_at_ms: int, change: float = 0.05) -> Menu:
    """The next snapshot of ``menu``: about ``change`` of its products get a new price,
    stock or special; ``change=0`` gives the same content at a new fetch time."""
    rng = random.Random(seed)
    products = []
    for product in menu.products:
        if rng.random() < change:
            options = tuple(
                dataclasses.replace(
                    option,
                    price_cents=max(1, option.price_cents + rng.choice((-200, -100, 100, 200))),
                    stock=rng.randint(0, 60),
                )
                for option in product.price_options
            )
            product = dataclasses.replace(product, price_options=options)
        products.append(product)
    return dataclasses.replace(menu, fetched_at_ms=fetched_at_ms, products=tuple(products))


# ---------------------------------------------------------------- Hypothesis strategies
def _strategies() -> Any:
    from hypothesis import strategies

    return strategies


def products() -> Any:
    """A Hypothesis strategy of valid products, over the whole range the model allows."""
    st = _strategies()
    text = st.text(min_size=1, max_size=40).filter(lambda value: value.strip() != "")
    percent = st.floats(min_value=0, max_value=100, allow_nan=False)
    other = st.floats(min_value=0, max_value=1_000_000, allow_nan=False)

    def potency(unit: PotencyUnit, low: float, high: float) -> Potency:
        return Potency(min(low, high), max(low, high), unit)

    potencies = st.builds(potency, st.just(PotencyUnit.PERCENT), percent, percent) | st.builds(
        potency,
        st.sampled_from([PotencyUnit.MILLIGRAMS, PotencyUnit.MILLIGRAMS_PER_GRAM]),
        other,
        other,
    )
    option = st.builds(
        PriceOption,
        quantity=st.builds(
            Quantity,
            st.floats(min_value=0, max_value=100_000, exclude_min=True, allow_nan=False)
            | st.integers(1, 100),
            st.sampled_from(list(QuantityUnit)),
        ),
        price_cents=st.integers(1, 100_000_000),
        special_price_cents=st.none() | st.integers(0, 100_000_000),
        stock=st.none() | st.integers(0, 10_000_000),
    )
    return st.builds(
        Product,
        source_id=text,
        name=text,
        category=st.sampled_from(list(Category)),
        price_options=st.lists(option, max_size=4).map(tuple),
        brand=st.none() | text,
        lineage=st.sampled_from(list(Lineage)),
        thc=st.none() | potencies,
        cbd=st.none() | potencies,
        image_url=st.none()
        | st.builds(lambda path: f"https://images.example.org/{path}", st.text(max_size=30)),
        description=st.none() | st.text(max_size=300),
    )


def menu_statistics() -> Any:
    """A Hypothesis strategy of valid MenuStatistics."""
    st = _strategies()
    per_gram = st.floats(min_value=0, max_value=1e7, allow_nan=False)
    row = st.builds(
        lambda category, count, prices: CategoryStatistics(
            category, count, *(sorted(prices) if prices else (None, None, None))
        ),
        st.sampled_from(list(Category)),
        st.integers(0, 10_000),
        st.none() | st.lists(per_gram, min_size=3, max_size=3),
    )
    return st.builds(
        MenuStatistics,
        categories=st.lists(row, max_size=len(Category), unique_by=lambda item: item.category).map(
            tuple
        ),
        thc_percent_histogram=st.lists(st.integers(0, 10_000), min_size=20, max_size=20).map(tuple),
    )


def menus(max_products: int = 8) -> Any:
    """A Hypothesis strategy of valid menus, with or without statistics."""
    st = _strategies()
    text = st.text(min_size=1, max_size=40).filter(lambda value: value.strip() != "")
    return st.builds(
        Menu,
        dispensary_id=st.from_regex(DISPENSARY_ID_PATTERN, fullmatch=True).map(DispensaryId),
        name=text,
        vendor=st.sampled_from(list(Vendor)),
        fetched_at_ms=st.integers(0, 2**53),
        products=st.lists(products(), max_size=max_products).map(tuple),
        statistics=st.none() | menu_statistics(),
    )
