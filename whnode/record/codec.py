"""The menu codec: canonical CBOR (RFC 8949 section 4.2.1) inside an lz4 frame.

Every cap is checked before the work it protects: the compressed size, then the decompressed
size declared in the lz4 frame header (a frame without one is refused), then decompression
bounded by that size, then CBOR depth, item counts and string lengths, then the model's own
rules. Only ``DecodeError`` (and its ``LimitExceeded``) or ``ModelError`` leave this module.

The plain mapping (short text keys; optional members omitted when absent) is documented in
docs/record-format.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import cbor2
import lz4.frame

from whnode import limits
from whnode.record.exceptions import DecodeError, LimitExceeded, ModelError
from whnode.record.keys import ContentHash
from whnode.record.model import (
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
)

__all__ = [
    "content_hash",
    "decode_menu",
    "decompress_payload",
    "encode_canonical",
    "encode_menu",
    "menu_from_plain",
    "menu_to_plain",
]


def encode_canonical(value: object) -> bytes:
    """Deterministic CBOR (RFC 8949 core deterministic encoding)."""
    return cbor2.dumps(value, canonical=True)


# ---------------------------------------------------------------- model <-> plain data
def _potency_plain(potency: Potency) -> list[Any]:
    return [potency.low, potency.high, potency.unit.value]


def _product_plain(product: Product) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "i": product.source_id,
        "n": product.name,
        "c": product.category.value,
        "l": product.lineage.value,
        "o": [
            {
                "q": [option.quantity.amount, option.quantity.unit.value],
                "p": option.price_cents,
                **(
                    {"s": option.special_price_cents}
                    if option.special_price_cents is not None
                    else {}
                ),
                **({"k": option.stock} if option.stock is not None else {}),
            }
            for option in product.price_options
        ],
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


def _statistics_plain(statistics: MenuStatistics) -> dict[str, Any]:
    return {
        "c": [
            [
                item.category.value,
                item.product_count,
                item.price_per_gram_min,
                item.price_per_gram_median,
                item.price_per_gram_max,
            ]
            for item in statistics.categories
        ],
        "h": list(statistics.thc_percent_histogram),
    }


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


def _potency(value: Any) -> Potency | None:
    if value is None:
        return None
    low, high, unit = value
    return Potency(low=low, high=high, unit=PotencyUnit(unit))


def _product(plain: dict[str, Any]) -> Product:
    options = tuple(
        PriceOption(
            quantity=Quantity(amount=option["q"][0], unit=QuantityUnit(option["q"][1])),
            price_cents=option["p"],
            special_price_cents=option.get("s"),
            stock=option.get("k"),
        )
        for option in plain["o"]
    )
    return Product(
        source_id=plain["i"],
        name=plain["n"],
        category=Category(plain["c"]),
        lineage=Lineage(plain["l"]),
        price_options=options,
        brand=plain.get("b"),
        thc=_potency(plain.get("h")),
        cbd=_potency(plain.get("d")),
        image_url=plain.get("u"),
        description=plain.get("e"),
    )


def _statistics(plain: Any) -> MenuStatistics | None:
    if plain is None:
        return None
    return MenuStatistics(
        categories=tuple(
            CategoryStatistics(
                category=Category(row[0]),
                product_count=row[1],
                price_per_gram_min=row[2],
                price_per_gram_median=row[3],
                price_per_gram_max=row[4],
            )
            for row in plain["c"]
        ),
        thc_percent_histogram=tuple(plain["h"]),
    )


def menu_from_plain(plain: Any) -> Menu:
    """Build a Menu from its plain mapping; ModelError or DecodeError on anything wrong."""
    try:
        return Menu(
            dispensary_id=DispensaryId(plain["d"]),
            name=plain["n"],
            vendor=Vendor(plain["s"]),
            fetched_at_ms=plain["t"],
            products=tuple(_product(product) for product in plain["p"]),
            statistics=_statistics(plain.get("x")),
        )
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise DecodeError(f"payload is not a menu: {type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------- bytes
def encode_menu(menu: Menu) -> bytes:
    """Canonical CBOR of the menu in an lz4 frame that declares its content size."""
    raw = encode_canonical(menu_to_plain(menu))
    if len(raw) > limits.MAX_DECOMPRESSED_BYTES:
        raise LimitExceeded("menu larger than MAX_DECOMPRESSED_BYTES")
    return bytes(lz4.frame.compress(raw, store_size=True, compression_level=0))


def content_hash(menu: Menu) -> ContentHash:
    """SHA-256 of the canonical CBOR of the menu without fetch time and statistics."""
    return ContentHash(
        hashlib.sha256(encode_canonical(menu_to_plain(menu, for_hash=True))).digest()
    )


def decompress_payload(payload: bytes) -> bytes:
    """Decompress an lz4 frame after checking its declared size against the caps."""
    if len(payload) > limits.MAX_RECORD_BYTES:
        raise LimitExceeded("compressed payload larger than MAX_RECORD_BYTES")
    try:
        info = lz4.frame.get_frame_info(payload)
    except Exception as exc:  # lz4 raises RuntimeError/ValueError on garbage
        raise DecodeError("payload is not an lz4 frame") from exc
    declared = info.get("content_size") or 0
    if declared <= 0:
        raise LimitExceeded("lz4 frame does not declare its content size")
    if declared > limits.MAX_DECOMPRESSED_BYTES:
        raise LimitExceeded(f"lz4 frame declares {declared} bytes, over the cap")
    if declared > max(len(payload), 1) * limits.MAX_COMPRESSION_RATIO:
        raise LimitExceeded("lz4 frame declares an implausible compression ratio")
    try:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        raw = decompressor.decompress(payload, max_length=declared + 1)
    except Exception as exc:
        raise DecodeError("lz4 frame is corrupt") from exc
    if len(raw) != declared or not decompressor.eof or decompressor.unused_data:
        raise DecodeError("lz4 frame content does not match its header")
    return bytes(raw)


def check_structure(value: Any, depth: int = 0) -> None:
    """Enforce CBOR depth, item count and string length caps on a decoded value."""
    if depth > limits.MAX_CBOR_DEPTH:
        raise LimitExceeded("CBOR nested deeper than MAX_CBOR_DEPTH")
    if isinstance(value, str | bytes):
        if len(value) > limits.MAX_CBOR_STRING_BYTES:
            raise LimitExceeded("CBOR string longer than MAX_CBOR_STRING_BYTES")
    elif isinstance(value, list | tuple):
        if len(value) > limits.MAX_CBOR_ITEMS:
            raise LimitExceeded("CBOR array longer than MAX_CBOR_ITEMS")
        for item in value:
            check_structure(item, depth + 1)
    elif isinstance(value, Mapping):
        if len(value) > limits.MAX_CBOR_ITEMS:
            raise LimitExceeded("CBOR map larger than MAX_CBOR_ITEMS")
        for key, item in value.items():
            check_structure(key, depth + 1)
            check_structure(item, depth + 1)
    elif isinstance(value, bool) or value is None or isinstance(value, int | float):
        return
    else:
        raise DecodeError(f"unexpected CBOR item {type(value).__name__}")


def decode_cbor(raw: bytes) -> Any:
    """Decode one canonical CBOR item with the structure caps; DecodeError on anything else."""
    try:
        value = cbor2.loads(raw)
    except RecursionError:
        raise LimitExceeded("CBOR nested too deep") from None
    except MemoryError:
        raise LimitExceeded("CBOR item too large") from None
    except Exception as exc:  # cbor2 raises several types on malformed input
        raise DecodeError(f"malformed CBOR: {type(exc).__name__}") from None
    check_structure(value)
    return value


def decode_menu(data: bytes) -> Menu:
    """The Menu in an lz4-framed canonical CBOR payload (caps checked before each step)."""
    raw = decompress_payload(data)
    plain = decode_cbor(raw)
    if not isinstance(plain, dict):
        raise DecodeError("payload is not a CBOR map")
    menu = menu_from_plain(plain)
    if encode_canonical(plain) != raw:
        raise DecodeError("payload CBOR is not in canonical form")
    return menu
