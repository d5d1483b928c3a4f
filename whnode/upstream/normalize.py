"""Shared quirk handling: raw upstream values in, normalized model values out.

Every function here is pure (no I/O, no clock) and total on untrusted input: anything it does
not recognise becomes ``None`` (or ``Category.OTHER`` / ``Lineage.UNKNOWN``), never an
exception. The adapters call these; the quirks they absorb are the ones listed in
docs/upstreams.md:

- numbers as strings or numbers, ``"$1,200.00"``, integer cents (``cents=True``);
- sentinels: price 0 (size not offered), option ``"N/A"``, weight 0 or 9999999;
- potency in %, mg or mg/g, one value or a range, units named in several ways;
- size strings (``".5g"``, ``"1/8 oz"``, ``"eighth ounce"``, ``"half_gram"``, ``"3.5gC"``,
  ``"100mg"``) and pack counts found only in the name (``"PR 2pk"``, ``"0.5g x 5"``);
- one category enum from plural/singular, product type or lineage words;
- HTML in descriptions (stripped with ``html.parser``), entities, curly quotes, ``™``,
  compatibility characters (NFKC), zero-width characters and runs of whitespace;
- timestamps as epoch seconds, epoch milliseconds (numbers or strings) or ISO-8601;
- duplicate items across pages (the newest ``updated`` wins) and brand case drift.

Conventions: 1 oz = 28 g (so an eighth is 3.5 g), as menus price it. A potency of exactly 0
is treated as "not reported", which is what these APIs mean by it.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from html.parser import HTMLParser
from typing import Final

from whnode import limits
from whnode.record.exceptions import ModelError
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
    Vendor,
    parse_dispensary_id,
)
from whnode.upstream.exceptions import AdapterParseError, AdapterRefusal

__all__ = [
    "AdapterParseError",
    "AdapterRefusal",
    "Candidate",
    "build_menu",
    "canonical_brands",
    "clean_description",
    "clean_text",
    "make_option",
    "merge_same_products",
    "parse_category",
    "parse_decimal",
    "parse_lineage",
    "parse_potency",
    "parse_potency_unit",
    "parse_price_cents",
    "parse_stock",
    "parse_timestamp_ms",
    "split_brand_from_name",
    "strip_html",
]

MAX_PRICE_CENTS: Final = 10_000_000
"""Prices at or above $100,000 are sentinels (9999999), not prices."""
WEIGHT_SENTINEL: Final = 9_999_999
"""Weights and stock counts at or above this mean "unknown"."""
MAX_POTENCY_MG: Final = 1_000_000.0
"""Largest potency kept (the model's own bound)."""
MAX_TIMESTAMP_MS: Final = 253_402_300_800_000
"""Year 10000: later timestamps are junk."""
MAX_NUMBER_CHARS: Final = 64
"""Longest string read as a number, a potency or a timestamp (longer ones are junk)."""
MAX_RAW_TEXT_CHARS: Final = 4 * limits.MAX_TEXT_CHARS
"""Longest raw text (HTML included) parsed for a name or description; the rest is cut first."""


# --------------------------------------------------------------------------- text
_SYMBOLS_REMOVED: Final = dict.fromkeys(map(ord, "™®©℠\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_PUNCTUATION: Final = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u00b4": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2012": "-",
        "\u2212": "-",
        "\u2044": "/",
        "\u2026": "...",
    }
)
_BLOCK_TAGS: Final = frozenset(
    {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption"}
    | {"footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol"}
    | {"p", "pre", "section", "table", "td", "th", "tr", "ul"}
)
_SKIPPED_TAGS: Final = frozenset({"script", "style", "template", "noscript"})


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block elements become line breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """The text of an HTML fragment (tags removed, entities decoded, blocks on their own
    lines); plain text passes through with its entities decoded."""
    if "<" not in text:
        return html.unescape(text)
    extractor = _TextExtractor()
    try:
        extractor.feed(text)
        extractor.close()
    except (AssertionError, ValueError):  # html.parser on pathological markup
        return html.unescape(re.sub(r"<[^>]*>", " ", text))
    return "".join(extractor.parts)


def _clean_line(text: str) -> str:
    text = text.translate(_SYMBOLS_REMOVED)
    text = unicodedata.normalize("NFKC", text).translate(_PUNCTUATION)
    text = "".join(c if c.isprintable() else " " if c.isspace() else "" for c in text)
    return " ".join(text.split())


def clean_text(value: object, *, max_chars: int = limits.MAX_NAME_CHARS) -> str | None:
    """A name or brand as one clean line: HTML and entities removed, NFKC, straight quotes,
    no ``™``/``®``, single spaces; None when nothing is left."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        value = str(value)
    if not isinstance(value, str):
        return None
    text = _clean_line(strip_html(value[:MAX_RAW_TEXT_CHARS]))
    return text[:max_chars].strip() or None


def clean_description(value: object) -> str | None:
    """A description: HTML stripped, one paragraph per line, each line cleaned."""
    if not isinstance(value, str):
        return None
    lines = (_clean_line(line) for line in strip_html(value[:MAX_RAW_TEXT_CHARS]).splitlines())
    text = "\n".join(line for line in lines if line)
    return text[: limits.MAX_TEXT_CHARS].strip() or None


def split_brand_from_name(name: str) -> tuple[str | None, str]:
    """``"Brand | Product"`` (Weedmaps items without a brand endorsement) → (brand, name)."""
    brand, bar, rest = name.partition("|")
    if not bar or not brand.strip() or not rest.strip():
        return None, name
    return clean_text(brand), clean_text(rest) or name


def http_url(value: object) -> str | None:
    """An http(s) URL, or None."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url.startswith(("https://", "http://")) or len(url) > 2048 or " " in url:
        return None
    return url


# --------------------------------------------------------------------------- numbers
_NUMBER_NOISE: Final = re.compile(r"[\s$,]|usd", re.IGNORECASE)


def parse_decimal(value: object) -> Decimal | None:
    """A number given as a number or a string (``"31.46"``, ``"$1,200.00"``, ``" 8 "``)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if not isinstance(value, str) or len(value) > MAX_NUMBER_CHARS:
        return None
    text = _NUMBER_NOISE.sub("", value)
    if not text or not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def parse_price_cents(value: object, *, cents: bool = False) -> int | None:
    """A price in integer cents; None for a sentinel (0 = not offered, negative, 9999999)
    or anything unreadable. ``cents=True`` when the source gives integer cents."""
    amount = parse_decimal(value)
    if amount is None or amount <= 0 or amount >= WEIGHT_SENTINEL:
        return None
    if not cents:
        amount = amount * 100
    result = int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if result <= 0 or result >= MAX_PRICE_CENTS:
        return None
    return result


def parse_stock(value: object) -> int | None:
    """A stock count; negative (oversold) counts as 0, sentinels and junk as unknown."""
    amount = parse_decimal(value)
    if amount is None:
        return None
    count = int(amount)
    if count >= WEIGHT_SENTINEL:
        return None
    return max(0, count)


def parse_timestamp_ms(value: object) -> int | None:
    """Milliseconds since the epoch from epoch seconds or milliseconds (numbers or digit
    strings) or ISO-8601 (``Z``, an offset or none = UTC); None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and len(value) > MAX_NUMBER_CHARS:
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            return None
        milliseconds = int(value if value >= 1e11 else value * 1000)
        return milliseconds if milliseconds < MAX_TIMESTAMP_MS else None
    if not isinstance(value, str):
        return None
    text = value.strip().replace(" UTC", "Z")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


# --------------------------------------------------------------------------- potency
_POTENCY_UNITS: Final[dict[str, PotencyUnit]] = {
    "%": PotencyUnit.PERCENT,
    "percent": PotencyUnit.PERCENT,
    "percentage": PotencyUnit.PERCENT,
    "pct": PotencyUnit.PERCENT,
    "mg": PotencyUnit.MILLIGRAMS,
    "milligram": PotencyUnit.MILLIGRAMS,
    "milligrams": PotencyUnit.MILLIGRAMS,
    "mg/g": PotencyUnit.MILLIGRAMS_PER_GRAM,
    "mgg": PotencyUnit.MILLIGRAMS_PER_GRAM,
    "mg per g": PotencyUnit.MILLIGRAMS_PER_GRAM,
    "milligrams per gram": PotencyUnit.MILLIGRAMS_PER_GRAM,
    "milligrams_per_gram": PotencyUnit.MILLIGRAMS_PER_GRAM,
}
_POTENCY_TEXT: Final = re.compile(
    r"^(?P<low>\d+(?:\.\d+)?|\.\d+)\s*(?P<first>%|mg/g|mg)?\s*(?:(?:-|–|to)\s*"
    r"(?P<high>\d+(?:\.\d+)?|\.\d+))?\s*(?P<unit>%|mg/g|mg)?$",
    re.IGNORECASE,
)


def parse_potency_unit(value: object) -> PotencyUnit | None:
    """``"%"``, ``"PERCENTAGE"``, ``"mg"``, ``"MILLIGRAMS"``, ``"mg/g"``,
    ``"MILLIGRAMS_PER_GRAM"`` (any case) as a PotencyUnit."""
    if not isinstance(value, str):
        return None
    key = " ".join(value.strip().lower().split())
    return _POTENCY_UNITS.get(key) or _POTENCY_UNITS.get(key.replace(" ", "_"))


def parse_potency(
    value: object, unit: object = None, *, default_unit: PotencyUnit | None = None
) -> Potency | None:
    """A potency from a number, a numeric string (``"20.2"``, ``"20.2%"``, ``"18-22%"``,
    ``"100 mg"``) or a ``[low, high]`` list, with its unit from ``unit``, else from the text,
    else ``default_unit`` (None: an unlabelled number is not guessed to be %).

    None for missing values, 0, negatives, a percentage above 100 and unknown units."""
    explicit = parse_potency_unit(unit) if unit is not None else None
    text_unit: PotencyUnit | None = None
    low: Decimal | None
    high: Decimal | None
    if isinstance(value, list | tuple):
        numbers = [n for n in (parse_decimal(item) for item in value[:2]) if n is not None]
        if not numbers:
            return None
        low, high = min(numbers), max(numbers)
    elif isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
            return None
        match = _POTENCY_TEXT.match(value.strip())
        if match is None:
            return None
        low = parse_decimal(match["low"])
        high = parse_decimal(match["high"]) if match["high"] else low
        if match["unit"] or match["first"]:
            text_unit = parse_potency_unit(match["unit"] or match["first"])
    else:
        low = high = parse_decimal(value)
    if low is None or high is None:
        return None
    chosen = explicit or text_unit or default_unit
    if chosen is None:
        return None
    lo, hi = float(min(low, high)), float(max(low, high))
    if lo < 0 or hi <= 0 or hi > MAX_POTENCY_MG:
        return None
    if chosen is PotencyUnit.PERCENT and hi > 100:
        return None
    return Potency(lo, hi, chosen)


# --------------------------------------------------------------------------- categories
def _squash(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


_CATEGORY_WORDS: Final[dict[str, Category]] = {
    **dict.fromkeys(
        ["flower", "flowers", "bud", "buds", "smalls", "shake", "popcorn", "preground"],
        Category.FLOWER,
    ),
    **dict.fromkeys(
        [
            "preroll",
            "prerolls",
            "prerolled",
            "joint",
            "joints",
            "blunt",
            "blunts",
            "infusedpreroll",
            "infusedprerolls",
        ],
        Category.PRE_ROLL,
    ),
    **dict.fromkeys(
        [
            "vape",
            "vapes",
            "vaporizer",
            "vaporizers",
            "vapepen",
            "vapepens",
            "cartridge",
            "cartridges",
            "cart",
            "carts",
            "pod",
            "pods",
            "disposable",
            "disposables",
        ],
        Category.VAPE,
    ),
    **dict.fromkeys(
        [
            "concentrate",
            "concentrates",
            "extract",
            "extracts",
            "wax",
            "shatter",
            "rosin",
            "resin",
            "liveresin",
            "badder",
            "budder",
            "crumble",
            "diamonds",
            "sauce",
            "hash",
            "kief",
            "dab",
            "dabs",
        ],
        Category.CONCENTRATE,
    ),
    **dict.fromkeys(
        [
            "edible",
            "edibles",
            "gummy",
            "gummies",
            "chocolate",
            "chocolates",
            "candy",
            "baked",
            "bakedgoods",
            "chews",
            "mints",
            "cookies",
        ],
        Category.EDIBLE,
    ),
    **dict.fromkeys(
        ["beverage", "beverages", "drink", "drinks", "soda", "sodas", "shot", "shots"],
        Category.BEVERAGE,
    ),
    **dict.fromkeys(["tincture", "tinctures", "drops", "sublingual"], Category.TINCTURE),
    **dict.fromkeys(
        [
            "topical",
            "topicals",
            "lotion",
            "lotions",
            "balm",
            "balms",
            "salve",
            "transdermal",
            "bathandbody",
        ],
        Category.TOPICAL,
    ),
    **dict.fromkeys(
        ["capsule", "capsules", "pill", "pills", "tablet", "tablets", "softgel", "softgels"],
        Category.CAPSULE,
    ),
    **dict.fromkeys(
        [
            "seed",
            "seeds",
            "clone",
            "clones",
            "seedsandclones",
            "seedsclones",
            "seedclone",
            "plant",
            "plants",
        ],
        Category.SEED_CLONE,
    ),
    **dict.fromkeys(
        [
            "accessory",
            "accessories",
            "gear",
            "apparel",
            "merch",
            "merchandise",
            "battery",
            "batteries",
            "paraphernalia",
            "glass",
            "papers",
            "grinder",
            "grinders",
        ],
        Category.ACCESSORY,
    ),
    **dict.fromkeys(["other", "misc", "miscellaneous", "cbd", "bundle", "bundles"], Category.OTHER),
}


def parse_category(*values: object) -> Category:
    """The first of ``values`` that names a product type (``"Pre-Rolls"``, ``"vape"``,
    ``"Concentrates"``, ``"extract"``, ``"Drinks"``, ...); a lineage word (Weedmaps puts
    ``"Indica"`` where the type should be) means flower; ``Category.OTHER`` otherwise."""
    for value in values:
        if not isinstance(value, str):
            continue
        key = _squash(value)
        if key in _CATEGORY_WORDS:
            if _CATEGORY_WORDS[key] is not Category.OTHER:
                return _CATEGORY_WORDS[key]
        elif _LINEAGE_WORDS.get(key, Lineage.UNKNOWN) is not Lineage.UNKNOWN:
            return Category.FLOWER
    return Category.OTHER


_LINEAGE_WORDS: Final[dict[str, Lineage]] = {
    "indica": Lineage.INDICA,
    "sativa": Lineage.SATIVA,
    "hybrid": Lineage.HYBRID,
    "indicahybrid": Lineage.INDICA_HYBRID,
    "indicadominant": Lineage.INDICA_HYBRID,
    "indicadominanthybrid": Lineage.INDICA_HYBRID,
    "hybridindica": Lineage.INDICA_HYBRID,
    "sativahybrid": Lineage.SATIVA_HYBRID,
    "sativadominant": Lineage.SATIVA_HYBRID,
    "sativadominanthybrid": Lineage.SATIVA_HYBRID,
    "hybridsativa": Lineage.SATIVA_HYBRID,
    "highcbd": Lineage.HIGH_CBD,
    "cbd": Lineage.HIGH_CBD,
    "11": Lineage.BALANCED,
    "1to1": Lineage.BALANCED,
    "balanced": Lineage.BALANCED,
    "na": Lineage.UNKNOWN,
    "none": Lineage.UNKNOWN,
    "unknown": Lineage.UNKNOWN,
}


def parse_lineage(value: object) -> Lineage:
    """``"Indica"``, ``"indica-hybrid"``, ``"Sativa Dominant Hybrid"``, ``"High CBD"``,
    ``"1 to 1"``/``"1:1"`` and so on; ``Lineage.UNKNOWN`` for N/A, null and the unknown."""
    if not isinstance(value, str):
        return Lineage.UNKNOWN
    return _LINEAGE_WORDS.get(_squash(value), Lineage.UNKNOWN)


# --------------------------------------------------------------------------- products
def make_option(
    quantity: Quantity | None,
    price_cents: int | None,
    special_price_cents: int | None = None,
    stock: int | None = None,
) -> PriceOption | None:
    """A PriceOption, or None when the size or the price is missing (a sentinel). A special
    price not below the price is dropped."""
    if quantity is None or price_cents is None:
        return None
    if special_price_cents is not None and special_price_cents >= price_cents:
        special_price_cents = None
    return PriceOption(quantity, price_cents, special_price_cents, stock)


def _option_order(option: PriceOption) -> tuple[int, float, int]:
    units = (QuantityUnit.GRAMS, QuantityUnit.MILLIGRAMS, QuantityUnit.UNITS)
    return (units.index(option.quantity.unit), option.quantity.amount, option.price_cents)


def sorted_options(options: Iterable[PriceOption | None]) -> tuple[PriceOption, ...]:
    """Options without Nones and repeated sizes (the first kept), smallest size first."""
    seen: dict[Quantity, PriceOption] = {}
    for option in options:
        if option is not None and option.quantity not in seen:
            seen[option.quantity] = option
    ordered = sorted(seen.values(), key=_option_order)
    return tuple(ordered[: limits.MAX_PRICE_OPTIONS])


@dataclass(frozen=True, slots=True)
class Candidate:
    """A product read from one item of one page, with when the upstream last updated it."""

    product: Product
    updated_ms: int | None = None
    """Upstream's update time; among items with the same id the newest wins."""


def dedupe(candidates: Iterable[Candidate]) -> list[Product]:
    """One product per source id: the newest ``updated_ms`` wins, then the first seen."""
    chosen: dict[str, Candidate] = {}
    for candidate in candidates:
        key = candidate.product.source_id
        held = chosen.get(key)
        if held is None or (candidate.updated_ms or 0) > (held.updated_ms or 0):
            chosen[key] = candidate
    return [candidate.product for candidate in chosen.values()]


def _id_order(source_id: str) -> tuple[int, str]:
    return (len(source_id), source_id)


def merge_same_products(products: Sequence[Product]) -> list[Product]:
    """Merge items that are one product sold in several sizes (Leafly lists each size as its
    own item): same name, brand (any case), category and lineage. The merged product keeps
    the smallest id, every size, and the first non-missing potency, image and description."""
    groups: dict[tuple[str, str, Category, Lineage], list[Product]] = {}
    for product in products:
        key = (
            product.name.casefold(),
            (product.brand or "").casefold(),
            product.category,
            product.lineage,
        )
        groups.setdefault(key, []).append(product)
    merged: list[Product] = []
    for group in groups.values():
        if len(group) == 1:
            merged.append(group[0])
            continue
        group.sort(key=lambda product: _id_order(product.source_id))
        first = group[0]
        merged.append(
            dataclasses.replace(
                first,
                price_options=sorted_options(o for p in group for o in p.price_options),
                thc=next((p.thc for p in group if p.thc is not None), None),
                cbd=next((p.cbd for p in group if p.cbd is not None), None),
                image_url=next((p.image_url for p in group if p.image_url), None),
                description=next((p.description for p in group if p.description), None),
            )
        )
    return merged


def canonical_brands(products: Sequence[Product]) -> list[Product]:
    """One spelling per brand within a menu (``"mama J's"`` / ``"Mama J's"``): the most
    frequent spelling, ties going to one with capitals, then the alphabetically first."""
    spellings: dict[str, Counter[str]] = {}
    for product in products:
        if product.brand is not None:
            spellings.setdefault(product.brand.casefold(), Counter())[product.brand] += 1
    canonical = {
        key: min(counter, key=lambda s: (-counter[s], s == s.lower(), s))
        for key, counter in spellings.items()
    }
    return [
        product
        if product.brand is None or canonical[product.brand.casefold()] == product.brand
        else dataclasses.replace(product, brand=canonical[product.brand.casefold()])
        for product in products
    ]


def build_menu(
    *,
    dispensary_id: str,
    vendor: Vendor,
    name: object,
    fetched_at_ms: int,
    candidates: Iterable[Candidate],
    merge_sizes: bool = False,
) -> Menu:
    """The Menu of a dispensary from every candidate product of every page: duplicates
    removed, sizes merged (``merge_sizes``), brands spelled one way, products in name order.
    The menu name is the one the upstream gave, else the store part of the id."""
    parse_dispensary_id(dispensary_id)
    products = dedupe(candidates)
    products = [p for p in products if p.price_options]
    if merge_sizes:
        products = merge_same_products(products)
    products = canonical_brands(products)
    products.sort(key=lambda p: (p.name.casefold(), p.name, _id_order(p.source_id)))
    if len(products) > limits.MAX_PRODUCTS_PER_MENU:
        raise AdapterParseError(
            f"{len(products)} products, more than the {limits.MAX_PRODUCTS_PER_MENU} allowed"
        )
    menu_name = clean_text(name) or dispensary_id.partition(":")[2]
    try:
        return Menu(
            dispensary_id=parse_dispensary_id(dispensary_id),
            name=menu_name,
            vendor=vendor,
            fetched_at_ms=fetched_at_ms,
            products=tuple(products),
        )
    except ModelError as exc:
        raise AdapterParseError(f"the menu is not valid: {exc}") from exc


def source_id(value: object) -> str | None:
    """An item id given as a string or an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[: limits.MAX_NAME_CHARS]
    return None
