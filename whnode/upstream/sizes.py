"""The one size parser every adapter uses: whatever field states a size, in whatever words.

A vendor states an option's size in one or more of: a unit key and a count (Weedmaps tiers:
``"ounce"`` with ``units: "1/8"``), a label (``"1/8 oz"``, ``"1 g"``), a weight object
(``{value: 0.125, unit: "oz"}``), an option string (Dutchie ``".5g"``, ``"3.5gC"``; Jane
``"eighth ounce"``/``"half_gram"``), and the product name (``"PR 2pk"``, ``"0.5g x 5"``,
``"Gummies 100mg"``). ``read_size`` reads each field it is given, in order, until one states a
size; ``size_for`` then settles items sold by the piece with what the name says. Every form of
quirk 5 in docs/upstreams.md is read here and nowhere else.

Conventions: 1 oz = 28 g, as menus price it (an eighth is 3.5 g). Sentinels (``"N/A"``, 0,
9999999) state no size. Pure and total on untrusted input: anything unreadable is None.
"""

from __future__ import annotations

import re
from typing import Final

from whnode.record.exceptions import ModelError
from whnode.record.model import Quantity, QuantityUnit
from whnode.upstream.normalize import WEIGHT_SENTINEL, clean_text, parse_decimal

__all__ = [
    "GRAMS_PER_OUNCE",
    "WEIGHT_SENTINEL",
    "parse_quantity",
    "quantity_from_name",
    "quantity_of",
    "read_size",
    "size_for",
]

GRAMS_PER_OUNCE: Final = 28.0
"""Menus sell an eighth as 3.5 g: the ounce of the trade is 28 g."""

_QUANTITY_WORDS: Final[dict[str, tuple[float, QuantityUnit]]] = {
    "half gram": (0.5, QuantityUnit.GRAMS),
    "half g": (0.5, QuantityUnit.GRAMS),
    "gram": (1.0, QuantityUnit.GRAMS),
    "one gram": (1.0, QuantityUnit.GRAMS),
    "g": (1.0, QuantityUnit.GRAMS),
    "two gram": (2.0, QuantityUnit.GRAMS),
    "two grams": (2.0, QuantityUnit.GRAMS),
    "eighth": (3.5, QuantityUnit.GRAMS),
    "eighth ounce": (3.5, QuantityUnit.GRAMS),
    "eighth oz": (3.5, QuantityUnit.GRAMS),
    "1/8th": (3.5, QuantityUnit.GRAMS),
    "1/8th oz": (3.5, QuantityUnit.GRAMS),
    "1/8th ounce": (3.5, QuantityUnit.GRAMS),
    "quarter oz": (7.0, QuantityUnit.GRAMS),
    "1/4th": (7.0, QuantityUnit.GRAMS),
    "1/4th oz": (7.0, QuantityUnit.GRAMS),
    "an eighth": (3.5, QuantityUnit.GRAMS),
    "quarter": (7.0, QuantityUnit.GRAMS),
    "quarter ounce": (7.0, QuantityUnit.GRAMS),
    "half": (14.0, QuantityUnit.GRAMS),
    "half ounce": (14.0, QuantityUnit.GRAMS),
    "half oz": (14.0, QuantityUnit.GRAMS),
    "ounce": (28.0, QuantityUnit.GRAMS),
    "oz": (28.0, QuantityUnit.GRAMS),
    "each": (1.0, QuantityUnit.UNITS),
    "ea": (1.0, QuantityUnit.UNITS),
    "unit": (1.0, QuantityUnit.UNITS),
    "single": (1.0, QuantityUnit.UNITS),
}
_SENTINEL_SIZES: Final = frozenset({"", "n/a", "na", "none", "null", "-", "0", "tbd"})
_NUMBER: Final = r"(?:\d+\s+\d+/\d+|\d+/\d+|\d+(?:\.\d+)?|\.\d+)"
_UNIT: Final = (
    r"(?P<unit>milligrams?|mgs?|grams?|gr|g|ounces?|oz|pk|packs?|count|ct|each|ea|units?|"
    r"pieces?|pcs?)"
)
_SIZE: Final = re.compile(rf"^(?P<number>{_NUMBER})\s*{_UNIT}?(?P<junk>[a-z]?)\.?$")
_UNIT_KINDS: Final[dict[str, QuantityUnit | None]] = {
    "mg": QuantityUnit.MILLIGRAMS,
    "milligram": QuantityUnit.MILLIGRAMS,
    "g": QuantityUnit.GRAMS,
    "gr": QuantityUnit.GRAMS,
    "gram": QuantityUnit.GRAMS,
    "oz": None,  # ounces become grams
    "ounce": None,
}


def _number(text: str) -> float | None:
    text = text.strip()
    whole, _, fraction = text.rpartition(" ") if " " in text else ("", "", text)
    try:
        if "/" in fraction:
            numerator, denominator = fraction.split("/")
            value = float(numerator) / float(denominator)
        else:
            value = float(fraction)
        return value + (float(whole) if whole else 0.0)
    except (ValueError, ZeroDivisionError):
        return None


def _unit_kind(unit: str) -> str:
    unit = unit.lower()
    if unit.endswith("s") and unit not in ("pcs",):
        unit = unit[:-1]
    return unit


def _quantity(amount: float, unit: QuantityUnit) -> Quantity | None:
    amount = round(amount, 4)
    if not 0 < amount < 100_000 or amount >= WEIGHT_SENTINEL:
        return None
    if unit is QuantityUnit.UNITS and amount != int(amount):
        return None
    try:
        return Quantity(amount, unit)
    except ModelError:
        return None


def quantity_of(amount: object, unit: object) -> Quantity | None:
    """A size given as a number and a unit name (``3.5, "g"``; ``0.125, "oz"``;
    ``1, "each"``); sentinel amounts (0, 9999999) give None."""
    number = parse_decimal(amount)
    if number is None or not isinstance(unit, str):
        return None
    value = float(number)
    kind = _unit_kind(clean_text(unit) or "")
    if kind in ("oz", "ounce"):
        return _quantity(value * GRAMS_PER_OUNCE, QuantityUnit.GRAMS)
    if kind in _UNIT_KINDS:
        target = _UNIT_KINDS[kind]
        return _quantity(value, target) if target is not None else None
    if kind in ("each", "ea", "unit", "pk", "pack", "count", "ct", "piece", "pc", "pcs"):
        return _quantity(value, QuantityUnit.UNITS)
    return None


def parse_quantity(value: object) -> Quantity | None:
    """A size string (``"1g"``, ``".5g"``, ``"1/8 oz"``, ``"eighth ounce"``, ``"half_gram"``,
    ``"3.5gC"``, ``"28.3g"``, ``"100mg"``, ``"2pk"``, ``"each"``) as a Quantity; None for
    sentinels (``"N/A"``, 0, 9999999) and anything unreadable."""
    text = clean_text(value)
    if text is None:
        return None
    text = text.lower().replace("_", " ").strip()
    text = " ".join(text.split())
    if text in _SENTINEL_SIZES:
        return None
    word = _QUANTITY_WORDS.get(text) or _QUANTITY_WORDS.get(text.removeprefix("1 "))
    if word is not None:
        return _quantity(*word)
    if text.endswith((" ounce", " oz")):
        head = text.rsplit(" ", 1)[0]
        number = _number(head) if head[:1].isdigit() or head[:1] == "." else None
        if number is not None:
            return _quantity(number * GRAMS_PER_OUNCE, QuantityUnit.GRAMS)
    match = _SIZE.match(text)
    if match is None:
        return quantity_from_name(text)
    number = _number(match["number"])
    unit = match["unit"]
    if number is None or (match["junk"] and unit not in ("g", "gr", "gram", "grams")):
        return None
    if unit is None:
        return None
    return quantity_of(number, unit)


_PACK_TIMES: Final = re.compile(
    rf"(?<![\w.])(?P<each>{_NUMBER})\s*(?P<unit>mg|g)\s*[x×*]\s*(?P<count>\d+)\b", re.IGNORECASE
)
_TIMES_PACK: Final = re.compile(
    rf"(?<![\w.])(?P<count>\d+)\s*[x×*]\s*(?P<each>{_NUMBER})\s*(?P<unit>mg|g)\b", re.IGNORECASE
)
_WEIGHT_IN_NAME: Final = re.compile(
    rf"(?<![\w./])(?P<number>{_NUMBER})\s*(?P<unit>mg|g|grams?|oz)(?![\w/])", re.IGNORECASE
)
_PACK_IN_NAME: Final = re.compile(
    r"(?<![\w.])(?P<count>\d+)\s*-?\s*(?:pk|packs?|ct|count|pieces?|pcs)\b", re.IGNORECASE
)


def quantity_from_name(name: object) -> Quantity | None:
    """The size a product name spells out: ``"0.5g x 5"`` → 2.5 g, ``"Gummies 100mg"`` →
    100 mg, ``"PR 2pk"`` → 2 units, ``"Wax .5g"`` → 0.5 g; None when the name says none."""
    text = clean_text(name)
    if text is None:
        return None
    for pattern in (_PACK_TIMES, _TIMES_PACK):
        match = pattern.search(text)
        if match is not None:
            each = _number(match["each"])
            if each is None:
                return None
            unit = QuantityUnit.MILLIGRAMS if match["unit"].lower() == "mg" else QuantityUnit.GRAMS
            return _quantity(each * int(match["count"]), unit)
    weights = list(_WEIGHT_IN_NAME.finditer(text))
    if weights:
        match = weights[-1]
        number = _number(match["number"])
        return quantity_of(number, match["unit"]) if number is not None else None
    pack = _PACK_IN_NAME.search(text)
    if pack is not None:
        return _quantity(float(pack["count"]), QuantityUnit.UNITS)
    return None


def size_for(option: object, name: str) -> Quantity:
    """The size of one price option. ``option`` is a size string or an already parsed
    Quantity. A weight (g, mg) given by the option wins; otherwise (``"N/A"``, ``"each"``, a
    count, missing) the product name decides when it holds a weight (``"0.5g x 5"``) or when
    the option says nothing more than one item (``"PR 2pk"``); else the count, else 1 unit."""
    quantity = option if isinstance(option, Quantity) else parse_quantity(option)
    if quantity is not None and quantity.unit is not QuantityUnit.UNITS:
        return quantity
    named = quantity_from_name(name)
    if named is not None and (
        named.unit is not QuantityUnit.UNITS or quantity is None or quantity.amount == 1
    ):
        return named
    return quantity or Quantity(1.0, QuantityUnit.UNITS)


_BARE_NUMBER: Final = re.compile(rf"^\s*(?P<number>{_NUMBER})\s*$")


def _bare_amount(value: object) -> float | None:
    """A size field that is only a number or a fraction (``1``, ``"0.5"``, ``"1/8"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = parse_decimal(value)
        return None if number is None else float(number)
    if isinstance(value, str) and len(value) <= 32:
        match = _BARE_NUMBER.match(value)
        if match is not None:
            return _number(match["number"])
    return None


def read_size(*fields: object, unit: str | None = None) -> Quantity | None:
    """The first size stated by any of ``fields``, tried in order: a ``Quantity`` as it is; a
    weight object ``{value, unit}``; a bare number or fraction counted in ``unit`` (the unit a
    field's key names, e.g. Weedmaps tiers under ``"ounce"``: ``"1/8"`` is an eighth); a size
    string in any of the forms ``parse_quantity`` reads. None when no field states one."""
    for field in fields:
        if field is None:
            continue
        if isinstance(field, Quantity):
            return field
        if isinstance(field, dict):
            found = quantity_of(field.get("value"), field.get("unit"))
        else:
            amount = _bare_amount(field)
            if amount is not None:
                found = quantity_of(amount, unit) if unit is not None else None
            else:
                found = parse_quantity(field)
        if found is not None:
            return found
    return None
