"""Product queries over one menu: filters, sort order and pages. Pure: a Menu in, matches out.

The rules, which the API (``GET /v1/menus/{id}/products``) and the library share:

- A product matches when every product filter holds (``categories``, ``lineages``,
  ``brands``, ``words``, THC bounds) and at least one of its price options passes every option
  filter (``max_price_cents``, ``max_price_per_gram_cents``, ``on_special``, ``size``). A
  match lists only the options that passed (all of them when no option filter is given).
- Text compares folded: Unicode compatibility decomposition, accents dropped, case folded
  (``"Crème BRÛLÉE"`` and ``"creme brulee"`` are equal), then split into words (runs of
  letters and digits). A query word matches when a word of the product's name or brand
  starts with it (``"blue"`` finds "Blueberry Kush", ``"og kush"`` finds "OG Kush #18"); every
  word must. The search index (``whnode.store.search``) applies the same rule with FTS5
  prefix queries.
- A price is what a buyer pays: the special price when there is one, else the list price.
- Price per gram follows the normalizer's rule (``whnode.upstream.statistics``): only options
  whose size is a weight in grams have one (price / grams); never for milligrams (a dose) or
  units. A product without such an option never passes ``max_price_per_gram_cents``.
- THC bounds read THC in percent at the middle of its range (as the menu's THC histogram
  does); a product whose THC is not in percent never passes a THC bound.
- ``size`` matches options of the same unit within 3% (an eighth is 3.5 g on menus and
  3.54 g from ``"1/8 oz"``).
- Sort keys: ``price`` (lowest matching price), ``price_per_gram`` (lowest matching price per
  gram), ``thc`` (middle of the range), ``name``; ascending unless ``descending``; a product
  without the key sorts last either way; ties go by folded name, then source id, so that pages
  of one snapshot never overlap.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from whnode.record.model import (
    Category,
    Lineage,
    Menu,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
)

__all__ = [
    "SIZE_TOLERANCE",
    "ProductMatch",
    "ProductQuery",
    "SortKey",
    "fold",
    "price_cents",
    "price_per_gram",
    "searchable_text",
    "select",
    "thc_percent",
    "words_of",
]

_WORD: Final = re.compile(r"[^\W_]+")
SIZE_TOLERANCE: Final = 0.03
"""Relative difference within which two sizes of one unit are the same size."""


class SortKey(enum.StrEnum):
    PRICE = "price"
    PRICE_PER_GRAM = "price_per_gram"
    THC = "thc"
    NAME = "name"


@dataclass(frozen=True, slots=True)
class ProductQuery:
    """Filters and order of a product query; the defaults select everything by name."""

    categories: frozenset[Category] = frozenset()
    lineages: frozenset[Lineage] = frozenset()
    brands: frozenset[str] = frozenset()
    """Folded brand names (``fold``); a product matches one of them exactly."""
    words: tuple[str, ...] = ()
    """Folded words (``words_of``) each of which must begin a word of the product's name or
    brand."""
    min_thc: float | None = None
    max_thc: float | None = None
    max_price_cents: int | None = None
    max_price_per_gram_cents: float | None = None
    on_special: bool | None = None
    size: Quantity | None = None
    sort: SortKey = SortKey.NAME
    descending: bool = False

    @property
    def filters_options(self) -> bool:
        return (
            self.max_price_cents is not None
            or self.max_price_per_gram_cents is not None
            or self.on_special is not None
            or self.size is not None
        )


@dataclass(frozen=True, slots=True)
class ProductMatch:
    """A product that matched, with the price options that passed the option filters."""

    product: Product
    options: tuple[PriceOption, ...]


def fold(text: str) -> str:
    """``text`` for comparison: compatibility-decomposed, accents dropped, case folded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def words_of(text: str) -> list[str]:
    """The folded words of ``text``: runs of letters and digits."""
    return _WORD.findall(fold(text))


def price_cents(option: PriceOption) -> int:
    """What a buyer pays for ``option``: the special price when there is one."""
    special = option.special_price_cents
    return option.price_cents if special is None else special


def price_per_gram(cents: int, quantity: Quantity) -> float | None:
    """Cents per gram of a price for ``quantity``; None unless the size is a weight in grams
    (the normalizer's rule: milligrams are a dose, units are not a weight)."""
    if quantity.unit is not QuantityUnit.GRAMS:
        return None
    return cents / quantity.amount


def thc_percent(product: Product) -> float | None:
    """The product's THC in percent at the middle of its range; None when not in percent."""
    thc = product.thc
    if thc is None or thc.unit is not PotencyUnit.PERCENT:
        return None
    return (thc.low + thc.high) / 2.0


def _same_size(option: Quantity, wanted: Quantity) -> bool:
    if option.unit is not wanted.unit:
        return False
    return abs(option.amount - wanted.amount) <= SIZE_TOLERANCE * wanted.amount


def _option_passes(option: PriceOption, query: ProductQuery) -> bool:
    paid = price_cents(option)
    if query.max_price_cents is not None and paid > query.max_price_cents:
        return False
    if query.max_price_per_gram_cents is not None:
        per_gram = price_per_gram(paid, option.quantity)
        if per_gram is None or per_gram > query.max_price_per_gram_cents:
            return False
    if query.on_special is not None and (option.special_price_cents is not None) != (
        query.on_special
    ):
        return False
    return query.size is None or _same_size(option.quantity, query.size)


def _product_passes(product: Product, folded_text: str, query: ProductQuery) -> bool:
    if query.categories and product.category not in query.categories:
        return False
    if query.lineages and product.lineage not in query.lineages:
        return False
    if query.brands and (product.brand is None or fold(product.brand) not in query.brands):
        return False
    if any(f" {word}" not in folded_text for word in query.words):
        return False
    if query.min_thc is not None or query.max_thc is not None:
        thc = thc_percent(product)
        if thc is None:
            return False
        if query.min_thc is not None and thc < query.min_thc:
            return False
        if query.max_thc is not None and thc > query.max_thc:
            return False
    return True


def searchable_text(product: Product) -> str:
    """The words of the name and brand, each after a space: a query word begins one of them
    when it follows a space in this text."""
    return " " + " ".join(words_of(f"{product.name} {product.brand or ''}"))


def _sort_value(match: ProductMatch, key: SortKey) -> float | None:
    if key is SortKey.PRICE:
        return min(price_cents(option) for option in match.options)
    if key is SortKey.PRICE_PER_GRAM:
        values = [
            value
            for option in match.options
            if (value := price_per_gram(price_cents(option), option.quantity)) is not None
        ]
        return min(values) if values else None
    if key is SortKey.THC:
        return thc_percent(match.product)
    return None


def select(
    menu: Menu, query: ProductQuery, texts: Sequence[str] | None = None
) -> list[ProductMatch]:
    """Every product of ``menu`` that matches ``query``, in the query's order. ``texts`` are
    the products' ``searchable_text`` when the caller keeps them (one per product)."""
    if texts is None:
        texts = [searchable_text(product) for product in menu.products]
    matches: list[ProductMatch] = []
    option_filters = query.filters_options
    for product, text in zip(menu.products, texts, strict=True):
        if not _product_passes(product, text, query):
            continue
        options = product.price_options
        if option_filters:
            options = tuple(option for option in options if _option_passes(option, query))
            if not options:
                continue
        matches.append(ProductMatch(product, options))
    names = {id(match): (fold(match.product.name), match.product.source_id) for match in matches}
    if query.sort is SortKey.NAME:
        matches.sort(key=lambda match: names[id(match)], reverse=query.descending)
        return matches
    keyed = [(_sort_value(match, query.sort), match) for match in matches]
    present = [(value, match) for value, match in keyed if value is not None]
    missing = [match for value, match in keyed if value is None]
    present.sort(key=lambda item: names[id(item[1])])  # ties: by name, whatever the direction
    present.sort(key=lambda item: item[0], reverse=query.descending)  # stable
    missing.sort(key=lambda match: names[id(match)])
    return [match for _, match in present] + missing
