"""The menu codec: the canonical CBOR of a menu's plain mapping, inside an lz4 frame.

Decoding checks every cap before the work it protects, in this order:

1. the compressed size (``MAX_RECORD_BYTES``);
2. the lz4 frame header: it must declare the content size (a frame without one is refused),
   and the declared size must be at most ``MAX_DECOMPRESSED_BYTES`` and at most
   ``MAX_COMPRESSION_RATIO`` times the frame: all before anything is decompressed;
3. decompression, bounded by the declared size, so a header that lies cannot inflate more;
4. the CBOR structure (``whnode.record.cbor.scan``: depth, element counts, string lengths,
   total items) before cbor2 builds anything;
5. the plain mapping (exact members, types) and the model's own rules;
6. canonical form: the payload must be byte for byte the encoding of the menu it decodes to,
   so one menu has exactly one payload.

Only ``DecodeError`` (and its ``LimitExceeded``) or ``ModelError`` leave this module.
The plain mapping is specified in docs/record-format.md; in short, short text keys, enums as
their string values, quantities and potencies as floats, prices as integer cents, optional
members left out rather than null.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import lz4.frame

from whnode import limits
from whnode.record.cbor import PAYLOAD_CAPS, decode_bounded, encode_canonical, scan
from whnode.record.exceptions import DecodeError, LimitExceeded, ModelError
from whnode.record.keys import ContentHash
from whnode.record.model import (
    Category,
    CategoryStatistics,
    DispensaryId,
    DropCount,
    DropReason,
    Lineage,
    Menu,
    MenuStatistics,
    ParseReport,
    Potency,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
    Vendor,
)

__all__ = [
    "LZ4_MAGIC",
    "content_hash",
    "declared_size",
    "decode_menu",
    "decompress_payload",
    "encode_menu",
    "encode_menu_with_hash",
    "menu_from_plain",
    "menu_to_plain",
]

LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"
"""The first four bytes of every lz4 frame."""

_MENU: Final = (frozenset("dnstp"), frozenset("x"))
_PRODUCT: Final = (frozenset("inclo"), frozenset("bhdue"))
_OPTION: Final = (frozenset("qp"), frozenset("sk"))
_STATISTICS: Final = (frozenset("ch"), frozenset("r"))
_REPORT: Final = (frozenset("sko"), frozenset("id"))

_EnumT = TypeVar("_EnumT", Category, DropReason, Lineage, PotencyUnit, QuantityUnit, Vendor)


# ---------------------------------------------------------------- model -> plain
def _potency_plain(potency: Potency) -> list[Any]:
    return [float(potency.low), float(potency.high), potency.unit.value]


def _option_plain(option: PriceOption) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "q": [float(option.quantity.amount), option.quantity.unit.value],
        "p": option.price_cents,
    }
    if option.special_price_cents is not None:
        plain["s"] = option.special_price_cents
    if option.stock is not None:
        plain["k"] = option.stock
    return plain


def _product_plain(product: Product) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "i": product.source_id,
        "n": product.name,
        "c": product.category.value,
        "l": product.lineage.value,
        "o": [_option_plain(option) for option in product.price_options],
    }
    if product.brand is not None:
        plain["b"] = product.brand
    if product.thc is not None:
        plain["h"] = _potency_plain(product.thc)
    if product.cbd is not None:
        plain["d"] = _potency_plain(product.cbd)
    if product.image_url is not None:
        plain["u"] = product.image_url
    if product.description is not None:
        plain["e"] = product.description
    return plain


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _statistics_plain(statistics: MenuStatistics) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "c": [
            [
                item.category.value,
                item.product_count,
                _optional_float(item.price_per_gram_min),
                _optional_float(item.price_per_gram_median),
                _optional_float(item.price_per_gram_max),
            ]
            for item in statistics.categories
        ],
        "h": list(statistics.thc_percent_histogram),
    }
    if statistics.parse_report is not None:
        plain["r"] = _report_plain(statistics.parse_report)
    return plain


def _drops_plain(drops: tuple[DropCount, ...]) -> list[Any]:
    return [[drop.reason.value, drop.count, list(drop.examples)] for drop in drops]


def _report_plain(report: ParseReport) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "s": report.items_seen,
        "k": report.products_kept,
        "o": report.options_kept,
    }
    if report.items_dropped:
        plain["i"] = _drops_plain(report.items_dropped)
    if report.options_dropped:
        plain["d"] = _drops_plain(report.options_dropped)
    return plain


def menu_to_plain(menu: Menu, *, for_hash: bool = False) -> dict[str, Any]:
    """The plain mapping of ``menu``; ``for_hash`` leaves out fetch time and statistics."""
    plain: dict[str, Any] = {
        "d": menu.dispensary_id,
        "n": menu.name,
        "s": menu.vendor.value,
        "p": [_product_plain(product) for product in menu.products],
    }
    if not for_hash:
        plain["t"] = menu.fetched_at_ms
        if menu.statistics is not None:
            plain["x"] = _statistics_plain(menu.statistics)
    return plain


# ---------------------------------------------------------------- plain -> model
def _members(value: object, where: str, shape: tuple[frozenset[str], frozenset[str]]) -> Any:
    required, optional = shape
    if not isinstance(value, Mapping):
        raise DecodeError(f"{where} is not a map")
    keys = set(value.keys())
    if not required <= keys:
        raise DecodeError(f"{where} lacks {sorted(required - keys)}")
    if not keys <= required | optional:
        raise DecodeError(f"{where} has unknown members")
    return value


def _array(value: object, where: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise DecodeError(f"{where} is not an array")
    return value


def _float(value: object, where: str) -> float:
    if type(value) is not float:
        raise DecodeError(f"{where} is not a CBOR float")
    return value


def _enum(kind: type[_EnumT], value: object, where: str) -> _EnumT:
    if not isinstance(value, str):
        raise DecodeError(f"{where} is not text")
    try:
        return kind(value)
    except ValueError:
        raise DecodeError(f"{where}: unknown {kind.__name__} {value[:40]!r}") from None


def _potency(value: object, where: str) -> Potency | None:
    if value is None:
        return None
    items = _array(value, where)
    if len(items) != 3:
        raise DecodeError(f"{where} is not [low, high, unit]")
    return Potency(
        low=_float(items[0], where),
        high=_float(items[1], where),
        unit=_enum(PotencyUnit, items[2], where),
    )


def _option(value: object, where: str) -> PriceOption:
    plain = _members(value, where, _OPTION)
    quantity = _array(plain["q"], f"{where} quantity")
    if len(quantity) != 2:
        raise DecodeError(f"{where} quantity is not [amount, unit]")
    return PriceOption(
        quantity=Quantity(
            amount=_float(quantity[0], f"{where} amount"),
            unit=_enum(QuantityUnit, quantity[1], f"{where} unit"),
        ),
        price_cents=plain["p"],
        special_price_cents=plain.get("s"),
        stock=plain.get("k"),
    )


def _product(value: object, where: str) -> Product:
    plain = _members(value, where, _PRODUCT)
    options = _array(plain["o"], f"{where} options")
    return Product(
        source_id=plain["i"],
        name=plain["n"],
        category=_enum(Category, plain["c"], f"{where} category"),
        lineage=_enum(Lineage, plain["l"], f"{where} lineage"),
        price_options=tuple(
            _option(option, f"{where} option {index}") for index, option in enumerate(options)
        ),
        brand=plain.get("b"),
        thc=_potency(plain.get("h"), f"{where} thc"),
        cbd=_potency(plain.get("d"), f"{where} cbd"),
        image_url=plain.get("u"),
        description=plain.get("e"),
    )


def _statistics(value: object) -> MenuStatistics | None:
    if value is None:
        return None
    plain = _members(value, "statistics", _STATISTICS)
    categories = []
    for index, row in enumerate(_array(plain["c"], "statistics categories")):
        where = f"statistics category {index}"
        items = _array(row, where)
        if len(items) != 5:
            raise DecodeError(f"{where} does not have five members")
        per_gram = [None if item is None else _float(item, where) for item in items[2:]]
        categories.append(
            CategoryStatistics(
                category=_enum(Category, items[0], where),
                product_count=items[1],
                price_per_gram_min=per_gram[0],
                price_per_gram_median=per_gram[1],
                price_per_gram_max=per_gram[2],
            )
        )
    return MenuStatistics(
        categories=tuple(categories),
        thc_percent_histogram=tuple(_array(plain["h"], "statistics histogram")),
        parse_report=None if "r" not in plain else _report(plain["r"]),
    )


def _drops(value: object, where: str) -> tuple[DropCount, ...]:
    drops = []
    for index, row in enumerate(_array(value, where)):
        items = _array(row, f"{where} {index}")
        if len(items) != 3:
            raise DecodeError(f"{where} {index} does not have three members")
        drops.append(
            DropCount(
                reason=_enum(DropReason, items[0], f"{where} {index}"),
                count=items[1],
                examples=tuple(_array(items[2], f"{where} {index} examples")),
            )
        )
    return tuple(drops)


def _report(value: object) -> ParseReport:
    plain = _members(value, "parse report", _REPORT)
    return ParseReport(
        items_seen=plain["s"],
        products_kept=plain["k"],
        options_kept=plain["o"],
        items_dropped=_drops(plain.get("i", ()), "items dropped"),
        options_dropped=_drops(plain.get("d", ()), "options dropped"),
    )


def menu_from_plain(plain: object) -> Menu:
    """Build a Menu from its plain mapping; DecodeError or ModelError on anything wrong."""
    menu = _members(plain, "menu", _MENU)
    if not isinstance(menu["d"], str):
        raise DecodeError("menu dispensary id is not text")
    products = _array(menu["p"], "menu products")
    if len(products) > limits.MAX_PRODUCTS_PER_MENU:  # before building any of them
        raise LimitExceeded(f"more than {limits.MAX_PRODUCTS_PER_MENU} products")
    return Menu(
        dispensary_id=DispensaryId(menu["d"]),
        name=menu["n"],
        vendor=_enum(Vendor, menu["s"], "menu vendor"),
        fetched_at_ms=menu["t"],
        products=tuple(
            _product(product, f"product {index}") for index, product in enumerate(products)
        ),
        statistics=_statistics(menu.get("x")),
    )


# ---------------------------------------------------------------- bytes
def _encode_plain(plain: dict[str, Any]) -> bytes:
    try:
        return encode_canonical(plain)
    except UnicodeEncodeError as exc:  # a lone surrogate: the model lets it through
        raise ModelError(f"text is not valid Unicode: {exc.reason}") from None


def _hash_of_canonical(raw: bytes, menu: Menu) -> ContentHash:
    """The content hash of ``menu`` from ``raw``, its canonical payload, without re-encoding.

    The keys of the menu map are one-letter texts, so canonical order is d, n, p, s, t, x:
    the hashed map (d, n, p, s) is the payload's first four entries under a four-entry head.
    """
    tail: dict[str, Any] = {"t": menu.fetched_at_ms}
    if menu.statistics is not None:
        tail["x"] = _statistics_plain(menu.statistics)
    tail_bytes = len(encode_canonical(tail)) - 1  # without the tail map's one-byte head
    return ContentHash(hashlib.sha256(b"\xa4" + raw[1 : len(raw) - tail_bytes]).digest())


def encode_menu(menu: Menu) -> bytes:
    """Canonical CBOR of the menu in an lz4 frame that declares its content size.

    Raises LimitExceeded for a menu that ``decode_menu`` would refuse by size.
    """
    return encode_menu_with_hash(menu)[0]


def encode_menu_with_hash(menu: Menu) -> tuple[bytes, ContentHash]:
    """``encode_menu(menu)`` and ``content_hash(menu)``, encoding the menu once."""
    raw = _encode_plain(menu_to_plain(menu))
    if len(raw) > limits.MAX_DECOMPRESSED_BYTES:
        raise LimitExceeded(f"menu encodes to {len(raw)} bytes, over MAX_DECOMPRESSED_BYTES")
    scan(raw, PAYLOAD_CAPS)
    frame = bytes(lz4.frame.compress(raw, store_size=True, compression_level=0))
    if len(frame) > limits.MAX_RECORD_BYTES:
        raise LimitExceeded("compressed menu larger than MAX_RECORD_BYTES")
    if len(raw) > len(frame) * limits.MAX_COMPRESSION_RATIO:
        raise LimitExceeded("menu compresses beyond MAX_COMPRESSION_RATIO")
    return frame, _hash_of_canonical(raw, menu)


def content_hash(menu: Menu) -> ContentHash:
    """SHA-256 of the canonical CBOR of the menu without fetch time and statistics.

    Equal for two snapshots of an unchanged menu.
    """
    return ContentHash(hashlib.sha256(_encode_plain(menu_to_plain(menu, for_hash=True))).digest())


def declared_size(payload: bytes) -> int:
    """The content size an lz4 frame declares, checked against every size cap.

    Reads the frame header only; nothing is decompressed. LimitExceeded for an oversize
    payload, a frame without a declared size, or a declared size over the caps.
    """
    if len(payload) > limits.MAX_RECORD_BYTES:
        raise LimitExceeded("compressed payload larger than MAX_RECORD_BYTES")
    if payload[:4] != LZ4_MAGIC:
        raise DecodeError("payload is not an lz4 frame")
    try:
        info = lz4.frame.get_frame_info(payload)
    except Exception as exc:  # lz4 raises RuntimeError on a bad header
        raise DecodeError(f"payload has a bad lz4 frame header: {exc}") from None
    declared = info.get("content_size")
    if not isinstance(declared, int) or declared <= 0:
        raise LimitExceeded("lz4 frame does not declare its content size")
    if declared > limits.MAX_DECOMPRESSED_BYTES:
        raise LimitExceeded(f"lz4 frame declares {declared} bytes, over MAX_DECOMPRESSED_BYTES")
    if declared > len(payload) * limits.MAX_COMPRESSION_RATIO:
        raise LimitExceeded(
            f"lz4 frame declares {declared} bytes from {len(payload)}: over MAX_COMPRESSION_RATIO"
        )
    return declared


def decompress_payload(payload: bytes) -> bytes:
    """The content of an lz4 frame, after ``declared_size`` has checked its header.

    Decompression stops one byte past the declared size, so a frame whose blocks hold more
    than its header says costs no more than the header allows.
    """
    declared = declared_size(payload)
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        raw = decompressor.decompress(payload, max_length=declared + 1)
    except Exception as exc:  # lz4 raises RuntimeError on corrupt blocks
        raise DecodeError(f"lz4 frame is corrupt: {exc}") from None
    if len(raw) != declared or not decompressor.eof or decompressor.unused_data:
        raise DecodeError("lz4 frame content does not match its header")
    return bytes(raw)


def decode_menu(data: bytes) -> Menu:
    """The Menu in an lz4-framed canonical CBOR payload (caps checked before each step)."""
    return decode_menu_with_hash(data)[0]


def decode_menu_with_hash(data: bytes) -> tuple[Menu, ContentHash]:
    """``decode_menu(data)`` and the menu's content hash, without encoding the menu twice."""
    raw = decompress_payload(data)
    menu = menu_from_plain(decode_bounded(raw, PAYLOAD_CAPS))
    if _encode_plain(menu_to_plain(menu)) != raw:
        raise DecodeError("payload is not the canonical encoding of its menu")
    return menu, _hash_of_canonical(raw, menu)
