"""Tables of raw upstream values and their normalized forms, every expectation written by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whnode.record.model import (
    Category,
    Lineage,
    Potency,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
    Vendor,
)
from whnode.upstream.normalize import (
    AdapterParseError,
    Candidate,
    build_menu,
    canonical_brands,
    clean_description,
    clean_text,
    dedupe,
    make_option,
    merge_same_products,
    parse_category,
    parse_lineage,
    parse_potency,
    parse_price_cents,
    parse_stock,
    parse_timestamp_ms,
    split_brand_from_name,
    strip_html,
)
from whnode.upstream.sizes import (
    parse_quantity,
    quantity_from_name,
    quantity_of,
    read_size,
    size_for,
)

G = QuantityUnit.GRAMS
MG = QuantityUnit.MILLIGRAMS
UNIT = QuantityUnit.UNITS
PCT = PotencyUnit.PERCENT
MG_PER_G = PotencyUnit.MILLIGRAMS_PER_GRAM


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1g", Quantity(1.0, G)),
        (".5g", Quantity(0.5, G)),
        ("0.5 g", Quantity(0.5, G)),
        ("1/2g", Quantity(0.5, G)),
        ("1/2 gram", Quantity(0.5, G)),
        ("half gram", Quantity(0.5, G)),
        ("half_gram", Quantity(0.5, G)),
        ("gram", Quantity(1.0, G)),
        ("1 gram", Quantity(1.0, G)),
        ("2 grams", Quantity(2.0, G)),
        ("two gram", Quantity(2.0, G)),
        ("two_grams", Quantity(2.0, G)),
        ("2.0g", Quantity(2.0, G)),
        ("3.5g", Quantity(3.5, G)),
        ("3.5gC", Quantity(3.5, G)),
        ("eighth", Quantity(3.5, G)),
        ("eighth ounce", Quantity(3.5, G)),
        ("eighth_ounce", Quantity(3.5, G)),
        ("1/8oz", Quantity(3.5, G)),
        ("1/8 oz", Quantity(3.5, G)),
        ("1/8 ounce", Quantity(3.5, G)),
        ("1/4oz", Quantity(7.0, G)),
        ("quarter ounce", Quantity(7.0, G)),
        ("half ounce", Quantity(14.0, G)),
        ("1/2 oz", Quantity(14.0, G)),
        ("ounce", Quantity(28.0, G)),
        ("1 oz", Quantity(28.0, G)),
        ("28g", Quantity(28.0, G)),
        ("28.3g", Quantity(28.3, G)),
        ("100mg", Quantity(100.0, MG)),
        ("100 mg", Quantity(100.0, MG)),
        ("1000mg", Quantity(1000.0, MG)),
        ("2pk", Quantity(2.0, UNIT)),
        ("5 pack", Quantity(5.0, UNIT)),
        ("10ct", Quantity(10.0, UNIT)),
        ("each", Quantity(1.0, UNIT)),
        ("1 each", Quantity(1.0, UNIT)),
        ("unit", Quantity(1.0, UNIT)),
        ("0.5g x 5", Quantity(2.5, G)),
        ("\u00bd g", Quantity(0.5, G)),
        ("N/A", None),
        ("n/a", None),
        ("", None),
        ("0g", None),
        ("0", None),
        ("9999999g", None),
        ("3.5", None),
        ("a lot", None),
        (None, None),
        (3.5, None),
    ],
)
def test_size_strings(raw: object, expected: Quantity | None) -> None:
    assert parse_quantity(raw) == expected


@pytest.mark.parametrize(
    ("fields", "unit", "expected"),
    [
        ((".5g",), None, Quantity(0.5, G)),
        (("1/8oz",), None, Quantity(3.5, G)),
        (("1/8 oz",), None, Quantity(3.5, G)),
        (("eighth ounce",), None, Quantity(3.5, G)),
        (("1/8th",), None, Quantity(3.5, G)),
        (("quarter oz",), None, Quantity(7.0, G)),
        (("3.5gC",), None, Quantity(3.5, G)),
        (("28.3g",), None, Quantity(28.3, G)),
        (("100mg",), None, Quantity(100.0, MG)),
        (("PR 2pk",), None, Quantity(2.0, UNIT)),
        (("0.5g x 5",), None, Quantity(2.5, G)),
        (("1/8",), "oz", Quantity(3.5, G)),
        ((0.5,), "g", Quantity(0.5, G)),
        (("1/8",), None, None),
        (("N/A", "2.0g"), None, Quantity(2.0, G)),
        ((None, "", "1 g"), "oz", Quantity(1.0, G)),
        (({"value": 0.125, "unit": "oz"}, "1 g"), None, Quantity(3.5, G)),
        (({"value": 0, "unit": "g"}, "N/A"), None, None),
        ((Quantity(1.0, UNIT), "1 g"), None, Quantity(1.0, UNIT)),
        ((), None, None),
    ],
)
def test_the_first_field_that_states_a_size_gives_it(
    fields: tuple[object, ...], unit: str | None, expected: Quantity | None
) -> None:
    assert read_size(*fields, unit=unit) == expected


@pytest.mark.parametrize(
    ("amount", "unit", "expected"),
    [
        (3.5, "g", Quantity(3.5, G)),
        ("3.5", "grams", Quantity(3.5, G)),
        (0.125, "oz", Quantity(3.5, G)),
        (1, "oz", Quantity(28.0, G)),
        (100, "mg", Quantity(100.0, MG)),
        (1, "each", Quantity(1.0, UNIT)),
        (5, "each", Quantity(5.0, UNIT)),
        (0, "g", None),
        (9999999, "each", None),
        (9999999, "mg", None),
        (1.5, "each", None),
        (1, "lb", None),
        (1, None, None),
    ],
)
def test_amount_and_unit(amount: object, unit: object, expected: Quantity | None) -> None:
    assert quantity_of(amount, unit) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Mama J's: Alien Rock Candy  - PR 2pk", Quantity(2.0, UNIT)),
        ("Sunset Minis 0.5g x 5", Quantity(2.5, G)),
        ("Minis 5 x 0.5g", Quantity(2.5, G)),
        ("Minis 5x0.5g", Quantity(2.5, G)),
        ("Wax-Purple Kush .5g", Quantity(0.5, G)),
        ("Watermelon Gummies 100mg", Quantity(100.0, MG)),
        ("Gummies 10pk 100mg", Quantity(100.0, MG)),
        ("Capsules 30pk", Quantity(30.0, UNIT)),
        ("Blue Dream 1/8 oz", Quantity(3.5, G)),
        ("Lemon Haze 2 grams", Quantity(2.0, G)),
        ("GG4", None),
        ("Gelato 33", None),
        ("510 Battery", None),
        ("Rolling Papers", None),
    ],
)
def test_sizes_found_in_names(name: str, expected: Quantity | None) -> None:
    assert quantity_from_name(name) == expected


@pytest.mark.parametrize(
    ("option", "name", "expected"),
    [
        ("1g", "Gummies 100mg", Quantity(1.0, G)),
        ("N/A", "Gummies 100mg", Quantity(100.0, MG)),
        ("each", "Minis 0.5g x 5", Quantity(2.5, G)),
        ("each", "PR 2pk", Quantity(2.0, UNIT)),
        ("N/A", "Glass Pipe", Quantity(1.0, UNIT)),
        (None, "Glass Pipe", Quantity(1.0, UNIT)),
        ("5 each", "Minis 0.5g x 5", Quantity(2.5, G)),
        ("5 each", "Sampler 3pk", Quantity(5.0, UNIT)),
        (Quantity(1.0, UNIT), "Fruit Chews 100mg", Quantity(100.0, MG)),
    ],
)
def test_size_of_an_option(option: object, name: str, expected: Quantity) -> None:
    assert size_for(option, name) == expected


@pytest.mark.parametrize(
    ("raw", "cents", "expected"),
    [
        (31.46, False, 3146),
        ("31.46", False, 3146),
        ("$1,200.00", False, 120000),
        (" $ 12 ", False, 1200),
        ("12.00 USD", False, 1200),
        (8, False, 800),
        (6.5, False, 650),
        (0.015, False, 2),
        (4500, True, 4500),
        ("4500", True, 4500),
        (0, False, None),
        ("0.00", False, None),
        (-5, False, None),
        (9999999, False, None),
        (9999999, True, None),
        ("N/A", False, None),
        ("", False, None),
        (None, False, None),
        (True, False, None),
        (float("nan"), False, None),
        ("1.2.3", False, None),
    ],
)
def test_prices(raw: object, cents: bool, expected: int | None) -> None:
    assert parse_price_cents(raw, cents=cents) == expected


@pytest.mark.parametrize(
    ("value", "unit", "default", "expected"),
    [
        (21.5, "%", None, Potency(21.5, 21.5, PCT)),
        ("20.2%", None, None, Potency(20.2, 20.2, PCT)),
        ("18-22%", None, None, Potency(18.0, 22.0, PCT)),
        ("18 - 22 %", None, None, Potency(18.0, 22.0, PCT)),
        ([21, 22], "PERCENTAGE", None, Potency(21.0, 22.0, PCT)),
        (["24.5"], "PERCENTAGE", None, Potency(24.5, 24.5, PCT)),
        ([22, 21], "percentage", None, Potency(21.0, 22.0, PCT)),
        ([100, 100], "MILLIGRAMS", None, Potency(100.0, 100.0, PotencyUnit.MILLIGRAMS)),
        (
            [780, 810],
            "MILLIGRAMS_PER_GRAM",
            None,
            Potency(780.0, 810.0, PotencyUnit.MILLIGRAMS_PER_GRAM),
        ),
        ("750-800", "mg/g", None, Potency(750.0, 800.0, PotencyUnit.MILLIGRAMS_PER_GRAM)),
        ("100 mg", None, None, Potency(100.0, 100.0, PotencyUnit.MILLIGRAMS)),
        ("25 mg/g", None, PCT, Potency(25.0, 25.0, MG_PER_G)),
        ("20.2", None, PCT, Potency(20.2, 20.2, PCT)),
        ("100", None, PotencyUnit.MILLIGRAMS, Potency(100.0, 100.0, PotencyUnit.MILLIGRAMS)),
        ("20.2", None, None, None),
        (0, "%", None, None),
        ("0", "%", None, None),
        (150, "%", None, None),
        (-1, "%", None, None),
        ([None, None], "MILLIGRAMS", None, None),
        ([], "PERCENTAGE", None, None),
        ("<LOQ", "%", None, None),
        (20, "parts", None, None),
        (None, "%", None, None),
    ],
)
def test_potency(
    value: object, unit: object, default: PotencyUnit | None, expected: Potency | None
) -> None:
    assert parse_potency(value, unit, default_unit=default) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("Flower",), Category.FLOWER),
        (("Pre-Rolls",), Category.PRE_ROLL),
        (("pre-roll",), Category.PRE_ROLL),
        (("Pre-roll",), Category.PRE_ROLL),
        (("Vaporizers",), Category.VAPE),
        (("vape",), Category.VAPE),
        (("Cartridges",), Category.VAPE),
        (("Vape Pens",), Category.VAPE),
        (("Concentrate",), Category.CONCENTRATE),
        (("extract",), Category.CONCENTRATE),
        (("Live Resin",), Category.CONCENTRATE),
        (("Edible",), Category.EDIBLE),
        (("EDIBLES",), Category.EDIBLE),
        (("Drinks",), Category.BEVERAGE),
        (("Tinctures",), Category.TINCTURE),
        (("Topicals",), Category.TOPICAL),
        (("Capsules",), Category.CAPSULE),
        (("Seeds & Clones",), Category.SEED_CLONE),
        (("Clones",), Category.SEED_CLONE),
        (("Gear",), Category.ACCESSORY),
        (("Accessories",), Category.ACCESSORY),
        (("Indica",), Category.FLOWER),
        (("Hybrid",), Category.FLOWER),
        (("CBD",), Category.OTHER),
        (("Other", "Edibles"), Category.EDIBLE),
        ((None, "Concentrates"), Category.CONCENTRATE),
        (("Other",), Category.OTHER),
        (("mystery",), Category.OTHER),
        ((None, 3), Category.OTHER),
    ],
)
def test_categories(values: tuple[object, ...], expected: Category) -> None:
    assert parse_category(*values) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Indica", Lineage.INDICA),
        ("sativa", Lineage.SATIVA),
        ("HYBRID", Lineage.HYBRID),
        ("Indica-Hybrid", Lineage.INDICA_HYBRID),
        ("indica-dominant", Lineage.INDICA_HYBRID),
        ("Indica Dominant Hybrid", Lineage.INDICA_HYBRID),
        ("Sativa-Hybrid", Lineage.SATIVA_HYBRID),
        ("sativa-dominant", Lineage.SATIVA_HYBRID),
        ("High CBD", Lineage.HIGH_CBD),
        ("CBD", Lineage.HIGH_CBD),
        ("1 to 1", Lineage.BALANCED),
        ("1:1", Lineage.BALANCED),
        ("N/A", Lineage.UNKNOWN),
        ("", Lineage.UNKNOWN),
        (None, Lineage.UNKNOWN),
        ("Flower", Lineage.UNKNOWN),
    ],
)
def test_lineage(raw: object, expected: Lineage) -> None:
    assert parse_lineage(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1748641511238", 1748641511238),
        (1748641511238, 1748641511238),
        (1746093600, 1746093600000),
        ("1746093600", 1746093600000),
        ("2026-06-13T05:24:11.208Z", 1781328251208),
        ("2023-11-28T21:41:59Z", 1701207719000),
        ("2023-11-28T22:41:59+01:00", 1701207719000),
        ("2023-11-28 21:41:59 UTC", 1701207719000),
        ("2023-11-28T21:41:59", 1701207719000),
        ("yesterday", None),
        (0, None),
        (None, None),
        (True, None),
    ],
)
def test_timestamps(raw: object, expected: int | None) -> None:
    assert parse_timestamp_ms(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Blue  Dream", "Blue Dream"),
        ("  Blue Dream  ", "Blue Dream"),
        ("Kush Mints\u2122", "Kush Mints"),
        ("Kiva\u00ae Camino\u2122 Gummies", "Kiva Camino Gummies"),
        ("Grandma\u2019s \u201cCookies\u201d", 'Grandma\'s "Cookies"'),
        ("Mac &amp; Cheese", "Mac & Cheese"),
        ("<b>Bold</b> Name", "Bold Name"),
        ("\uff27\uff27\uff14", "GG4"),
        ("Zero\u200bWidth", "ZeroWidth"),
        ("Non\u00a0breaking", "Non breaking"),
        ("Line\nbreak\ttab", "Line break tab"),
        ("Sour \u2013 Diesel", "Sour - Diesel"),
        (420, "420"),
        ("   ", None),
        ("", None),
        (None, None),
        (["x"], None),
    ],
)
def test_clean_text(raw: object, expected: str | None) -> None:
    assert clean_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<p>Grown in <b>small</b>&nbsp;batches.</p><p>Smells  like&#8230; pine</p>",
         "Grown in small batches.\nSmells like... pine"),
        ("Vegan.<br>Real fruit &amp; no gelatin.", "Vegan.\nReal fruit & no gelatin."),
        ("<ul><li>one</li><li>two</li></ul>", "one\ntwo"),
        ("<script>alert(1)</script><style>p{}</style>Safe", "Safe"),
        ("Plain text\n\n\nwith gaps", "Plain text\nwith gaps"),
        ("a < b and c > d", "a < b and c > d"),
        ("<p></p>", None),
        (None, None),
    ],
)  # fmt: skip
def test_descriptions(raw: object, expected: str | None) -> None:
    assert clean_description(raw) == expected


def test_strip_html_keeps_text_of_unclosed_markup() -> None:
    assert strip_html("<div>open <b>bold").strip() == "open bold"
    assert strip_html("no markup &amp; entities") == "no markup & entities"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (25, 25),
        ("12", 12),
        (3.0, 3),
        (-2, 0),
        (9999999, None),
        (None, None),
        ("lots", None),
    ],
)
def test_stock(raw: object, expected: int | None) -> None:
    assert parse_stock(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ridgeline | Blue Dream", ("Ridgeline", "Blue Dream")),
        ("Old Pal Co. |  Ready  Roll", ("Old Pal Co.", "Ready Roll")),
        ("Blue Dream", (None, "Blue Dream")),
        ("| Blue Dream", (None, "| Blue Dream")),
        ("Brand |", (None, "Brand |")),
    ],
)
def test_brand_in_the_name(raw: str, expected: tuple[str | None, str]) -> None:
    assert split_brand_from_name(raw) == expected


def test_options_drop_missing_sizes_prices_and_useless_specials() -> None:
    gram = Quantity(1.0, G)
    assert make_option(None, 1000) is None
    assert make_option(gram, None) is None
    assert make_option(gram, 1000, 1000) == PriceOption(gram, 1000)
    assert make_option(gram, 1000, 1200) == PriceOption(gram, 1000)
    assert make_option(gram, 1000, 800, 3) == PriceOption(gram, 1000, 800, 3)


def _product(source_id: str, name: str, *options: PriceOption, brand: str | None = None) -> Product:
    return Product(source_id, name, Category.FLOWER, tuple(options), brand=brand)


ONE_GRAM = PriceOption(Quantity(1.0, G), 1000)
EIGHTH = PriceOption(Quantity(3.5, G), 3000)


def test_dedupe_keeps_the_newest_then_the_first() -> None:
    old = _product("1", "Old", ONE_GRAM)
    new = _product("1", "New", ONE_GRAM)
    first = _product("2", "First", ONE_GRAM)
    second = _product("2", "Second", ONE_GRAM)
    kept = dedupe([Candidate(old, 10), Candidate(new, 20), Candidate(first), Candidate(second)])
    assert kept == [new, first]


def test_sizes_sold_as_separate_items_are_merged() -> None:
    gram = _product("12", "Blue Dream", ONE_GRAM, brand="Terra Bloom")
    eighth = _product("9", "blue dream", EIGHTH, brand="terra bloom")
    other = _product("10", "Blue Dream", EIGHTH, brand="Another Brand")
    merged = merge_same_products([gram, eighth, other])
    assert merged == [
        Product("9", "blue dream", Category.FLOWER, (ONE_GRAM, EIGHTH), brand="terra bloom"),
        other,
    ]


def test_brands_get_one_spelling_per_menu() -> None:
    products = [
        _product("1", "A", ONE_GRAM, brand="mama J's"),
        _product("2", "B", ONE_GRAM, brand="Mama J's"),
        _product("3", "C", ONE_GRAM, brand="Mama J's"),
        _product("4", "D", ONE_GRAM, brand="kiva"),
        _product("5", "E", ONE_GRAM, brand="KIVA"),
        _product("6", "F", ONE_GRAM),
    ]
    assert [p.brand for p in canonical_brands(products)] == [
        "Mama J's",
        "Mama J's",
        "Mama J's",
        "KIVA",
        "KIVA",
        None,
    ]


def test_build_menu_orders_products_and_names_the_menu() -> None:
    menu = build_menu(
        dispensary_id="leafly:some-slug",
        vendor=Vendor.LEAFLY,
        name="  The  Menu\u2122 ",
        fetched_at_ms=5,
        candidates=[
            Candidate(_product("2", "banana", ONE_GRAM)),
            Candidate(_product("1", "Apple", ONE_GRAM)),
            Candidate(_product("3", "unpriced")),
        ],
    )
    assert menu.name == "The Menu"
    assert [p.name for p in menu.products] == ["Apple", "banana"]
    nameless = build_menu(
        dispensary_id="leafly:some-slug",
        vendor=Vendor.LEAFLY,
        name=None,
        fetched_at_ms=5,
        candidates=[],
    )
    assert nameless.name == "some-slug"
    assert nameless.products == ()


def test_build_menu_refuses_more_products_than_the_model_allows() -> None:
    candidates = [Candidate(_product(str(n), f"P{n}", ONE_GRAM)) for n in range(10_001)]
    with pytest.raises(AdapterParseError, match="10001 products"):
        build_menu(
            dispensary_id="jane:1",
            vendor=Vendor.JANE,
            name=None,
            fetched_at_ms=1,
            candidates=candidates,
        )


def test_oversized_inputs_are_cut_or_refused_before_work() -> None:
    assert clean_text("x" * 1_000_000) == "x" * 512
    description = clean_description("<p>" + "y" * 1_000_000 + "</p>")
    assert description is not None
    assert len(description) == 20_000
    assert parse_price_cents("1" * 100) is None
    assert parse_potency("2" * 100, "%") is None
    assert parse_timestamp_ms("3" * 100) is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(JSON_VALUES, JSON_VALUES)
def test_normalizers_are_total(value: object, other: object) -> None:
    """Whatever an upstream sends, a normalizer answers (None, OTHER, UNKNOWN) and never raises."""
    parse_quantity(value)
    quantity_of(value, other)
    quantity_from_name(value)
    parse_price_cents(value)
    parse_price_cents(value, cents=True)
    parse_potency(value, other)
    parse_potency(value, default_unit=PCT)
    parse_category(value, other)
    parse_lineage(value)
    parse_timestamp_ms(value)
    parse_stock(value)
    clean_text(value)
    clean_description(value)
